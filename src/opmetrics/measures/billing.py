"""Meter reads and billing outcomes: B1 (schedules and scheduled reads) and B2 (4.6.1)."""

from __future__ import annotations

import datetime as dt

import ibis

from opmetrics.measures.outcome import Context, Row, count_row, day_cells, rows_of, share_row, success_rows
from opmetrics.measures.records import (
    Scope,
    included_requests,
    latest_devices,
    outcome_requests,
    silent,
    srv_in,
)


def _with_silence(s: Scope, t: ibis.Table) -> ibis.Table:
    """Flag requests to devices silent for `non_communicating_days` when the request was sent.

    A device missing from the devices input is treated as communicating (nothing to exclude on).
    """
    limit = dt.timedelta(days=s.m.outcomes.non_communicating_days)
    d = s.cached("silent_devices", lambda: _silent_devices(s, limit))
    j = t.left_join(d, t.device_id == d.nc_dev)
    # A device missing from the devices input is treated as communicating (nothing to go on).
    quiet = j.nc_dev.notnull() & silent(j.nc_last, j.nc_last, j.received_at - limit)
    return j.mutate(non_communicating=quiet).drop("nc_dev", "nc_last")


def _silent_devices(s: Scope, limit: dt.timedelta) -> ibis.Table:
    """(nc_dev, nc_last): the devices that can be silent at one of the scope's requests.

    Kept as a table, read by both read cubes: its exact size lets DuckDB build the join on
    these few devices, where over the extract's filter it built it on the day's requests
    (docs/performance.md, Design choices measured)."""
    d = latest_devices(s)
    # Silent since the last communication, or since installation when it never communicated.
    d = d.select(nc_dev="device_id", nc_last=d.last_communicated_at.coalesce(d.installed_at))
    # The period's requests were all sent before its end, so only devices silent since before
    # (end - limit) can be silent at a request: joining those alone spares a national estate.
    end = s.day_start(s.last + dt.timedelta(days=1)) - limit
    return d.filter(d.nc_last.isnull() | (d.nc_last < end))


def _read_srvs(s: Scope) -> list[str]:
    ids = ("B1.schedules", "B1.scheduled_reads", "B2")
    return sorted({c for i in ids for c in s.m.measure(i).srvs})


def day_reads(s: Scope) -> ibis.Table:
    """B1's and B2's day cells: the included requests of their SRVs per SRV, mode, region,
    response category, failure, silence of the device (B1's exclusion) and whether answered
    within B1's hours (`ok_read`)."""
    t = outcome_requests(s)
    t = _with_silence(s, t.filter(srv_in(t, _read_srvs(s))))
    hours = s.m.outcomes.scheduled_read_hours
    ok_read = (t.has_response & (t.rtt_ms <= hours * 3_600_000)).fill_null(False)
    keys = ["report_date", "srv", "mode", "region", "response_category", "failed", "non_communicating"]
    return t.group_by([*keys, ok_read.name("ok_read")]).aggregate(n=t.count())


def day_silent_reads(s: Scope) -> ibis.Table:
    """Scheduled reads to non-communicating devices per region and device: B1 excludes them,
    and reports how many devices, which days cannot sum."""
    srvs = s.m.measure("B1.scheduled_reads").srvs
    t = included_requests(s, srvs, lambda r: r.mode == "dcc-scheduled")
    t = _with_silence(s, t)
    t = t.filter(t.non_communicating)
    return t.group_by(["report_date", "region", "device_id"]).aggregate(n=t.count())


def _reads(s: Scope, ctx: Context, measure: str) -> ibis.Table:
    """The day cells of a measure's SRVs, in the modes it counts (`modes`; all when empty): B2
    counts on-demand reads, B1's scheduled reads DCC-scheduled ones.
    001 l.4218-4219 "Provide a measure of the success of on demand meter reads"."""
    md = s.m.measure(measure)
    t = day_cells(s, ctx, "day_reads", day_reads)
    t = t.filter(t.srv.isin(md.srvs))
    return t.filter(t.mode.isin(md.modes)) if md.modes else t


def b1_schedules(s: Scope, ctx: Context) -> list[Row]:
    t = _reads(s, ctx, "B1.schedules")
    return success_rows(t, ~t.failed, {"region": ["region"]}, weight="n")


def b1_scheduled_reads(s: Scope, ctx: Context) -> list[Row]:
    t = _reads(s, ctx, "B1.scheduled_reads")
    t = t.filter((t.mode == "dcc-scheduled") & ~t.non_communicating)  # 2026.4 names no modes
    return success_rows(t, t.ok_read, {"region": ["region"], "srv": ["srv"]}, weight="n")


def b1_categories(s: Scope, ctx: Context) -> list[Row]:
    srvs = s.m.measure("B1.schedules").srvs + s.m.measure("B1.scheduled_reads").srvs
    t = day_cells(s, ctx, "day_reads", day_reads)
    t = t.filter(t.srv.isin(srvs))
    rows = rows_of(
        t.group_by("response_category").aggregate(n=t.n.sum().cast("int64")).order_by("response_category")
    )
    total = sum(r["n"] for r in rows)
    out = [share_row("category", r["response_category"], r["n"], total) for r in rows]
    # Per mode of operation, each mode's categories as shares of its requests:
    # 001 l.937 "an additional breakdown by SLA / Mode of Operation will be needed".
    by_mode = rows_of(
        t.group_by(["mode", "response_category"])
        .aggregate(n=t.n.sum().cast("int64"))
        .order_by(["mode", "response_category"])
    )
    per_mode: dict[str, int] = {}
    for r in by_mode:
        per_mode[r["mode"]] = per_mode.get(r["mode"], 0) + r["n"]
    for r in by_mode:
        n, d = r["n"], per_mode[r["mode"]]
        out.append(share_row("category x mode", r["response_category"], n, d, r["mode"]))
    return out


def b1_non_communicating(s: Scope, ctx: Context) -> list[Row]:
    t = day_cells(s, ctx, "day_silent_reads", day_silent_reads)
    rows = rows_of(
        t.group_by("region")
        .aggregate(n=t.n.sum().cast("int64"), dev=t.device_id.nunique())
        .order_by("region")
    )
    total = sum(r["n"] for r in rows)
    out = [count_row("all", "All", total, note="read requests excluded from B1")]
    out += [count_row("region", r["region"], r["n"], note=f"{r['dev']} devices") for r in rows]
    return out


def b2(s: Scope, ctx: Context) -> list[Row]:
    t = _reads(s, ctx, "B2")
    return success_rows(t, ~t.failed, {"region": ["region"], "mode": ["mode"]}, weight="n")


MEASURES = {
    "B1.schedules": b1_schedules,
    "B1.scheduled_reads": b1_scheduled_reads,
    "B1.categories": b1_categories,
    "B1.non_communicating": b1_non_communicating,
    "B2": b2,
}
CELLS = {"day_reads": day_reads, "day_silent_reads": day_silent_reads}
