"""Everything a pack shows, read from the stored results of one run (never recomputed here)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import duckdb

from opmetrics.engine.store import Store
from opmetrics.ingest.load import DUPLICATE_DETAIL
from opmetrics.measures.availability import previous_period
from opmetrics.measures.records import month_bounds, uk_midnight_utc
from opmetrics.measures.run import RunInfo, latest_run
from opmetrics.methodology import Methodology


def _duration(minutes: float) -> str:
    h, mnt = divmod(int(round(minutes)), 60)
    return f"{h}h{mnt:02d}m" if h else f"{mnt}m"


def major_incidents(store: Store, period: str) -> list[dict[str, Any]]:
    """Category 1 and 2 incidents raised in the period, with their outage duration if known."""
    first, last = month_bounds(period)
    rows = store.rows(
        """
        WITH o AS (SELECT incident_id, max(epoch(end_at) - epoch(start_at)) AS secs
                   FROM outages WHERE incident_id IS NOT NULL GROUP BY incident_id)
        SELECT i.incident_id, i.category, coalesce(i.region, 'all regions') AS region,
               i.report_date, i.summary,
               coalesce(o.secs, epoch(i.resolved_at) - epoch(i.raised_at)) / 60 AS minutes
        FROM incidents i LEFT JOIN o USING (incident_id)
        WHERE i.category <= 2 AND i.report_date BETWEEN ? AND ?
        ORDER BY i.report_date, i.incident_id""",
        [first, last],
    )
    for r in rows:
        r["day"] = r["report_date"].day
        dur = _duration(r["minutes"]) if r["minutes"] is not None else "open"
        r["duration"] = dur
        r["label"] = f"{r['incident_id']} Cat {r['category']} {r['region']} {dur}"
    return rows


def _rows(store: Store, sql: str, params: list[Any]) -> list[dict[str, Any]]:
    try:
        return store.rows(sql, params)
    except duckdb.CatalogException:  # a result table not created yet
        return []


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
        incidents=major_incidents(store, period),
        quality=store.rows(
            """
            SELECT table_name, count(*) AS files, sum(rows_read) AS rows_read,
                   sum(rows_accepted) AS accepted, sum(rows_quarantined) AS quarantined
            FROM loaded_files GROUP BY ALL ORDER BY table_name""",
            [],
        ),
        reasons=store.rows(
            """
            SELECT table_name, coalesce(field, '(row)') AS field,
                   regexp_replace(reason, ?, '') AS reason, count(*) AS n
            FROM quarantine GROUP BY ALL ORDER BY n DESC, table_name, field, reason LIMIT 20""",
            [DUPLICATE_DETAIL],
        ),
        outages=store.rows("SELECT * FROM outages ORDER BY outage_id", []),
    )
    try:
        f.legs = _rows(
            store,
            "SELECT * EXCLUDE (run_id) FROM legs WHERE period = ? AND run_id = ? "
            "ORDER BY process_id, breakdown, key",
            key,
        )
    except duckdb.CatalogException:  # computed before legs were measured
        f.legs = []
    f.previous = {
        "period": prev,
        "cpm": {
            (r["cpm"], r["key"], r["segment"]): r
            for r in _rows(store, "SELECT * FROM cpm WHERE period = ?", [prev])
        },
        "availability": {
            (r["view"], r["subject"], r["region"], r["band"]): r
            for r in _rows(store, "SELECT * FROM availability WHERE period = ? AND day IS NULL", [prev])
        },
    }
    f.history = _rows(
        store,
        "SELECT period, key, success_pct, within_trt_pct, volume FROM rsvp WHERE scope = 'process' "
        "AND rate = 'month' AND segment = 'All' AND period <= ? ORDER BY period",
        [period],
    )
    periods = sorted({r["period"] for r in f.history})[-13:]
    f.history = [r for r in f.history if r["period"] in periods]
    return f
