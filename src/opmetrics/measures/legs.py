"""Legs of the journey (issue 12; 001 l.3490-3570, 003 DCC proxy): where a request's round trip
goes, so the DCC's own performance can be told apart from the home network and the device.

From the optional leg timestamps of on-demand requests (contract 1.2):

- delivery to CHF/GPF (the DCC proxy): from the DCC receiving the request (or its release from
  quarantine) to the request reaching the Communications Hub or Gas Proxy Function;
- home network: from the CHF/GPF to the device's answer (a gas meter may sleep for 30 minutes);
- RTT excluding the home network: the round trip less the home-network leg;
- DSP time: the DSP's outbound leg plus its return leg, against the DSP's share of the TRT
  (TRT less the CSP's target, 001 l.3530); CSP time: the service provider's round trip.

Requests without the legs count in `requests` but not in `with_legs`: coverage says how much
of the traffic the figures stand on, and no legs at all means no proxy (stated, not guessed).
"""

from __future__ import annotations

import ibis
import pyarrow as pa

from opmetrics.measures.attribution import process_requests
from opmetrics.measures.daily import exact_median
from opmetrics.measures.records import Scope

BREAKDOWNS = ("All", "region", "device_type")
# Exact medians of integer milliseconds (stored in seconds), and the column each is taken of.
MEDIAN_OF = {
    "proxy_median_s": "_proxy",
    "han_median_s": "_han",
    "rtt_median_s": "_rtt",
    "rtt_excl_han_median_s": "_rtt_excl",
    "csp_median_s": "_csp",
    "dsp_median_s": "_dsp",
    "dsp_trt_s": "_dsp_trt",
}
MEDIANS_MS = tuple(MEDIAN_OF)


def _ms(a: ibis.Value, b: ibis.Value) -> ibis.Value:
    """Milliseconds from a to b as an integer: integer sums are exact, so stored means come out
    the same on every run (parallel float sums do not)."""
    return b.delta(a, unit="millisecond").cast("int64")


def compute_legs(s: Scope) -> pa.Table:
    t = process_requests(s)
    t = t.filter(t.mode == "on-demand")
    csp_trt = s.m.legs.csp_trt_seconds.get("on-demand")
    start = t.quarantine_released_at.coalesce(t.received_at)
    has_legs = t.csp_sent_at.notnull() & t.chf_reached_at.notnull()
    han = _ms(t.chf_reached_at, t.device_answered_at)
    rtt = t.rtt_ms.cast("int64")
    dsp = _ms(start, t.csp_sent_at) + _ms(t.csp_returned_at, t.responded_at)
    if csp_trt is not None:
        dsp_trt = ((t.trt_s - csp_trt).clip(lower=0) * 1000).cast("int64")
    else:
        dsp_trt = ibis.null().cast("int64")
    t = t.mutate(
        _legs=has_legs.cast("int64"),
        _proxy=ibis.ifelse(has_legs, _ms(start, t.chf_reached_at), ibis.null()),
        _han=han,
        _rtt_excl=rtt - han,
        _rtt=ibis.ifelse(t.device_answered_at.notnull(), rtt, ibis.null()),
        _dsp=dsp,
        _csp=_ms(t.csp_sent_at, t.csp_returned_at),
        _dsp_trt=dsp_trt,
        _dsp_in=ibis.ifelse(dsp.notnull() & dsp_trt.notnull(), (dsp <= dsp_trt).cast("int64"), ibis.null()),
    )
    # Eight passes read these: keep the join to processes and the leg arithmetic done once.
    legs = t.select("process_id", *BREAKDOWNS[1:], "_legs", "_dsp_in", *MEDIAN_OF.values())
    t = s.cached("legs_records", lambda: legs)
    keys = ["process_id", "breakdown", "key"]
    base = ibis.union(
        *[
            t.mutate(
                breakdown=ibis.literal(b), key=ibis.literal("All") if b == "All" else t[b].cast("string")
            )
            for b in BREAKDOWNS
        ]
    )
    out = (
        base.group_by(keys)
        .aggregate(
            requests=base.count(),
            with_legs=base._legs.sum(),
            proxy_sum=base._proxy.sum(),
            proxy_n=base._proxy.count(),
            han_sum=base._han.sum(),
            han_n=base._han.count(),
            dsp_within=base._dsp_in.sum(),
            dsp_counted=base._dsp_in.count(),
        )
        .order_by(keys)
        .to_pyarrow()
    )
    # Exact medians from counts per distinct millisecond (memory bounded at national volume).
    medians = {}
    for name, col in MEDIAN_OF.items():
        for r in exact_median(base, keys, col).to_pyarrow().to_pylist():
            medians[(r["process_id"], r["breakdown"], r["key"], name)] = r["median"]
    rows = out.to_pylist()
    for r in rows:
        for name in MEDIAN_OF:
            r[name] = medians.get((r["process_id"], r["breakdown"], r["key"], name))
        for k in ("proxy", "han"):  # means from exact integer sums
            total, n = r.pop(f"{k}_sum"), r.pop(f"{k}_n")
            r[f"{k}_mean_s"] = total / n / 1000 if n else None
        for k in MEDIANS_MS:
            r[k] = None if r[k] is None else r[k] / 1000
        r["coverage_pct"] = 100.0 * r["with_legs"] / r["requests"] if r["requests"] else None
        r["dsp_within_pct"] = 100.0 * r["dsp_within"] / r["dsp_counted"] if r["dsp_counted"] else None
        r["note"] = "" if r["with_legs"] else "legs of the journey not in the input: no DCC proxy"
        del r["dsp_within"], r["dsp_counted"]
    return pa.Table.from_pylist(rows, schema=SCHEMA)


SCHEMA = pa.schema(
    [
        ("process_id", pa.string()),
        ("breakdown", pa.string()),
        ("key", pa.string()),
        ("requests", pa.int64()),
        ("with_legs", pa.int64()),
        ("proxy_median_s", pa.float64()),
        ("proxy_mean_s", pa.float64()),
        ("han_median_s", pa.float64()),
        ("han_mean_s", pa.float64()),
        ("rtt_median_s", pa.float64()),
        ("rtt_excl_han_median_s", pa.float64()),
        ("csp_median_s", pa.float64()),
        ("dsp_median_s", pa.float64()),
        ("dsp_trt_s", pa.float64()),
        ("coverage_pct", pa.float64()),
        ("dsp_within_pct", pa.float64()),
        ("note", pa.string()),
    ]
)
