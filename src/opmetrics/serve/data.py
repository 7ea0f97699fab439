"""What the API and dashboard read: stored results, filtered, and scoped to the user.

Everything a party user receives passes through `scope_*`: other parties become their
anonymous league names (the same as in that period's pack) and their volumes are withheld.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from opmetrics import format as fmt
from opmetrics.engine.serving import Snapshots
from opmetrics.engine.store import Store
from opmetrics.measures.drill import ALL_REQUESTS, DRILL_COLUMNS
from opmetrics.measures.run import latest_run, stale_runs, staleness
from opmetrics.methodology import Methodology
from opmetrics.report.anonymise import Anonymiser, league_key, league_tables, party_roles
from opmetrics.report.pack import anonymise_outcomes
from opmetrics.serve.auth import User

DRILL_DIMENSIONS = tuple(DRILL_COLUMNS)


# What the dashboard shows of an incident.
INCIDENT_FIELDS: tuple[str, ...] = ("incident_id", "category", "region", "smets", "raised_at", "resolved_at")
INCIDENT_FIELDS += ("closed_at", "services", "summary")


class Forbidden(PermissionError):
    pass


class NotFound(LookupError):
    pass


class DataService:
    """`source` is a store, or engine/serving.py's Snapshots (what `serve` uses): each call
    reads the newest published snapshot, and what was cached from an older one is dropped."""

    def __init__(self, source: Store | Snapshots, m: Methodology):
        self._source, self.m = source, m
        self._generation: int | None = None
        self._anon: dict[tuple[str, str | None], Anonymiser] = {}
        self._key = b""
        _ = self.store

    @property
    def store(self) -> Store:
        if isinstance(self._source, Store):
            store, gen = self._source, 0
        else:
            published, gen = self._source.store(), self._source.generation
            if published is None:
                raise NotFound("nothing published yet: run `opmetrics compute` against this database")
            store = published
        if gen != self._generation:
            self._anon, self._key, self._generation = {}, league_key(store), gen
        return store

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
            self._anon[k] = Anonymiser(
                self._key,
                period,
                roles,
                own=own if own in roles else None,
                min_cell=self.m.publication.min_cell,
            )
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
        """The run's record, with `stale`: why its figures no longer describe the loaded inputs
        (empty when current), so a reader of the API is told as the dashboard's banner tells."""
        run = latest_run(self.store, period)
        return {**run.__dict__, "stale": staleness(self.store, run)} if run else {}

    def stale(self) -> dict[str, list[str]]:
        """Per computed period whose inputs changed since its run: why (the dashboard's banner;
        `report` refuses such a run, the dashboard shows it marked)."""
        runs = [latest_run(self.store, period) for period in self.periods()]
        return stale_runs(self.store, [r for r in runs if r is not None])

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
        secret = self.m.publication.confidential
        if measure and secret(measure) and user.role == "party":
            raise Forbidden("the throttling report is confidential to the DCC and the SEC Panel")
        if user.role == "party":
            rows = [r for r in rows if not secret(r["measure"])]
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
            rows = self._rows("benchmarks", period, where, order="process_id, dimension, party_volume DESC")
            # The best is usually another party's figure: given as any anonymised rate is, at
            # the decimals the best party's volume allows.
            anon = self.anonymiser(period, user)
            best = {
                (b["process_id"], b["dimension"], b["value"]): b
                for b in self._rows("benchmarks", period, {**where, "party_id": None, "rank": 1})
            }
            for r in rows:
                b = best.get((r["process_id"], r["dimension"], r["value"]))
                if b is None or b["party_id"] != user.party_id:
                    r["best_pct"] = anon.rate(r["best_pct"], b["party_volume"] if b else None)
                # The fastest mean rests on at least the league's minimum volume of times; a
                # mean of times gives no count back.
                r["best_rtt_mean_s"] = fmt.shown_seconds(r["best_rtt_mean_s"])
            return rows
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
        return league_tables(rows, self.anonymiser(period, user), self.m.league, names)

    def incidents(self, period: str, user: User, open_only: bool) -> list[dict[str, Any]]:
        """The period's incidents as its run stored them (measures/context.py); open: not
        resolved at the run's report time. A party user reads every other party's id in a
        summary as its anonymous name."""
        rows = self._rows("run_incidents", period, {}, order="raised_at")
        anon = None if user.sees_all else self.anonymiser(period, user)
        out = []
        for r in rows:
            if open_only and r["resolved_at"] is not None:
                continue
            row = {k: r[k] for k in INCIDENT_FIELDS}
            if anon is not None:
                row["summary"] = anon.scrub(row["summary"])
            out.append(row)
        return out

    def drill(
        self, period: str, user: User, process: str, by: str, filters: dict[str, Any]
    ) -> list[dict[str, Any]]:
        """One step of the drill-down: a process's requests grouped by one dimension, within the
        filters chosen so far (day, SRV, region, SMETS, device type, party), from the run's
        stored cube (measures/drill.py): the dashboard groups, it never classifies."""
        if by not in DRILL_DIMENSIONS:
            raise ValueError(f"by must be one of {', '.join(DRILL_DIMENSIONS)}")
        self.m.process(process)
        anon = self.anonymiser(period, user)
        party = filters.get("party")
        # A party may narrow to its own records only: no drill into another party's devices.
        if party is not None and not user.sees_all and party != user.party_id:
            raise Forbidden("a party user can drill into its own records only")
        where, params = ["run_id = ?", "process_id = ?"], [self._run_id(period), process]
        for k, v in filters.items():
            if v is not None:
                where.append(f"{DRILL_COLUMNS[k]} = ?")
                params.append(v)
        key = DRILL_COLUMNS[by]
        rows = self.store.rows(
            f"""SELECT {key} AS key, sum(volume) AS volume, sum(failures) AS failures,
                       sum(within_trt) AS within, sum(requests) AS n,
                       sum(rtt_sum_ms) / nullif(sum(rtt_n), 0) / 1000 AS rtt_mean_s
                FROM run_drill WHERE {" AND ".join(where)} GROUP BY key ORDER BY key""",
            params,
        )
        out = []
        for r in rows:
            row = {
                "key": r["key"].isoformat() if isinstance(r["key"], dt.date) else str(r["key"]),
                "volume": int(r["volume"]),
                "failures": int(r["failures"]),
                "success_pct": 100.0 * (r["volume"] - r["failures"]) / r["volume"] if r["volume"] else None,
                "within_trt_pct": 100.0 * r["within"] / r["n"] if r["n"] else None,
                "rtt_mean_s": r["rtt_mean_s"],
                "drillable": True,
                # The reader's own party, named (never a letter): the dashboard marks it "(you)".
                "own": by == "party" and not user.sees_all and r["key"] == user.party_id,
            }
            if by == "party" and anon.is_other(r["key"]) and not user.sees_all:
                # Rates as printed, none below the minimum cell: the withheld volume stays withheld.
                row.update(
                    key=anon.name(r["key"]),
                    volume=None,
                    failures=None,
                    drillable=False,
                    success_pct=anon.rate(row["success_pct"], int(r["volume"])),
                    within_trt_pct=anon.rate(row["within_trt_pct"], int(r["n"])),
                    rtt_mean_s=anon.seconds(row["rtt_mean_s"], int(r["n"])),
                )
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
        run_id = self._run_id(period)
        latest = self.store.rows("SELECT max(report_date) AS d FROM run_hourly WHERE run_id = ?", [run_id])[
            0
        ]["d"]
        avail = [
            r
            for r in self._rows("availability", period, {"view": "daily", "day": latest})
            if r["region"] in ("All", "North", "Central", "South", "SMETS1")
        ]
        month = self._rows("availability", period, {"view": "service", "region": "All", "band": "all"})
        hourly = [
            {
                "process_id": r["process_id"],
                "hour": r["hour"].isoformat(),
                "volume": int(r["volume"]),
                "failures": int(r["failures"]),
                "success_pct": 100.0 * (r["volume"] - r["failures"]) / r["volume"],
            }
            for r in self.store.rows(
                "SELECT process_id, hour, sum(volume) AS volume, sum(failures) AS failures "
                "FROM run_hourly WHERE run_id = ? AND report_date = ? AND process_id <> ? GROUP BY ALL "
                "ORDER BY process_id, hour",
                [run_id, latest, ALL_REQUESTS],
            )
        ]
        # The same rule and source as /api/incidents?open_only=true (the run's stored incidents).
        open_inc = sorted(
            (
                {k: r[k] for k in ("incident_id", "category", "region", "raised_at", "summary")}
                for r in self.incidents(period, user, open_only=True)
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
