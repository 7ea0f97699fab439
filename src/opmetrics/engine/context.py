"""The store reads behind a run's context tables (`measures/context.py`): what the pack, the
summary paper and the dashboard show beside the figures, read once by the run from the input
tables so that presentation never reads them. The measures work out the period's bounds; the
SQL is here."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa

from opmetrics.engine.store import Store


def read_context(
    store: Store,
    first: dt.date,
    last: dt.date,
    start: dt.datetime,
    end: dt.datetime,
    duplicate_detail: str,
    top_reasons: int,
) -> dict[str, pa.Table]:
    """The context tables of the UK days `first`..`last` (UTC instants `start`..`end`), as Arrow
    tables. `duplicate_detail` is the ingest's pattern for a duplicate's row detail, removed so
    the reasons group; `top_reasons` bounds the quarantine reasons listed."""
    con = store.con

    def arrow(sql: str, params: list) -> pa.Table:
        return con.sql(sql, params=params).to_arrow_table()

    return {
        "run_incidents": arrow(
            """
            WITH o AS (SELECT incident_id, max(epoch(end_at) - epoch(start_at)) AS secs
                       FROM outages WHERE incident_id IS NOT NULL GROUP BY incident_id)
            SELECT i.incident_id, i.category, coalesce(i.region, 'all regions') AS region,
                   i.report_date, i.summary,
                   coalesce(o.secs, epoch(i.resolved_at) - epoch(i.raised_at)) / 60 AS minutes,
                   i.smets, i.raised_at, i.resolved_at, i.closed_at, i.services
            FROM incidents i LEFT JOIN o USING (incident_id)
            WHERE i.report_date BETWEEN ? AND ?
            ORDER BY i.report_date, i.incident_id""",
            [first, last],
        ),
        "run_outages": arrow(
            "SELECT * EXCLUDE (_file_id, _row) FROM outages "
            "WHERE start_at < ? AND (end_at IS NULL OR end_at > ?) ORDER BY outage_id",
            [end, start],
        ),
        "run_parties": arrow(
            """
            SELECT party_id, mode(user_role) AS user_role
            FROM service_requests GROUP BY party_id ORDER BY party_id""",
            [],
        ),
        "run_alerts": arrow(
            "SELECT kind, alert_code, count(*) AS n FROM alerts WHERE report_date BETWEEN ? AND ? "
            "GROUP BY ALL ORDER BY kind, alert_code",
            [first, last],
        ),
        "run_inputs": arrow(
            """
            SELECT table_name, count(*) AS files, sum(rows_read) AS rows_read,
                   sum(rows_accepted) AS accepted, sum(rows_quarantined) AS quarantined
            FROM loaded_files GROUP BY ALL ORDER BY table_name""",
            [],
        ),
        "run_quarantine": arrow(
            f"""
            SELECT table_name, coalesce(field, '(row)') AS field,
                   regexp_replace(reason, ?, '') AS reason, count(*) AS n
            FROM quarantine GROUP BY ALL ORDER BY n DESC, table_name, field, reason
            LIMIT {int(top_reasons)}""",
            [duplicate_detail],
        ),
    }
