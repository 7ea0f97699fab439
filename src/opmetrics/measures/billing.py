"""Meter reads and billing outcomes: B1 (schedules and scheduled reads) and B2 (4.6.1)."""

from __future__ import annotations

import datetime as dt

import ibis

from opmetrics.measures.outcome import Context, Row, count_row, rows_of, share_row, success_rows
from opmetrics.measures.records import Scope, classified_requests, latest_devices


def _with_silence(s: Scope, t: ibis.Table) -> ibis.Table:
    """Flag requests to devices silent for `non_communicating_days` when the request was sent.

    A device missing from the devices input is treated as communicating (nothing to exclude on).
    """
    limit = dt.timedelta(days=s.m.outcomes.non_communicating_days)
    d = latest_devices(s).select(nc_dev="device_id", nc_last="last_communicated_at")
    # The period's requests were all sent before its end, so only devices silent since before
    # (end - limit) can be silent at a request: joining those alone spares a national estate.
    d = d.filter(d.nc_last < s.day_start(s.last + dt.timedelta(days=1)) - limit)
    j = t.left_join(d, t.device_id == d.nc_dev).drop("nc_dev")
    silent = (j.nc_last < (j.received_at - limit)).fill_null(False)
    return j.mutate(non_communicating=silent).drop("nc_last")


def _b1_reads(s: Scope) -> ibis.Table:
    srvs = s.m.measure("B1.scheduled_reads").srvs
    t = classified_requests(s).filter(ibis._.included)
    return _with_silence(s, t.filter(t.srv.isin(srvs) & (t.mode == "dcc-scheduled")))


def b1_schedules(s: Scope, ctx: Context) -> list[Row]:
    t = classified_requests(s).filter(ibis._.included)
    t = t.filter(t.srv.isin(s.m.measure("B1.schedules").srvs))
    return success_rows(t, ~t.failed, {"region": ["region"]})


def b1_scheduled_reads(s: Scope, ctx: Context) -> list[Row]:
    t = _b1_reads(s)
    t = t.filter(~t.non_communicating)
    hours = s.m.outcomes.scheduled_read_hours
    ok = t.has_response & (t.rtt_ms <= hours * 3_600_000)
    return success_rows(t, ok.fill_null(False), {"region": ["region"], "srv": ["srv"]})


def b1_categories(s: Scope, ctx: Context) -> list[Row]:
    srvs = s.m.measure("B1.schedules").srvs + s.m.measure("B1.scheduled_reads").srvs
    t = classified_requests(s).filter(ibis._.included)
    t = t.filter(t.srv.isin(srvs))
    total = rows_of(t.aggregate(n=t.count()))[0]["n"]
    rows = rows_of(t.group_by("response_category").aggregate(n=t.count()).order_by("response_category"))
    return [share_row("category", r["response_category"], r["n"], total) for r in rows]


def b1_non_communicating(s: Scope, ctx: Context) -> list[Row]:
    t = _b1_reads(s)
    t = t.filter(t.non_communicating)
    rows = rows_of(t.group_by("region").aggregate(n=t.count(), dev=t.device_id.nunique()).order_by("region"))
    total = sum(r["n"] for r in rows)
    out = [count_row("all", "All", total, note="read requests excluded from B1")]
    out += [count_row("region", r["region"], r["n"], note=f"{r['dev']} devices") for r in rows]
    return out


def b2(s: Scope, ctx: Context) -> list[Row]:
    t = classified_requests(s).filter(ibis._.included)
    t = t.filter(t.srv.isin(s.m.measure("B2").srvs))
    return success_rows(t, ~t.failed, {"region": ["region"], "mode": ["mode"]})


MEASURES = {
    "B1.schedules": b1_schedules,
    "B1.scheduled_reads": b1_scheduled_reads,
    "B1.categories": b1_categories,
    "B1.non_communicating": b1_non_communicating,
    "B2": b2,
}
