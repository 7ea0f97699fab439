"""Result tables in the DuckDB store: a period's rows replaced, and what a run reads back of the
store (record counts, the latest run, stored figures). The measures call these instead of
writing SQL of their own."""

from __future__ import annotations

import datetime as dt
from typing import Any

import duckdb
import pyarrow as pa

from opmetrics.engine.store import Store


def write_period(store: Store, name: str, period: str, rows: pa.Table) -> None:
    """Replace the period's rows of result table `name` with `rows` (inside the caller's
    transaction); the table is created on first use, and gains any column a newer opmetrics adds."""
    con = store.con
    con.register("_rows", rows)
    try:
        if store.has_table(name):
            have = {r[0] for r in con.execute(f'DESCRIBE "{name}"').fetchall()}
            # A column added by a newer opmetrics (e.g. runs.days_reduced) joins the old table.
            for col, sql_type, *_ in con.execute("DESCRIBE SELECT * FROM _rows").fetchall():
                if col not in have:
                    con.execute(f'ALTER TABLE "{name}" ADD COLUMN "{col}" {sql_type}')
            con.execute(f'DELETE FROM "{name}" WHERE period = ?', [period])
            con.execute(f'INSERT INTO "{name}" BY NAME SELECT * FROM _rows')
        else:
            con.execute(f'CREATE TABLE "{name}" AS SELECT * FROM _rows')
    finally:
        con.unregister("_rows")


def records_between(store: Store, table: str, first: dt.date, last: dt.date) -> int:
    """Records of an input table whose UK report day lies between two days."""
    return int(
        store.con.execute(
            f"SELECT count(*) FROM {table} WHERE report_date BETWEEN ? AND ?", [first, last]
        ).fetchall()[0][0]
    )


def latest_received(store: Store) -> dt.datetime | None:
    """When the latest service request in the store was received."""
    return store.con.execute("SELECT max(received_at) FROM service_requests").fetchall()[0][0]


def latest_run(store: Store, period: str) -> dict[str, Any] | None:
    """The latest run of a period, as stored (None before any compute)."""
    try:
        rows = store.rows("SELECT * FROM runs WHERE period = ? ORDER BY computed_at DESC LIMIT 1", [period])
    except duckdb.CatalogException:  # nothing computed yet: no runs table
        return None
    return rows[0] if rows else None


def month_figures(store: Store, period: str) -> dict[str, list[dict[str, Any]]]:
    """A computed period's headline figures: monthly RSVP per process, CPMs, outcome measures,
    and availability per Service and overall (what `what-if` compares)."""
    return {
        "rsvp": store.rows(
            "SELECT key, segment, volume, success_pct, within_trt_pct FROM rsvp "
            "WHERE period = ? AND scope = 'process' AND rate = 'month'",
            [period],
        ),
        "cpm": store.rows("SELECT cpm, key, segment, pct, status FROM cpm WHERE period = ?", [period]),
        "outcomes": store.rows(
            "SELECT measure, breakdown, key1, key2, value FROM outcomes WHERE period = ?", [period]
        ),
        "availability": store.rows(
            "SELECT view, subject, region, pct FROM availability "
            "WHERE period = ? AND band = 'all' AND day IS NULL AND view IN ('service', 'overall')",
            [period],
        ),
    }
