"""Prepayment outcomes: PP1 (top-ups) and PP2 (payment mode and prepay configuration)."""

from __future__ import annotations

import datetime as dt

import ibis

from opmetrics.measures.alerting import alert_cells
from opmetrics.measures.attempts import BUCKETS, bucket, chains_of_srvs
from opmetrics.measures.outcome import (
    Context,
    Row,
    count_row,
    day_cells,
    grouped_shares,
    pct,
    rows_of,
    share_row,
    success_rows,
)
from opmetrics.measures.records import (
    Scope,
    chain_outcomes,
    included_requests,
    latest_devices,
    outcome_requests,
    repeated_chain_hashes,
    silent,
    srv_in,
)


def _topups(s: Scope) -> ibis.Table:
    t = outcome_requests(s)
    return t.filter(srv_in(t, s.m.measure("PP1").srvs))


def day_topups(s: Scope) -> ibis.Table:
    """PP1's day cells: included top-ups per region, device type and failure reason."""
    t = _topups(s)
    return t.group_by(["report_date", "region", "device_type", "failed", "failure_reason"]).aggregate(
        n=t.count()
    )


def day_topup_devices(s: Scope) -> ibis.Table:
    """The devices topped up each day per region: PP1 counts unique devices, which days cannot
    sum."""
    t = included_requests(s, s.m.measure("PP1").srvs)
    return t.select("report_date", "region", "device_id").distinct()


def _topup_cells(s: Scope, ctx: Context) -> ibis.Table:
    t = day_cells(s, ctx, "day_topups", day_topups)
    return t.mutate(_f=ibis.ifelse(t.failed, t.n, 0))


def pp1(s: Scope, ctx: Context) -> list[Row]:
    t = _topup_cells(s, ctx)
    by = {
        "region": ["region"],
        "device_type": ["device_type"],
        "device_type x region": ["device_type", "region"],
    }
    return success_rows(t, ~t.failed, by, weight="n")


def pp1_volumes(s: Scope, ctx: Context) -> list[Row]:
    t = _topup_cells(s, ctx)
    d = day_cells(s, ctx, "day_topup_devices", day_topup_devices)
    sums = {"n": t.n.sum().cast("int64"), "f": t._f.sum().cast("int64")}
    r = rows_of(t.aggregate(**sums))[0]
    dev = rows_of(d.aggregate(dev=d.device_id.nunique()))[0]["dev"]
    out = [
        count_row("volume", "successful", (r["n"] or 0) - (r["f"] or 0)),
        count_row("volume", "failed", r["f"] or 0),
        count_row("volume", "unique devices", dev),
    ]
    devices = {
        x["region"]: x["dev"] for x in rows_of(d.group_by("region").aggregate(dev=d.device_id.nunique()))
    }
    for x in rows_of(t.group_by("region").aggregate(**sums).order_by("region")):
        out.append(
            count_row(
                "region",
                x["region"],
                x["n"] - x["f"],
                "successful",
                note=f"{x['f']} failed, {devices[x['region']]} devices",
            )
        )
    return out


def pp1_non_communicating(s: Scope, ctx: Context) -> list[Row]:
    d = latest_devices(s)
    limit = s.as_of - dt.timedelta(days=s.m.outcomes.non_communicating_days)
    d = d.filter(d.device_type.isin(["ESME", "GSME"]) & (d.status == "commissioned"))
    quiet = silent(d.last_communicated_at, d.installed_at, limit)
    note = "non-communicating / commissioned meters"
    return grouped_shares(d, quiet, "device_type x region", ["device_type", "region"], note)


def pp1_attempts(s: Scope, ctx: Context) -> list[Row]:
    srvs = s.m.measure("PP1").srvs
    if ctx.attempts is not None:
        rows = chains_of_srvs(s, ctx.attempts, srvs)
    else:
        t = _topups(s)
        # The keys sent more than once are read twice (by the sends chained and by the rest).
        repeated = s.cached("pp1_repeated", lambda: repeated_chain_hashes(t))
        j = chain_outcomes(s, t, repeated=repeated)
        rows = {r["b"]: r["n"] for r in rows_of(j.group_by(b=bucket(j.won)).aggregate(n=j.count()))}
        s.forget("pp1_repeated")
    total = sum(rows.values())
    return [share_row("success on attempt", b, rows.get(b, 0), total) for b in BUCKETS]


def pp1_failure_reasons(s: Scope, ctx: Context) -> list[Row]:
    t = _topup_cells(s, ctx)
    tot = rows_of(t.aggregate(n=t.n.sum().cast("int64"), f=t._f.sum().cast("int64")))[0]
    rate = pct(tot["f"] or 0, tot["n"]) or 0.0
    threshold = s.m.outcomes.topup_failure_reason_threshold_pct
    required = "required" if rate > threshold else "for information"
    note = f"failure rate {rate:.2f} % vs threshold {threshold:g} %: reasons {required}"
    f = t.filter(t.failed)
    rows = rows_of(
        f.group_by("failure_reason")
        .aggregate(n=f.n.sum().cast("int64"))
        .order_by([ibis.desc("n"), "failure_reason"])
    )
    return [share_row("failure reason", r["failure_reason"], r["n"], tot["f"], note=note) for r in rows]


def pp1_local_credit(s: Scope, ctx: Context) -> list[Row]:
    a = alert_cells(s, ctx)
    a = a.filter(a.alert_code == s.m.outcomes.local_credit_alert)
    rows = rows_of(
        a.group_by(["device_type", "region"])
        .aggregate(n=a.n.sum().cast("int64"))
        .order_by(["device_type", "region"])
    )
    out = [count_row("all", "All", sum(r["n"] for r in rows))]
    return out + [count_row("device_type x region", r["device_type"], r["n"], r["region"]) for r in rows]


def day_pp2(s: Scope) -> ibis.Table:
    """PP2's day cells: included requests of its SRVs per SRV, device type, region and failure."""
    t = outcome_requests(s)
    t = t.filter(srv_in(t, s.m.measure("PP2").srvs))
    return t.group_by(["report_date", "srv", "device_type", "region", "failed"]).aggregate(n=t.count())


def pp2(s: Scope, ctx: Context) -> list[Row]:
    t = day_cells(s, ctx, "day_pp2", day_pp2)
    by = {"srv": ["srv"], "device_type x region": ["device_type", "region"]}
    return success_rows(t, ~t.failed, by, weight="n")


MEASURES = {
    "PP1": pp1,
    "PP1.volumes": pp1_volumes,
    "PP1.non_communicating": pp1_non_communicating,
    "PP1.attempts": pp1_attempts,
    "PP1.failure_reasons": pp1_failure_reasons,
    "PP1.local_credit": pp1_local_credit,
    "PP2": pp2,
}
CELLS = {"day_topups": day_topups, "day_topup_devices": day_topup_devices, "day_pp2": day_pp2}
