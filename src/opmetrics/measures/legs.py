"""Legs of the journey (issue 12;
003 l.296 "look at time taken to deliver SRVs"): where a request's round trip
goes, so the DCC's own performance can be told apart from the home network and the device.

From the optional leg timestamps of on-demand requests (contract 1.2):

- delivery to CHF/GPF (the DCC proxy): from the DCC receiving the request (or its release from
  quarantine) to the request reaching the Communications Hub or Gas Proxy Function;
- home network: from the CHF/GPF to the device's answer (a gas meter may sleep for 30 minutes);
- RTT excluding the home network: the round trip less the home-network leg;
- DSP time: the DSP's outbound leg plus its return leg, against the DSP's share of the TRT
  (TRT less the CSP's target,
  001 l.3530-3533 "then the DSP Target Response Time should be 5 seconds");
  CSP time: the service provider's round trip.

Requests without the legs count in `requests` but not in `with_legs`: coverage says how much
of the traffic the figures stand on, and no legs at all means no proxy (stated, not guessed).
"""

from __future__ import annotations

import ibis
import pyarrow as pa

from opmetrics.measures.attribution import process_requests
from opmetrics.measures.daily import median_from_counts
from opmetrics.measures.records import Scope, in_scope

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


KEYS = ["process_id", "breakdown", "key"]
# The additive columns of a day's legs cube and how the month merges each.
_SUMS = ("requests", "with_legs", "proxy_sum", "proxy_n", "han_sum", "han_n", "dsp_within", "dsp_counted")


def _leg_records(s: Scope) -> ibis.Table:
    """Each on-demand request's legs (integer ms), once per process it counts in."""
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
    # Two cubes (eight passes) read these: keep the join to processes and the arithmetic done once.
    legs = t.select("report_date", "process_id", *BREAKDOWNS[1:], "_legs", "_dsp_in", *MEDIAN_OF.values())
    return s.cached("legs_records", lambda: legs)


def _by_breakdown(fine: ibis.Table, cols: list[str], sums: list[str]) -> ibis.Table:
    """`fine`, grouped by day, process, every breakdown's column and `cols`, summed up once per
    breakdown (`breakdown`, `key`), its columns `sums` summed.

    The records are grouped once, by every breakdown's column together, and each breakdown is
    a grouping of those few groups: one pass over the records per leg, not one per leg and
    breakdown (docs/performance.md, Design choices measured)."""
    parts = []
    for b in BREAKDOWNS:
        key = ibis.literal("All") if b == "All" else fine[b].cast("string")
        t = fine.mutate(breakdown=ibis.literal(b), key=key)
        parts.append(
            t.group_by(["report_date", *KEYS, *cols]).aggregate(**{c: t[c].sum().cast("int64") for c in sums})
        )
    return ibis.union(*parts)


def day_sums(s: Scope) -> ibis.Table:
    """A day cube: per UK day, process and breakdown, the counts and integer sums of the legs."""
    t = _leg_records(s)
    fine = t.group_by(["report_date", "process_id", *BREAKDOWNS[1:]]).aggregate(
        requests=t.count(),
        with_legs=t._legs.sum().cast("int64"),
        proxy_sum=t._proxy.sum().cast("int64"),
        proxy_n=t._proxy.count(),
        han_sum=t._han.sum().cast("int64"),
        han_n=t._han.count(),
        dsp_within=t._dsp_in.sum().cast("int64"),
        dsp_counted=t._dsp_in.count(),
    )
    fine = s.cached("legs_sums_fine", lambda: fine)  # a few hundred rows, read once per breakdown
    return _by_breakdown(fine, [], list(_SUMS))


def day_histogram(s: Scope) -> ibis.Table:
    """A day cube: per UK day, process, breakdown and leg (`MEDIAN_OF`'s names), the count of
    each whole millisecond, from which the month's exact medians are found."""
    legs = _leg_records(s)
    parts = []
    for name, col in MEDIAN_OF.items():
        t = legs.filter(legs[col].notnull())
        parts.append(
            t.group_by(["report_date", "process_id", *BREAKDOWNS[1:], t[col].name("ms")])
            .aggregate(n=t.count())
            .mutate(leg=ibis.literal(name))
        )
    # Grouped by every breakdown's column, the legs' counts are several times fewer than the
    # records: kept once, read once per breakdown.
    fine = s.cached("legs_ms_fine", lambda: ibis.union(*parts))
    return _by_breakdown(fine, ["leg", "ms"], ["n"]).select("report_date", *KEYS, "leg", "ms", "n")


def compute_legs(
    s: Scope, sums: ibis.Table | None = None, histogram: ibis.Table | None = None, merged: bool = False
) -> pa.Table:
    """The legs of the period, merged from the stored day cubes (`day_sums`, `day_histogram`),
    or from the records when they are not given. `histogram` is the period's rows as
    `DayCubes.month_of` gives them, and `merged` says whether they are already the month's."""
    sums = day_sums(s) if sums is None else in_scope(s, sums)
    if histogram is None:
        histogram = day_histogram(s)
    out = (
        sums.group_by(KEYS)
        .aggregate(**{c: sums[c].sum().cast("int64") for c in _SUMS})
        .order_by(KEYS)
        .to_pyarrow()
    )
    # Exact medians from the month's counts per millisecond (memory bounded at national volume).
    h = histogram
    if not merged:
        h = h.group_by([*KEYS, "leg", "ms"]).aggregate(n=h.n.sum().cast("int64"))
    m = median_from_counts(h, [*KEYS, "leg"], "ms")
    m = m.select(*KEYS, "leg", median=(m.med_lo + m.med_hi).cast("float64") / 2)
    medians = {
        (r["process_id"], r["breakdown"], r["key"], r["leg"]): r["median"] for r in m.to_pyarrow().to_pylist()
    }
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
