"""What the API and dashboard read: stored results, filtered, and scoped to the user.

Everything a party user receives passes through `scope_*`: other parties become their
anonymous league names (the same as in that period's pack) and their volumes are withheld.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import ibis

from opmetrics.engine.store import Store
from opmetrics.measures.attribution import process_requests
from opmetrics.measures.records import Scope
from opmetrics.measures.run import latest_run
from opmetrics.methodology import Methodology, pmel
from opmetrics.report.league import Anonymiser, league_key, league_tables, party_roles
from opmetrics.report.pack import anonymise_outcomes
from opmetrics.serve.auth import User

DRILL_DIMENSIONS = ("day", "srv", "region", "smets", "device_type", "party")
CONFIDENTIAL_MEASURES = ("THR1.",)  # the throttling report: dcc and panel only


# What the dashboard shows of an incident.
INCIDENT_FIELDS = ("incident_id", "category", "region", "smets", "raised_at", "resolved_at", "closed_at")
INCIDENT_FIELDS += ("services", "summary")


class Forbidden(PermissionError):
    pass


class NotFound(LookupError):
    pass


class DataService:
    def __init__(self, store: Store, m: Methodology):
        self.store, self.m = store, m
        self._scopes: dict[str, Scope] = {}
        self._anon: dict[tuple[str, str | None], Anonymiser] = {}
        self._key = league_key(store)

    # --- helpers ------------------------------------------------------------------------------

    def periods(self) -> list[str]:
        try:
            return [r["period"] for r in self.store.rows("SELECT period FROM runs ORDER BY period")]
        except Exception:  # noqa: BLE001 - nothing computed yet
            return []

    def period_or_latest(self, period: str | None) -> str:
        known = self.periods()
        if not known:
            raise NotFound("no computed periods; run `opmetrics compute` first")
        if period is None:
            return known[-1]
        if period not in known:
            raise NotFound(f"period {period} has not been computed; computed: {', '.join(known)}")
        return period

    def anonymiser(self, period: str, user: User) -> Anonymiser:
        own = None if user.sees_all else user.party_id
        k = (period, own)
        if k not in self._anon:
            roles = party_roles(self.store, period, self._run_id(period))
            self._anon[k] = Anonymiser(self._key, period, roles, own=own if own in roles else None)
        return self._anon[k]

    def _run_id(self, period: str) -> str:
        run = latest_run(self.store, period)
        if run is None:
            raise NotFound(f"period {period} has not been computed")
        return run.run_id

    def _rows(
        self, table: str, period: str, where: dict[str, Any], order: str = "rowid"
    ) -> list[dict[str, Any]]:
        clauses, params = ["period = ?", "run_id = ?"], [period, self._run_id(period)]
        for col, val in where.items():
            if val is not None:
                clauses.append(f'"{col}" = ?')
                params.append(val)
        sql = f'SELECT * EXCLUDE (run_id) FROM "{table}" WHERE {" AND ".join(clauses)} ORDER BY {order}'
        return self.store.rows(sql, params)

    # --- endpoints ----------------------------------------------------------------------------

    def run(self, period: str) -> dict[str, Any]:
        run = latest_run(self.store, period)
        return {k: v for k, v in run.__dict__.items()} if run else {}

    def cpm(self, period: str, cpm: str | None, segment: str | None) -> list[dict[str, Any]]:
        return self._rows("cpm", period, {"cpm": cpm, "segment": segment})

    def rsvp(
        self, period: str, scope: str, key: str | None, rate: str, segment: str | None, day: dt.date | None
    ):
        return self._rows(
            "rsvp",
            period,
            {"scope": scope, "key": key, "rate": rate, "segment": segment, "day": day},
            order="key, day NULLS FIRST, segment",
        )

    def outcomes(
        self, period: str, user: User, measure: str | None, process: str | None
    ) -> list[dict[str, Any]]:
        ids = {x.id for x in self.m.measures if process is None or x.process == process}
        rows = [r for r in self._rows("outcomes", period, {"measure": measure}) if r["measure"] in ids]
        if measure and measure.startswith(CONFIDENTIAL_MEASURES) and user.role == "party":
            raise Forbidden("the throttling report is confidential to the DCC and the SEC Panel")
        if user.role == "party":
            rows = [r for r in rows if not r["measure"].startswith(CONFIDENTIAL_MEASURES)]
        if not user.sees_all:
            rows = anonymise_outcomes(rows, self.anonymiser(period, user))
        return rows

    def legs(self, period: str, process: str | None, breakdown: str | None) -> list[dict[str, Any]]:
        return self._rows(
            "legs",
            period,
            {"process_id": process, "breakdown": breakdown},
            order="process_id, breakdown, key",
        )

    def benchmarks(
        self, period: str, user: User, process: str | None, dimension: str | None
    ) -> list[dict[str, Any]]:
        """Industry and best per value; a party gets its own rows only (others never named)."""
        where = {"process_id": process, "dimension": dimension}
        if user.role == "party":
            where["party_id"] = user.party_id
            return self._rows("benchmarks", period, where, order="process_id, dimension, party_volume DESC")
        return self._rows("benchmarks", period, where, order="process_id, dimension, value, party_id")

    def diagnostics(
        self, period: str, user: User, process: str | None, party: str | None
    ) -> list[dict[str, Any]]:
        """What explains a party's gap to the industry; a party sees only its own."""
        if user.role == "party":
            if party not in (None, user.party_id):
                raise Forbidden("a party sees its own diagnostics only")
            party = user.party_id
        return self._rows(
            "diagnostics",
            period,
            {"process_id": process, "party_id": party},
            order="process_id, party_id, rank",
        )

    def availability(
        self, period: str, view: str | None, subject: str | None, region: str | None, band: str | None
    ):
        return self._rows(
            "availability", period, {"view": view, "subject": subject, "region": region, "band": band}
        )

    def league(self, period: str, user: User, process: str | None) -> list[dict[str, Any]]:
        rows = self._rows("outcomes", period, {"measure": "LT1"})
        names = {p.id: p.name for p in self.m.processes if process is None or p.id == process}
        return league_tables(rows, self.anonymiser(period, user), self.m.league.min_volume, names)

    def incidents(self, period: str, open_only: bool) -> list[dict[str, Any]]:
        """The period's incidents as its run stored them (measures/context.py); open: not
        resolved at the run's report time."""
        rows = self._rows("run_incidents", period, {}, order="raised_at")
        keep = INCIDENT_FIELDS
        return [{k: r[k] for k in keep} for r in rows if not open_only or r["resolved_at"] is None]

    def _scope(self, period: str) -> Scope:
        if period not in self._scopes:
            run = latest_run(self.store, period)
            self._scopes[period] = Scope(
                con=self.store.ibis(),
                m=self.m,
                period=period,
                as_of=run.as_of,
                exceptions=pmel.active(self.store),
                materialise=True,
            )
        return self._scopes[period]

    def drill(
        self, period: str, user: User, process: str, by: str, filters: dict[str, Any]
    ) -> list[dict[str, Any]]:
        """One step of the drill-down: a process's requests grouped by one dimension, within the
        filters chosen so far (day, SRV, region, SMETS, device type, party)."""
        if by not in DRILL_DIMENSIONS:
            raise ValueError(f"by must be one of {', '.join(DRILL_DIMENSIONS)}")
        self.m.process(process)
        anon = self.anonymiser(period, user)
        party = filters.get("party")
        # A party may narrow to its own records only: no drill into another party's devices.
        if party is not None and not user.sees_all and party != user.party_id:
            raise Forbidden("a party user can drill into its own records only")
        s = self._scope(period)
        t = process_requests(s)
        t = t.filter(t.process_id == process)
        col = {"day": "report_date", "party": "party_id"}
        for k, v in filters.items():
            if v is not None:
                t = t.filter(t[col.get(k, k)] == v)
        key = t[col.get(by, by)]
        g = (
            t.group_by(key=key)
            .aggregate(
                volume=t.count_weight.sum(),
                failures=t.failed.cast("int64").sum() + t.extra_failures.sum(),
                within=t.within_trt.cast("int64").sum(),
                n=t.count(),
                rtt_mean_s=ibis.ifelse(t.speed_counted, t.rtt_ms, None).mean() / 1000,
            )
            .order_by("key")
        )
        out = []
        for r in g.to_pyarrow().to_pylist():
            row = {
                "key": r["key"].isoformat() if isinstance(r["key"], dt.date) else str(r["key"]),
                "volume": r["volume"],
                "failures": r["failures"],
                "success_pct": 100.0 * (r["volume"] - r["failures"]) / r["volume"] if r["volume"] else None,
                "within_trt_pct": 100.0 * r["within"] / r["n"] if r["n"] else None,
                "rtt_mean_s": r["rtt_mean_s"],
                "drillable": True,
            }
            if by == "party" and anon.is_other(r["key"]) and not user.sees_all:
                row.update(key=anon.name(r["key"]), volume=None, failures=None, drillable=False)
            out.append(row)
        # Order by what is shown, so the order of anonymous names reveals nothing.
        return sorted(out, key=lambda r: r["key"])

    def alerts(self, user: User, open_only: bool) -> list[dict[str, Any]]:
        """Monitoring alerts (opmetrics watch); a party sees those about its own scope or none
        named after another party."""
        try:
            rows = self.store.rows(
                "SELECT * FROM monitor_alerts"
                + (" WHERE status = 'open'" if open_only else "")
                + " ORDER BY opened_at DESC LIMIT 200",
                [],
            )
        except Exception:  # noqa: BLE001 - no monitoring has run yet
            return []
        if not user.sees_all:
            rows = [r for r in rows if '"party_id"' not in r["scope"] or f'"{user.party_id}"' in r["scope"]]
            anon = self.anonymiser(self.period_or_latest(None), user)
            for r in rows:
                for k in ("message", "root_cause", "scope"):
                    r[k] = anon.scrub(r[k])
        return rows

    def system(self, user: User) -> dict[str, Any]:
        """The latest day in the data: RSVP per process by hour, Service availability that day
        and in the month so far, and incidents still open."""
        period = self.period_or_latest(None)
        latest = self.store.rows("SELECT max(report_date) AS d FROM service_requests", [])[0]["d"]
        avail = [
            r
            for r in self._rows("availability", period, {"view": "daily", "day": latest})
            if r["region"] in ("All", "North", "Central", "South", "SMETS1")
        ]
        month = self._rows("availability", period, {"view": "service", "region": "All", "band": "all"})
        s = self._scope(period)
        t = process_requests(s)
        t = t.filter(t.report_date == latest)
        g = (
            t.group_by(process_id=t.process_id, hour=t.received_at.truncate("h"))
            .aggregate(
                volume=t.count_weight.sum(), failures=t.failed.cast("int64").sum() + t.extra_failures.sum()
            )
            .order_by(["process_id", "hour"])
        )
        hourly = [
            {
                **r,
                "hour": r["hour"].isoformat(),
                "success_pct": 100.0 * (r["volume"] - r["failures"]) / r["volume"],
            }
            for r in g.to_pyarrow().to_pylist()
        ]
        # The same rule and source as /api/incidents?open_only=true (the run's stored incidents).
        open_inc = sorted(
            (
                {k: r[k] for k in ("incident_id", "category", "region", "raised_at", "summary")}
                for r in self.incidents(period, open_only=True)
            ),
            key=lambda r: (r["category"], r["raised_at"]),
        )
        return {
            "period": period,
            "day": latest.isoformat() if latest else None,
            "availability_today": avail,
            "availability_month": month,
            "hourly": hourly,
            "open_incidents": open_inc,
        }
