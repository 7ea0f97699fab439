"""Per-day mergeable aggregates ("day cubes") and the month assembled from them (issue 11).

The request and alert measures that read every record (RSVP, CPM1-3) are computed in two steps:

1. each UK day's records are classified and reduced once, into small tables whose columns are
   all sums, minima and maxima (so any set of days merges by adding them up), plus an exact RTT
   histogram: a count per (SRV or process, region, whole millisecond);
2. the month's and each day's figures are assembled from those tables. An exact median comes
   from the merged histogram: the middle value(s) of the counted RTTs, found by a running count.

A late or corrected day therefore re-reduces one day, not the month, and the assembled figures
equal a full recomputation by construction (tested). Everything here is an Ibis expression, so
DuckDB and Spark run the same definitions.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import ibis

from opmetrics.measures.attribution import join_processes, marked, marks
from opmetrics.measures.records import Scope, classified_alerts, classified_requests, in_scope, speed_requests

if TYPE_CHECKING:
    from opmetrics.measures.outcome import Folds

# What one day's request cube is keyed by: enough for RSVP's region / SMETS2 / All levels and
# CPM1-2's mode and criticality filters.
REQUEST_KEYS = ["report_date", "scope", "key", "segment", "smets", "mode", "critical", "device_type"]
RTT_KEYS = ["report_date", "scope", "key", "segment", "smets", "rtt_ms"]
ALERT_KEYS = ["report_date", "segment"]


@dataclass
class DayCubes:
    """The per-day aggregate tables (as Ibis tables) a month is assembled from."""

    requests: ibis.Table  # additive counts per REQUEST_KEYS
    rtt: ibis.Table  # exact RTT histogram: n per RTT_KEYS (speed-counted responses only)
    alerts: ibis.Table  # CPM3 counts per ALERT_KEYS
    daily: ibis.Table | None = None  # RSVP's daily rows, kept from when each day was reduced
    # The diagnostics' and legs' own cubes (`diagnostics.day_counts`, `legs.day_sums` and
    # `legs.day_histogram`); when missing, those families read the records.
    diagnostics: ibis.Table | None = None
    legs: ibis.Table | None = None
    legs_ms: ibis.Table | None = None
    # ATT1's chains folded day by day (see `attempts`).
    attempts: Folds | None = None
    # The outcome measures' day cells, by table name (`outcome.day_cells`).
    outcomes: dict[str, ibis.Table] = field(default_factory=dict)
    # Histograms kept merged per period, by the name of their day cube (`day_rtt`,
    # `day_legs_ms`): the same keys and count `n`, with `period` in place of `report_date`.
    months: dict[str, ibis.Table] = field(default_factory=dict)
    # Requests per day and inclusion rule (`records.fate_cube`): the run summary's counts.
    fates: ibis.Table | None = None
    # The dashboard's cubes per day (`drill.drill_cube`, `drill.hourly_cube`), by table name.
    drill: dict[str, ibis.Table] = field(default_factory=dict)

    def month_of(self, s: Scope, name: str, days: ibis.Table | None) -> tuple[ibis.Table | None, bool]:
        """The period's rows of day cube `name` (`days`), and whether they are already merged
        (its month total, when there is one and the scope is the whole period)."""
        month = self.months.get(name)
        if days is None or month is None or s.days is not None:
            return (None if days is None else in_scope(s, days)), False
        return month.filter(month.period == s.period).drop("period"), True


def _fine(
    s: Scope,
    key: str,
    by: list[str],
    sums: Callable[[Scope, ibis.Table], dict],
    rtt: bool,
    derive: Callable[[ibis.Table], dict] | None = None,
) -> ibis.Table:
    """Included requests summed per `by`, SRV and set of processes they belong to (`rtt`: only
    the speed-counted ones, with their RTT in whole milliseconds).

    One pass over the requests serves both scopes: the SRV rows and every process's rows are
    then sums over this small table (a request in two processes counts in each), with no join
    of the records to their processes. The requests are grouped by their attribution marks
    (kept as columns), for their processes to be decided per group: a rule reads only the
    SRV, SMETS and marks."""
    assert "smets" in by

    def build() -> ibis.Table:
        if rtt:
            t = marked(s, speed_requests(s)).mutate(rtt_ms=ibis._.rtt_ms.cast("int64"))
        else:
            t = marked(s, classified_requests(s).filter(ibis._.included))
        fine = t.group_by([*by, "srv", *marks(s)]).aggregate(**sums(s, t))
        return fine if derive is None else fine.mutate(**derive(fine))

    return s.cached(key, build)


def _by_scope(
    s: Scope, fine: ibis.Table, by: list[str], merge: Callable[[ibis.Table], dict], keys: list[str]
) -> ibis.Table:
    """The SRV-scope rows and each process's rows of a `_fine` table, with columns `keys` and
    `merge`'s."""
    srv = fine.group_by([*by, "srv"]).aggregate(**merge(fine))
    srv = srv.mutate(scope=ibis.literal("srv"), key=srv.srv)
    # Each fine row once per process it counts in, from the rules decided per combination.
    each = join_processes(s, fine).rename(key="process_id")
    proc = each.group_by([*by, "key"]).aggregate(**merge(each)).mutate(scope=ibis.literal("process"))
    cols = [*keys, *merge(fine)]
    return ibis.union(srv.select(*cols), proc.select(*cols))


_REQ_BY = ["report_date", "segment", "smets", "mode", "critical", "device_type"]
_RTT_BY = ["report_date", "segment", "smets", "rtt_ms"]
# The four response categories of 001 l.941-944 "No Response received (successful response code)",
# as RSVP columns (a success code is the SRV's own: `records.success_code`).
CATEGORY_COLUMNS = [
    "no_response_success_code",
    "no_response_other_code",
    "response_success_code",
    "response_other_code",
]
_SUMS = [
    "records",
    "volume",
    "failures",
    "no_response",
    "responses",
    "within_trt",
    "delivered_within_trt",
    "payload_failures",
    *CATEGORY_COLUMNS,
    "rtt_count",
    "rtt_sum_ms",
]


def _count(flag: ibis.Value) -> ibis.Value:
    return flag.cast("int64").sum().cast("int64")


def _request_sums(s: Scope, t: ibis.Table) -> dict:
    """What a pass over the requests sums per group; the counts that follow from these
    (`_derived_sums`) are worked out on the groups, each sum costing a pass its share."""
    rtt = ibis.ifelse(t.speed_counted, t.rtt_ms, None).cast("int64")
    got, ok = t.has_response, t.success_code
    once = s.m.counting.dsp_retries_count_once  # each request weighs 1, with no extra failure
    return {
        "records": t.count(),
        "volume": t.count() if once else t.count_weight.cast("int64").sum().cast("int64"),
        "failures": _count(t.failed)
        if once
        else (t.failed.cast("int64") + t.extra_failures.cast("int64")).sum().cast("int64"),
        "responses": _count(got),
        "within_trt": _count(t.within_trt),
        # CPM6A's numerator when it counts deliveries: answered with a success code in time.
        "delivered_within_trt": _count(t.within_trt & ~t.outcome_failed),
        "payload_failures": _count(t.payload_failure),
        "no_response_success_code": _count(~got & ok),
        "response_success_code": _count(got & ok),
        "rtt_count": _count(t.speed_counted),
        "rtt_sum_ms": rtt.sum().cast("int64"),
        "rtt_min_ms": rtt.min(),
        "rtt_max_ms": rtt.max(),
    }


def _derived_sums(f: ibis.Table) -> dict:
    """The request counts that follow from `_request_sums`' (a response and a success code
    are flags that are never null)."""
    no_response = f.records - f.responses
    return {
        "no_response": no_response,
        "no_response_other_code": no_response - f.no_response_success_code,
        "response_other_code": f.responses - f.response_success_code,
    }


def _merged_sums(t: ibis.Table) -> dict:
    return {c: t[c].sum().cast("int64") for c in _SUMS} | {
        "rtt_min_ms": t.rtt_min_ms.min(),
        "rtt_max_ms": t.rtt_max_ms.max(),
    }


def request_cube(s: Scope) -> ibis.Table:
    fine = _fine(s, "fine_requests", _REQ_BY, _request_sums, rtt=False, derive=_derived_sums)
    return _by_scope(s, fine, _REQ_BY, _merged_sums, REQUEST_KEYS)


def rtt_histogram(s: Scope) -> ibis.Table:
    fine = _fine(s, "fine_rtt", _RTT_BY, lambda _, t: {"n": t.count()}, rtt=True)
    return _by_scope(s, fine, _RTT_BY, lambda t: {"n": t.n.sum().cast("int64")}, RTT_KEYS)


def alert_cube(s: Scope) -> ibis.Table:
    t = classified_alerts(s).filter(ibis._.included)
    return t.group_by(ALERT_KEYS).aggregate(
        records=t.count(), within_trt=t.within_trt.cast("int64").sum().cast("int64")
    )


def day_cubes(s: Scope) -> DayCubes:
    """The cubes of the scope's days, as expressions (evaluated by whichever backend runs them)."""
    return DayCubes(request_cube(s), rtt_histogram(s), alert_cube(s))


# ---- assembly -------------------------------------------------------------------------------

GROUP = ["scope", "key", "rate", "day", "segment"]


def _levels(t: ibis.Table, rate: str) -> list[ibis.Table]:
    """RSVP's three segment levels (each region and SMETS1; SMETS2 total; All) at one rate."""
    day = t.report_date if rate == "day" else ibis.null("date")
    b = t.mutate(rate=ibis.literal(rate), day=day)
    return [
        b,
        b.filter(b.smets == 2).mutate(segment=ibis.literal("SMETS2")),
        b.mutate(segment=ibis.literal("All")),
    ]


# Values per coarse bucket when finding a median from counts (see `median_from_counts`).
MEDIAN_BUCKET = 1024


def median_from_counts(h: ibis.Table, keys: list[str], value: str, n: str = "n") -> ibis.Table:
    """Exact median of `value` per `keys`, from rows of (keys, value, count `n`); a value may
    have several rows.

    The median of N sorted values is the mean of those at 0-based positions floor((N-1)/2) and
    ceil((N-1)/2); the value at position p is the first one whose running count exceeds p.
    Running counts need a sort, so they are taken twice, each over few rows: first over
    buckets of MEDIAN_BUCKET values, to find the bucket holding each position, then over the
    values of those buckets alone. Only grouping, joins and running sums: it spills to disk,
    unlike a holistic median aggregate. Keys may be null (a month row has no day).
    """
    bucket = h[value] // MEDIAN_BUCKET  # any order-keeping grouping of the values will do
    coarse = h.group_by([*keys, bucket.name("_b")]).aggregate(_cn=h[n].sum().cast("int64"))
    running = ibis.cumulative_window(group_by=keys, order_by=coarse._b)
    coarse = coarse.mutate(
        _before=coarse._cn.sum().over(running).cast("int64") - coarse._cn,
        _total=coarse._cn.sum().over(ibis.window(group_by=keys)).cast("int64"),
    )
    lo = (coarse._total - 1) // 2
    hi = coarse._total // 2  # = ceil((N-1)/2)

    def holds(p: ibis.Value) -> ibis.Value:
        return (coarse._before <= p) & (p < coarse._before + coarse._cn)

    pick = coarse.filter(holds(lo) | holds(hi)).select(
        *[coarse[k].name(f"_k_{k}") for k in keys], "_b", "_before", _lo=lo, _hi=hi
    )
    fine = h.mutate(_fb=bucket)
    same = [fine[k].identical_to(pick[f"_k_{k}"]) for k in keys] + [fine._fb == pick._b]
    j = fine.inner_join(pick, same)
    within = ibis.cumulative_window(group_by=[*[j[k] for k in keys], j._fb], order_by=j[value])
    j = j.mutate(_cum=j._before + j[n].sum().over(within).cast("int64"))
    return j.group_by(keys).aggregate(
        med_lo=j[value].min(where=j._cum > j._lo),
        med_hi=j[value].min(where=j._cum > j._hi),
    )


def _median_ms(levels: list[ibis.Table]) -> ibis.Table:
    """Exact median RTT per GROUP from each level's histogram rows (GROUP + rtt_ms + n).

    A value may have several rows (one per region in the All level): `median_from_counts`
    allows that, so they are not merged first (a grouping of millions of rows at national
    volume). Each level is its own median query: the median reads its rows twice, and the
    levels' union read twice is a shared subquery, which DuckDB copies in full (the daily
    rows of 0.3 of a national day took 0.98 s that way, against 0.32 s)."""
    meds = [median_from_counts(lv.select(*GROUP, "rtt_ms", "n"), GROUP, "rtt_ms") for lv in levels]
    return ibis.union(*meds)


def _assemble_rate(s: Scope, req: ibis.Table, rtt: ibis.Table, rate: str, merged: bool = False) -> ibis.Table:
    """RSVP rows at one rate from (already period-filtered) cubes; `merged`: `rtt` is already
    the month's histogram."""
    late = s.m.speed.no_response_counts_as_late
    keys = ["scope", "key", "segment", "smets"]
    if rate == "month" and not merged:
        # Merge the days' histograms first: a month of days shrinks to one row per RTT value.
        rtt = rtt.group_by([*keys, "rtt_ms"]).aggregate(n=rtt.n.sum().cast("int64"))
    sums = [
        lv.group_by(GROUP).aggregate(
            volume=lv.volume.sum().cast("int64"),
            failures=lv.failures.sum().cast("int64"),
            no_response=lv.no_response.sum().cast("int64"),
            responses=lv.responses.sum().cast("int64"),
            rtt_count=lv.rtt_count.sum().cast("int64"),
            rtt_sum_ms=lv.rtt_sum_ms.sum().cast("int64"),
            rtt_min_ms=lv.rtt_min_ms.min(),
            rtt_max_ms=lv.rtt_max_ms.max(),
            within_trt=lv.within_trt.sum().cast("int64"),
            delivered_within_trt=lv.delivered_within_trt.sum().cast("int64"),
            trt_denominator=(lv.records if late else lv.responses).sum().cast("int64"),
            payload_failures=lv.payload_failures.sum().cast("int64"),
            **{c: lv[c].sum().cast("int64") for c in CATEGORY_COLUMNS},
        )
        for lv in _levels(req, rate)
    ]
    agg = ibis.union(*sums)
    med = _median_ms(_levels(rtt, rate))
    med = med.rename(m_scope="scope", m_key="key", m_day="day", m_segment="segment")
    same = [agg.scope == med.m_scope, agg.key == med.m_key, agg.segment == med.m_segment]
    if rate == "day":
        same.append(agg.day == med.m_day)
    j = agg.left_join(med, same)
    counted = j.rtt_count > 0
    out = j.select(
        *GROUP,
        "volume",
        "failures",
        "no_response",
        "responses",
        "rtt_count",
        rtt_mean_s=ibis.ifelse(counted, j.rtt_sum_ms.cast("float64") / j.rtt_count / 1000, None),
        rtt_median_s=ibis.ifelse(counted, (j.med_lo + j.med_hi).cast("float64") / 2 / 1000, None),
        rtt_min_s=ibis.ifelse(counted, j.rtt_min_ms.cast("float64") / 1000, None),
        rtt_max_s=ibis.ifelse(counted, j.rtt_max_ms.cast("float64") / 1000, None),
        within_trt="within_trt",
        trt_denominator="trt_denominator",
        delivered_within_trt="delivered_within_trt",
        payload_failures="payload_failures",
        **{c: c for c in CATEGORY_COLUMNS},
    )
    return out.mutate(
        within_trt_pct=ibis.ifelse(out.trt_denominator > 0, _pct(out.within_trt, out.trt_denominator), None),
        failure_pct=_pct(out.failures, out.volume),
        success_pct=_pct(out.volume - out.failures, out.volume),
        payload_failure_pct=_pct(out.payload_failures, out.volume),
    )


def assemble_modes(s: Scope, cubes: DayCubes, by: str = "mode") -> ibis.Table:
    """RSVP's month by mode of operation (`by="mode"`), as
    001 l.937 "an additional breakdown by SLA / Mode of Operation will be needed" asks, or by
    device type (`by="device_type"`), as
    001 l.307 "the TRT target should also be provided for Gas Smart Metering Equipment" asks of
    Install and Commission: volume, payload and within-TRT per SRV or process, segment level and
    mode or device type, each request against its own TRT; from the same request cube as RSVP,
    so the rows add up to RSVP's month. RTT statistics are RSVP's (`speed.rtt_modes`)."""
    req = in_scope(s, cubes.requests)
    late = s.m.speed.no_response_counts_as_late
    levels = _levels(req, "month")
    group = ["scope", "key", "segment", by]
    sums = [
        lv.group_by(group).aggregate(
            volume=lv.volume.sum().cast("int64"),
            failures=lv.failures.sum().cast("int64"),
            payload_failures=lv.payload_failures.sum().cast("int64"),
            no_response=lv.no_response.sum().cast("int64"),
            within_trt=lv.within_trt.sum().cast("int64"),
            delivered_within_trt=lv.delivered_within_trt.sum().cast("int64"),
            trt_denominator=(lv.records if late else lv.responses).sum().cast("int64"),
        )
        for lv in levels
    ]
    out = ibis.union(*sums)
    return out.mutate(
        within_trt_pct=ibis.ifelse(out.trt_denominator > 0, _pct(out.within_trt, out.trt_denominator), None),
        success_pct=_pct(out.volume - out.failures, out.volume),
        payload_failure_pct=_pct(out.payload_failures, out.volume),
    ).order_by(group)


def daily_rsvp(s: Scope, cubes: DayCubes) -> ibis.Table:
    """The daily RSVP rows of the scope's days: computed once per day when it is reduced."""
    return _assemble_rate(s, in_scope(s, cubes.requests), in_scope(s, cubes.rtt), "day")


def assemble_rsvp(s: Scope, cubes: DayCubes) -> ibis.Table:
    """The RSVP table for the scope's period from the day cubes: the monthly rows assembled
    now, the daily rows from `cubes.daily` (stored when each day was reduced) or assembled now."""
    req = in_scope(s, cubes.requests)
    rtt, merged = cubes.month_of(s, "day_rtt", cubes.rtt)
    month = _assemble_rate(s, req, rtt, "month", merged)
    if cubes.daily is None:
        days = _assemble_rate(s, req, in_scope(s, cubes.rtt), "day")
    else:
        days = in_scope(s, cubes.daily, "day").select(*month.columns).cast(month.schema())
    return ibis.union(month, days).order_by(GROUP)


def _pct(num: ibis.Value, den: ibis.Value) -> ibis.Value:
    """100 x num / den in double precision on every backend (a bare 100.0 is a DECIMAL on Spark)."""
    return num.cast("float64") * 100 / den.cast("float64")


def month_requests(s: Scope, cubes: DayCubes) -> ibis.Table:
    """The srv-scope request cube rows of the period (CPM1-2 sum these)."""
    c = in_scope(s, cubes.requests)
    return c.filter(c.scope == "srv")


def month_alerts(s: Scope, cubes: DayCubes) -> ibis.Table:
    return in_scope(s, cubes.alerts)
