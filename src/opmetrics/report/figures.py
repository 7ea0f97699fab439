"""Everything a pack shows, read from the stored results of one run (never recomputed here)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

import duckdb

from opmetrics import format as fmt
from opmetrics.engine.store import Store
from opmetrics.measures.availability import previous_period
from opmetrics.measures.drill import ALL_REQUESTS
from opmetrics.measures.records import month_bounds, uk_midnight_utc
from opmetrics.measures.run import RunInfo, latest_run
from opmetrics.methodology import Methodology


def _labelled(incidents: list[dict[str, Any]]) -> list[dict[str, Any]]:
    for r in incidents:
        r["day"] = r["report_date"].day
        dur = fmt.duration(r["minutes"]) if r["minutes"] is not None else "open"
        r["duration"] = dur
        r["label"] = f"{r['incident_id']} Cat {r['category']} {r['region']} {dur}"
    return incidents


def _rows(store: Store, sql: str, params: list[Any]) -> list[dict[str, Any]]:
    try:
        return store.rows(sql, params)
    except duckdb.CatalogException:  # a result table not created yet
        return []


_BY_DAY = "report_date, incident_id"


def _context(store: Store, table: str, key: list[Any], order: str) -> list[dict[str, Any]]:
    try:
        return store.rows(
            f"SELECT * EXCLUDE (period, run_id) FROM {table} WHERE period = ? AND run_id = ? "
            f"ORDER BY {order}",
            key,
        )
    except duckdb.CatalogException:
        raise ValueError(
            f"the {key[0]} results were computed before the run stored what it used ({table}); "
            f"run `opmetrics compute --period {key[0]}` again"
        ) from None


@dataclass
class Figures:
    period: str
    run: RunInfo
    rsvp: list[dict[str, Any]]
    cpm: list[dict[str, Any]]
    outcomes: list[dict[str, Any]]
    availability: list[dict[str, Any]]
    incidents: list[dict[str, Any]]
    quality: list[dict[str, Any]]
    reasons: list[dict[str, Any]]
    outages: list[dict[str, Any]]
    alerts: list[dict[str, Any]]  # the period's alerts by kind and code
    hourly: list[dict[str, Any]] = field(default_factory=list)  # every included request per region, hour
    legs: list[dict[str, Any]] = field(default_factory=list)  # legs of the journey, DCC proxy
    previous: dict[str, Any] = field(default_factory=dict)  # previous period's cpm and availability
    history: list[dict[str, Any]] = field(default_factory=list)  # monthly process RSVP, <= 13 periods
    modes: list[dict[str, Any]] = field(default_factory=list)  # RSVP's month per mode of operation
    devices: list[dict[str, Any]] = field(default_factory=list)  # RSVP's month per device type

    @property
    def first(self) -> dt.date:
        return month_bounds(self.period)[0]

    @property
    def last(self) -> dt.date:
        return month_bounds(self.period)[1]

    @property
    def first_utc(self) -> dt.datetime:
        return uk_midnight_utc(self.first)

    @property
    def end_utc(self) -> dt.datetime:
        return uk_midnight_utc(self.last + dt.timedelta(days=1))

    @property
    def as_of(self) -> dt.datetime:
        return self.run.as_of


def load_figures(store: Store, m: Methodology, period: str) -> Figures:
    run = latest_run(store, period)
    if run is None:
        raise ValueError(f"no computed results for {period}; run `opmetrics compute --period {period}`")
    if run.methodology_fingerprint != m.fingerprint:
        raise ValueError(
            f"results for {period} were computed with methodology {run.methodology_version} "
            f"({run.methodology_fingerprint[:12]}), not the one given ({m.version}, "
            f"{m.fingerprint[:12]}); run `opmetrics compute` again"
        )
    key = [period, run.run_id]
    order = "ORDER BY rowid"
    prev = previous_period(period)
    f = Figures(
        period=period,
        run=run,
        rsvp=_rows(
            store,
            "SELECT * EXCLUDE (run_id) FROM rsvp WHERE period = ? AND run_id = ? "
            "ORDER BY scope, key, rate, day NULLS FIRST, segment",
            key,
        ),
        modes=_rows(
            store,
            "SELECT * EXCLUDE (run_id) FROM rsvp_modes WHERE period = ? AND run_id = ? "
            "ORDER BY scope, key, segment, mode",
            key,
        ),
        devices=_rows(
            store,
            "SELECT * EXCLUDE (run_id) FROM rsvp_devices WHERE period = ? AND run_id = ? "
            "ORDER BY scope, key, segment, device_type",
            key,
        ),
        cpm=_rows(store, f"SELECT * EXCLUDE (run_id) FROM cpm WHERE period = ? AND run_id = ? {order}", key),
        outcomes=_rows(
            store, f"SELECT * EXCLUDE (run_id) FROM outcomes WHERE period = ? AND run_id = ? {order}", key
        ),
        availability=_rows(
            store, f"SELECT * EXCLUDE (run_id) FROM availability WHERE period = ? AND run_id = ? {order}", key
        ),
        # What the run used besides its figures (measures/context.py), never the input tables.
        incidents=_labelled(
            [i for i in _context(store, "run_incidents", key, _BY_DAY) if i["category"] <= 2]
        ),
        quality=_context(store, "run_inputs", key, "table_name"),
        reasons=_context(store, "run_quarantine", key, "n DESC, table_name, field, reason"),
        outages=_context(store, "run_outages", key, "outage_id"),
        alerts=_context(store, "run_alerts", key, "kind, alert_code"),
    )
    f.hourly = [
        r for r in _context(store, "run_hourly", key, "region, hour") if r["process_id"] == ALL_REQUESTS
    ]
    try:
        f.legs = _rows(
            store,
            "SELECT * EXCLUDE (run_id) FROM legs WHERE period = ? AND run_id = ? "
            "ORDER BY process_id, breakdown, key",
            key,
        )
    except duckdb.CatalogException:  # computed before legs were measured
        f.legs = []
    # Earlier months as the run stored them: their runs, else published values (issue 32, item 9).
    prev_cpm = _context(store, "run_prev_cpm", key, "cpm, key, segment")
    prev_avail = _context(store, "run_prev_availability", key, "view, subject, region, band")
    trend = _context(store, "run_trend", key, "of_period, scope, key")
    f.previous = {
        "period": prev,
        "cpm": {(r["cpm"], r["key"], r["segment"]): r for r in prev_cpm},
        "availability": {(r["view"], r["subject"], r["region"], r["band"]): r for r in prev_avail},
        "srv": {r["key"]: r for r in trend if r["scope"] == "srv" and r["of_period"] == prev},
        "sources": sorted({r["source"] for r in [*prev_cpm, *prev_avail, *trend]}),
    }
    f.history = [
        {"period": r["of_period"], **{k: r[k] for k in ("key", "success_pct", "within_trt_pct", "volume")}}
        for r in trend
        if r["scope"] == "process"
    ] + [
        {"period": period, **{k: r[k] for k in ("key", "success_pct", "within_trt_pct", "volume")}}
        for r in f.rsvp
        if r["scope"] == "process" and r["rate"] == "month" and r["segment"] == "All"
    ]
    return f


def major_events(f: Figures, tz: str) -> list[dict[str, Any]]:
    """The month's unplanned outages (with the incident each belongs to), longest first, then
    the Category 1 and 2 incidents without an outage row: what an OPSG reader looks for first."""
    zone = ZoneInfo(tz)
    incidents = {i["incident_id"]: i for i in f.incidents}
    out, covered = [], set()
    for o in f.outages:
        if o["planned"]:
            continue
        end = o["end_at"] or f.as_of
        start, stop = max(o["start_at"], f.first_utc), min(end, f.end_utc)
        if stop <= start:
            continue
        minutes = (stop - start).total_seconds() / 60
        a = o["start_at"].replace(tzinfo=dt.UTC).astimezone(zone)
        z = end.replace(tzinfo=dt.UTC).astimezone(zone)
        inc = incidents.get(o["incident_id"] or "")
        covered.add(o["incident_id"])
        where = o["region"] or "all regions"
        text = (
            f"Unplanned outage of {o['subsystem']} ({where}) on {a:%a %d %b} {a:%H:%M}-{z:%H:%M} UK, "
            f"{fmt.duration(minutes)}"
            + (f": Category {inc['category']} incident {inc['incident_id']}" if inc else "")
            + (f" ({inc['summary']})" if inc and inc.get("summary") else "")
        )
        out.append({"kind": "event", "rank": (0, 0, -minutes), "text": text})
    for i in f.incidents:
        if i["incident_id"] in covered:
            continue
        minutes = i["minutes"] or 0.0
        text = (
            f"Category {i['category']} incident {i['incident_id']} ({i['region']}) on "
            f"{i['report_date']:%a %d %b}, "
            + (f"resolved in {fmt.duration(minutes)}" if i["minutes"] is not None else "still open")
            + (f": {i['summary']}" if i.get("summary") else "")
        )
        out.append({"kind": "event", "rank": (1, i["category"], -minutes), "text": text})
    out.sort(key=lambda e: tuple(e["rank"]))
    return out
