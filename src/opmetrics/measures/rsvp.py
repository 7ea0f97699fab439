"""RSVP (Rate, Speed, Volume, Payload) per SRV and per business process (001 l.3576-4060).

Rate: monthly and daily. Speed: RTT mean, median (exact), min, max and % within TRT.
Volume: requests included by the methodology. Payload: failures by the payload rule.
Split SMETS2 North / Central / South, SMETS1, plus SMETS2 and All totals.
"""

from __future__ import annotations

from typing import Any

import ibis
import pyarrow as pa

from opmetrics.measures.attribution import process_requests
from opmetrics.measures.records import Scope, classified_requests

SEGMENT_TOTALS = ("SMETS2", "All")


def _aggregate(t: ibis.Table, keys: list[Any], late_if_missing: bool) -> ibis.Table:
    rtt = t.rtt_ms.cast("float64")
    rtt_counted = ibis.ifelse(t.speed_counted, rtt, None)
    responded = t.has_response.cast("int64").sum()
    volume = t.count_weight.sum()
    within = t.within_trt.cast("int64").sum()
    return t.group_by(keys).aggregate(
        volume=volume,
        failures=t.failed.cast("int64").sum() + t.extra_failures.sum(),
        no_response=(~t.has_response).cast("int64").sum(),
        responses=responded,
        rtt_count=t.speed_counted.cast("int64").sum(),
        rtt_mean_s=rtt_counted.mean() / 1000,
        rtt_median_s=rtt_counted.median() / 1000,
        rtt_min_s=rtt_counted.min() / 1000,
        rtt_max_s=rtt_counted.max() / 1000,
        within_trt=within,
        trt_denominator=t.count() if late_if_missing else responded,
    )


def rsvp_expressions(s: Scope) -> list[ibis.Table]:
    """One expression per (scope, rate, segment level); their union is the RSVP table."""
    req = classified_requests(s).filter(ibis._.included)
    proc = process_requests(s)
    scopes = {
        "srv": req.mutate(scope=ibis.literal("srv"), key=req.srv),
        "process": proc.mutate(scope=ibis.literal("process"), key=proc.process_id),
    }
    late = s.m.speed.no_response_counts_as_late
    exprs = []
    for base in scopes.values():
        for rate in ("month", "day"):
            day = base.report_date if rate == "day" else ibis.null("date")
            b = base.mutate(rate=ibis.literal(rate), day=day)
            levels = {
                "region": b.mutate(segment_out=b.segment),
                "SMETS2": b.filter(b.smets == 2).mutate(segment_out=ibis.literal("SMETS2")),
                "All": b.mutate(segment_out=ibis.literal("All")),
            }
            for lv in levels.values():
                agg = _aggregate(lv, ["scope", "key", "rate", "day", "segment_out"], late)
                exprs.append(agg.rename(segment="segment_out"))
    return exprs


def compute_rsvp(s: Scope) -> pa.Table:
    union = ibis.union(*rsvp_expressions(s))
    out = union.mutate(
        within_trt_pct=ibis.ifelse(
            union.trt_denominator > 0, 100.0 * union.within_trt / union.trt_denominator, None
        ),
        failure_pct=100.0 * union.failures / union.volume,
        success_pct=100.0 * (union.volume - union.failures) / union.volume,
    ).order_by(["scope", "key", "rate", "day", "segment"])
    tbl = out.to_pyarrow()
    return tbl.append_column("period", pa.array([s.period] * tbl.num_rows, pa.string()))
