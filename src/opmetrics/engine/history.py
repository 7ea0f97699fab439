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


def _merged(
    store: Store, stored: str | None, published: str | None, where: str, params: list[Any], empty: str
) -> pa.Table:
    """Stored rows, plus published rows of the months without stored ones, filtered by `where`
    (over the merged columns); `empty` types the answer when neither table exists."""
    parts = []
    if stored:
        parts.append(f"SELECT * FROM ({stored})")
    if published:
        guard = f"WHERE period NOT IN (SELECT DISTINCT period FROM ({stored}))" if stored else ""
        parts.append(f"SELECT * FROM ({published}) {guard}")
    sql = f"SELECT * FROM ({' UNION ALL '.join(parts) or empty}) WHERE {where} ORDER BY ALL"
    return store.con.sql(sql, params=params).to_arrow_table()


def _empty(cols: str) -> str:
    return (
        "SELECT "
        + ", ".join(f"NULL::{c.split()[1]} AS {c.split()[0]}" for c in cols.split(", "))
        + " WHERE false"
    )


def cpm_rows(store: Store, where: str = "true", params: list[Any] | None = None) -> pa.Table:
    """CPM values by month: period, cpm, key, segment, pct, status, source."""
    stored = (
        f"SELECT period, cpm, key, segment, pct, status, '{RUN_SOURCE}' || run_id AS source FROM cpm"
        if store.has_table("cpm")
        else None
    )
    published = (
        f"SELECT {_MONTH} AS period, cpm, key, segment, pct, status, source FROM published_cpm"
        if store.has_table("published_cpm")
        else None
    )
    empty = _empty(
        "period VARCHAR, cpm VARCHAR, key VARCHAR, segment VARCHAR, pct DOUBLE, status VARCHAR, "
        "source VARCHAR"
    )
    return _merged(store, stored, published, where, params or [], empty)


def availability_rows(store: Store, where: str = "true", params: list[Any] | None = None) -> pa.Table:
    """Monthly service levels: period, view, subject, region, band, pct, source."""
    stored = (
        "SELECT period, view, subject, region, band, pct, "
        f"'{RUN_SOURCE}' || run_id AS source FROM availability WHERE day IS NULL"
        if store.has_table("availability")
        else None
    )
    published = (
        f"SELECT {_MONTH} AS period, view, subject, region, band, pct, source FROM published_availability"
        if store.has_table("published_availability")
        else None
    )
    empty = _empty(
        "period VARCHAR, view VARCHAR, subject VARCHAR, region VARCHAR, band VARCHAR, pct DOUBLE, "
        "source VARCHAR"
    )
    return _merged(store, stored, published, where, params or [], empty)


def rsvp_rows(store: Store, where: str = "true", params: list[Any] | None = None) -> pa.Table:
    """Monthly RSVP of processes and SRVs (all segments): period, scope, key, volume,
    success_pct, within_trt_pct, source."""
    stored = (
        "SELECT period, scope, key, volume, success_pct, within_trt_pct, "
        f"'{RUN_SOURCE}' || run_id AS source FROM rsvp WHERE rate = 'month' AND segment = 'All'"
        if store.has_table("rsvp")
        else None
    )
    published = (
        f"SELECT {_MONTH} AS period, scope, key, volume, success_pct, within_trt_pct, source "
        "FROM published_rsvp"
        if store.has_table("published_rsvp")
        else None
    )
    empty = _empty(
        "period VARCHAR, scope VARCHAR, key VARCHAR, volume BIGINT, success_pct DOUBLE, "
        "within_trt_pct DOUBLE, source VARCHAR"
    )
    return _merged(store, stored, published, where, params or [], empty)
