"""The dashboard's drill-down and hourly view, stored with the run (issue 32, item 1).

The dashboard used to reclassify the month's requests at every click, with the exceptions
register of the day it was asked: what it showed could differ from what the run published.
`compute` now stores two cubes of the included requests, attributed to their processes, and the
dashboard only groups them:

- `run_drill`: per process, UK day, SRV, region, SMETS, device type and SEC Party: volume,
  failures, requests within TRT and mean RTT as a sum and a count (so any grouping of the cube
  gives the exact mean, not a mean of means);
- `run_hourly`: per process, region and hour received (UTC): volume, failures and requests
  within TRT, plus the same for every included request counted once (process `all`): the
  System page's intraday chart, the pack's intraday view of each Category 1 or 2 incident and
  its daily charts of a region with an outage.
"""

from __future__ import annotations

import ibis
import pyarrow as pa

from opmetrics.measures.attribution import process_requests
from opmetrics.measures.records import Scope, classified_requests, in_scope

# The cube's dimensions, in the order the drill-down offers them, and their stored columns.
DRILL_COLUMNS = {
    "day": "report_date",
    "srv": "srv",
    "region": "region",
    "smets": "smets",
    "device_type": "device_type",
    "party": "party_id",
}


ALL_REQUESTS = "all"  # run_hourly's process_id for every included request, each counted once


_COUNTS = ("volume", "failures", "within_trt", "requests")


def _counts(t: ibis.Table) -> dict[str, ibis.Value]:
    """The counts both cubes hold, as RSVP counts them: volume (weighted), failures, requests
    within TRT and requests."""
    return {
        "volume": t.count_weight.sum(),
        "failures": t.failed.cast("int64").sum() + t.extra_failures.sum(),
        "within_trt": t.within_trt.cast("int64").sum(),
        "requests": t.count(),
    }


def by_hour(s: Scope) -> ibis.Table:
    """The attributed requests grouped by the drill cube's dimensions and the hour received.
    Both cubes and the league (LT1) regroup it, so the requests are joined to their processes
    once for the three (kept as a table of the scope's when it materialises). `outcome_ok` is
    the league's success count: successes by the outcome basis (`outcome_failed`), weighted,
    less the DSP's extra failures."""

    def build() -> ibis.Table:
        t = process_requests(s)
        rtt = ibis.ifelse(t.speed_counted, t.rtt_ms, None)
        ok = (~t.outcome_failed).cast("int64") * t.count_weight - t.extra_failures
        dims = {c: t[c] for c in DRILL_COLUMNS.values()}
        return t.group_by(process_id=t.process_id, hour=t.received_at.truncate("h"), **dims).aggregate(
            **_counts(t), rtt_sum_ms=rtt.sum().cast("float64"), rtt_n=rtt.count(), outcome_ok=ok.sum()
        )

    return s.cached("drill_by_hour", build)


def _sums(t: ibis.Table, *columns: str) -> dict[str, ibis.Value]:
    return {c: t[c].sum().cast(t[c].type()) for c in columns}


def drill_cube(s: Scope) -> ibis.Table:
    """`run_drill`'s rows of the scope's days: a day cube (`incremental.CUBE_TABLES`), since
    every row is of one UK day."""
    t = by_hour(s)
    return t.group_by(["process_id", *DRILL_COLUMNS.values()]).aggregate(
        **_sums(t, *_COUNTS, "rtt_sum_ms", "rtt_n")
    )


def hourly_cube(s: Scope) -> ibis.Table:
    """`run_hourly`'s rows of the scope's days (a day cube too)."""
    t = by_hour(s)
    per_process = t.group_by(["process_id", "region", "report_date", "hour"]).aggregate(**_sums(t, *_COUNTS))
    # A request attributed to two processes is in both; the `all` rows count it once.
    every = classified_requests(s).filter(ibis._.included)
    hourly = every.group_by(
        process_id=ibis.literal(ALL_REQUESTS),
        region=every.region,
        report_date=every.report_date,
        hour=every.received_at.truncate("h"),
    ).aggregate(**_counts(every))
    return per_process.union(hourly.cast(per_process.schema()))


def drill_tables(s: Scope, days: dict[str, ibis.Table] | None = None) -> dict[str, pa.Table]:
    """`run_drill` and `run_hourly` for the scope's period (without period and run id): the
    period's rows of the stored day cubes `days` (`day_drill`, `day_hourly`) when given, so a
    month end reads no records; else grouped from the records."""
    drill = in_scope(s, days["day_drill"]) if days else drill_cube(s)
    hourly = in_scope(s, days["day_hourly"]) if days else hourly_cube(s)
    return {
        "run_drill": drill.order_by(["process_id", *DRILL_COLUMNS.values()]).to_pyarrow(),
        "run_hourly": hourly.order_by(["process_id", "region", "hour"]).to_pyarrow(),
    }
