"""Prepayment outcomes: PP1 (top-ups) and PP2 (payment mode and prepay configuration)."""

from __future__ import annotations

import datetime as dt

import ibis

from opmetrics.measures.outcome import (
    Context,
    Row,
    count_row,
    grouped_shares,
    pct,
    rows_of,
    share_row,
    success_rows,
)
from opmetrics.measures.records import (
    Scope,
    chain_outcomes,
    classified_requests,
    latest_devices,
    repeated_chain_hashes,
)


def _topups(s: Scope) -> ibis.Table:
    t = classified_requests(s).filter(ibis._.included)
    return t.filter(t.srv.isin(s.m.measure("PP1").srvs))


def pp1(s: Scope, ctx: Context) -> list[Row]:
    t = _topups(s)
    return success_rows(
        t,
        ~t.failed,
        {
            "region": ["region"],
            "device_type": ["device_type"],
            "device_type x region": ["device_type", "region"],
        },
    )


def pp1_volumes(s: Scope, ctx: Context) -> list[Row]:
    t = _topups(s)
    r = rows_of(t.aggregate(n=t.count(), f=t.failed.cast("int64").sum(), dev=t.device_id.nunique()))[0]
    out = [
        count_row("volume", "successful", r["n"] - (r["f"] or 0)),
        count_row("volume", "failed", r["f"] or 0),
        count_row("volume", "unique devices", r["dev"]),
    ]
    for x in rows_of(
        t.group_by("region")
        .aggregate(n=t.count(), f=t.failed.cast("int64").sum(), dev=t.device_id.nunique())
        .order_by("region")
    ):
        out.append(
            count_row(
                "region",
                x["region"],
                x["n"] - x["f"],
                "successful",
                note=f"{x['f']} failed, {x['dev']} devices",
            )
        )
    return out


def pp1_non_communicating(s: Scope, ctx: Context) -> list[Row]:
    d = latest_devices(s)
    limit = s.as_of - dt.timedelta(days=s.m.outcomes.non_communicating_days)
    d = d.filter(d.device_type.isin(["ESME", "GSME"]) & (d.status == "commissioned"))
    silent = (d.last_communicated_at < limit).fill_null(False)
    note = "non-communicating / commissioned meters"
    return grouped_shares(d, silent, "device_type x region", ["device_type", "region"], note)


def pp1_attempts(s: Scope, ctx: Context) -> list[Row]:
    t = _topups(s)
    # The keys sent more than once are read twice (by the sends chained and by the rest).
    repeated = s.cached("pp1_repeated", lambda: repeated_chain_hashes(t))
    j = chain_outcomes(s, t, repeated=repeated)
    bucket = ibis.cases(
        (j.won == 1, "1st attempt"),
        (j.won == 2, "2nd attempt"),
        (j.won.notnull(), "later attempt"),
        else_="never",
    )
    rows = {r["b"]: r["n"] for r in rows_of(j.group_by(b=bucket).aggregate(n=j.count()))}
    s.forget("pp1_repeated")
    total = sum(rows.values())
    return [
        share_row("success on attempt", b, rows.get(b, 0), total)
        for b in ("1st attempt", "2nd attempt", "later attempt", "never")
    ]


def pp1_failure_reasons(s: Scope, ctx: Context) -> list[Row]:
    t = _topups(s)
    tot = rows_of(t.aggregate(n=t.count(), f=t.failed.cast("int64").sum()))[0]
    rate = pct(tot["f"] or 0, tot["n"]) or 0.0
    threshold = s.m.outcomes.topup_failure_reason_threshold_pct
    required = "required" if rate > threshold else "for information"
    note = f"failure rate {rate:.2f} % vs threshold {threshold:g} %: reasons {required}"
    f = t.filter(t.failed)
    rows = rows_of(
        f.group_by("failure_reason").aggregate(n=f.count()).order_by([ibis.desc("n"), "failure_reason"])
    )
    return [share_row("failure reason", r["failure_reason"], r["n"], tot["f"], note=note) for r in rows]


def pp1_local_credit(s: Scope, ctx: Context) -> list[Row]:
    a = s.con.table("alerts")
    a = a.filter(a.report_date.between(s.first, s.last) & (a.alert_code == s.m.outcomes.local_credit_alert))
    rows = rows_of(
        a.group_by(["device_type", "region"]).aggregate(n=a.count()).order_by(["device_type", "region"])
    )
    out = [count_row("all", "All", sum(r["n"] for r in rows))]
    return out + [count_row("device_type x region", r["device_type"], r["n"], r["region"]) for r in rows]


def pp2(s: Scope, ctx: Context) -> list[Row]:
    t = classified_requests(s).filter(ibis._.included)
    t = t.filter(t.srv.isin(s.m.measure("PP2").srvs))
    return success_rows(t, ~t.failed, {"srv": ["srv"], "device_type x region": ["device_type", "region"]})


MEASURES = {
    "PP1": pp1,
    "PP1.volumes": pp1_volumes,
    "PP1.non_communicating": pp1_non_communicating,
    "PP1.attempts": pp1_attempts,
    "PP1.failure_reasons": pp1_failure_reasons,
    "PP1.local_credit": pp1_local_credit,
    "PP2": pp2,
}
