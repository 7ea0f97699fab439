"""Figures of earlier months: a month's own run stored in this database, else the values
published before opmetrics ran (the contract's `published_cpm`, `published_availability` and
`published_rsvp`; issue 32, item 9), so the first computed month already has its
month-on-month column, its 13-month trends and its consecutive months below target.

A month with a stored run uses that run alone (its own figures, one methodology); published
values fill only the months never computed here. Every row names its source: `opmetrics run
<id>` or the publication the operator gave.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from opmetrics.engine.store import Store

RUN_SOURCE = "opmetrics run "
_MONTH = "strftime(report_date, '%Y-%m')"


def _earlier(
    store: Store,
    result: str,
    published: str,
    columns: dict[str, str],
    stored_filter: str,
    where: str,
    params: list[Any] | None,
) -> pa.Table:
    """`period`, `columns` and `source` of a result table's months, plus those of its published
    table for the months without a stored run, filtered by `where`. Both tables share the
    columns' names; `columns` gives their types, which type the answer when neither exists."""
    names = ", ".join(columns)
    stored = (
        f"SELECT period, {names}, '{RUN_SOURCE}' || run_id AS source FROM {result} WHERE {stored_filter}"
        if store.has_table(result)
        else None
    )
    parts = [stored] if stored else []
    if store.has_table(published):
        guard = f"WHERE period NOT IN (SELECT DISTINCT period FROM ({stored}))" if stored else ""
        parts.append(f"SELECT * FROM (SELECT {_MONTH} AS period, {names}, source FROM {published}) {guard}")
    if not parts:
        typed = {"period": "VARCHAR", **columns, "source": "VARCHAR"}
        parts = ["SELECT " + ", ".join(f"NULL::{t} AS {n}" for n, t in typed.items()) + " WHERE false"]
    sql = f"SELECT * FROM ({' UNION ALL '.join(f'({p})' for p in parts)}) WHERE {where} ORDER BY ALL"
    return store.con.sql(sql, params=params or []).to_arrow_table()


def cpm_rows(store: Store, where: str = "true", params: list[Any] | None = None) -> pa.Table:
    """CPM values by month: period, cpm, key, segment, pct, status, source."""
    columns = {"cpm": "VARCHAR", "key": "VARCHAR", "segment": "VARCHAR", "pct": "DOUBLE", "status": "VARCHAR"}
    return _earlier(store, "cpm", "published_cpm", columns, "true", where, params)


def availability_rows(store: Store, where: str = "true", params: list[Any] | None = None) -> pa.Table:
    """Monthly service levels: period, view, subject, region, band, pct, source."""
    columns = dict.fromkeys(("view", "subject", "region", "band"), "VARCHAR") | {"pct": "DOUBLE"}
    return _earlier(store, "availability", "published_availability", columns, "day IS NULL", where, params)


def rsvp_rows(store: Store, where: str = "true", params: list[Any] | None = None) -> pa.Table:
    """Monthly RSVP of processes and SRVs (all segments): period, scope, key, volume,
    success_pct, within_trt_pct, source."""
    columns = {
        "scope": "VARCHAR",
        "key": "VARCHAR",
        "volume": "BIGINT",
        "success_pct": "DOUBLE",
        "within_trt_pct": "DOUBLE",
    }
    stored_filter = "rate = 'month' AND segment = 'All'"
    return _earlier(store, "rsvp", "published_rsvp", columns, stored_filter, where, params)
