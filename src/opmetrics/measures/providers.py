"""Service-provider measures (issue 12;
001 l.3497 "three CSP targets for"): the CSPs' round-trip test messages
(SP1) and the DSP's own time against its share of the TRT (SP2). Which measures are reported
is data: the methodology's `service_provider_measures`."""

from __future__ import annotations

import ibis

from opmetrics.measures.outcome import Context, Row, day_cells, rows_of, share_row
from opmetrics.measures.records import Scope, classified_requests


def sp1(s: Scope, ctx: Context) -> list[Row]:
    """Per provider and target: test messages back within the target; the provider's service
    level is the average of its three shares
    (001 l.3500-3503 "An average of all three measures is used to calculate the CSP service level").
    A lost message is a failure."""
    t = s.con.table("csp_test_messages")
    t = t.filter(t.report_date.between(s.first, s.last))
    rtt = t.returned_at.delta(t.sent_at, unit="millisecond")
    ok = (t.returned_at.notnull() & (rtt <= t.target_s * 1000)).cast("int64")
    g = rows_of(
        t.group_by(["provider", "target_s"])
        .aggregate(n=t.count(), ok=ok.sum())
        .order_by(["provider", "target_s"])
    )
    out: list[Row] = []
    for provider in sorted({r["provider"] for r in g}):
        mine = [r for r in g if r["provider"] == provider]
        for r in mine:
            out.append(share_row("target", provider, r["ok"], r["n"], key2=f"{r['target_s']} s"))
        shares = [100 * r["ok"] / r["n"] for r in mine if r["n"]]
        if shares:
            out.append(
                {
                    "breakdown": "service level",
                    "key1": provider,
                    "key2": f"average of {len(shares)} target(s)",
                    "numerator": None,
                    "denominator": None,
                    "value": sum(shares) / len(shares),
                    "unit": "%",
                    "note": "" if len(shares) == 3 else "fewer than the three targets tested",
                }
            )
    return out


def day_dsp_time(s: Scope) -> ibis.Table:
    """SP2's day cells: on-demand requests with legs of the journey per region, and how many
    had the DSP's time within the TRT less the CSP's target (none, when the methodology sets
    no CSP target: SP2 is then not reported)."""
    csp = s.m.legs.csp_trt_seconds.get("on-demand")
    t = classified_requests(s)
    t = t.filter(t.included & (t.mode == "on-demand") & t.csp_sent_at.notnull() & t.csp_returned_at.notnull())
    start = t.quarantine_released_at.coalesce(t.received_at)
    dsp = t.csp_sent_at.delta(start, unit="millisecond") + t.responded_at.delta(
        t.csp_returned_at, unit="millisecond"
    )
    within = (dsp <= (t.trt_s - csp) * 1000).cast("int64") if csp is not None else ibis.literal(0, "int64")
    return t.group_by(["report_date", "region"]).aggregate(n=t.count(), ok=within.sum().cast("int64"))


def sp2(s: Scope, ctx: Context) -> list[Row]:
    """On-demand requests with legs of the journey: the DSP's time (outbound and return) within
    the TRT less the CSP's target, by region."""
    if s.m.legs.csp_trt_seconds.get("on-demand") is None:
        return []
    t = day_cells(s, ctx, "day_dsp_time", day_dsp_time)
    g = rows_of(
        t.group_by("region")
        .aggregate(n=t.n.sum().cast("int64"), ok=t.ok.sum().cast("int64"))
        .order_by("region")
    )
    total_n, total_ok = sum(r["n"] for r in g), sum(r["ok"] for r in g)
    return [share_row("region", r["region"], r["ok"], r["n"]) for r in g] + (
        [share_row("region", "All", total_ok, total_n)] if g else []
    )


MEASURES = {"SP1": sp1, "SP2": sp2}
CELLS = {"day_dsp_time": day_dsp_time}
