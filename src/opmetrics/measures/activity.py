"""Candidate outages from a lack of activity: windows in which a region's requests answered with
a success code fell far below what the same time of day usually sees,
after 001 l.1009 "identify a lack of activity across parts of the network, which will denote".

They are proposals for an analyst to confirm and enter in the outages input: never counted
in availability, which reads only the outages loaded. Parameters are the measure's (`params`
of AV1.activity_gaps): the bin width, the share of the expected successes under which a bin is
quiet, the run of quiet bins that makes a window, and the expected count a bin needs before
its quiet means anything (night bins are quiet every night).
"""

from __future__ import annotations

import datetime as dt
import statistics
from collections import defaultdict
from zoneinfo import ZoneInfo

import ibis

from opmetrics.measures.outcome import Context, Row, day_cells, rows_of
from opmetrics.measures.records import Scope, included_requests, success_code

MEASURE = "AV1.activity_gaps"


def _params(s: Scope) -> dict[str, float]:
    """The measure's parameters (none where the methodology, e.g. 2026.4, does not have it: its
    day cells are still reduced with the others)."""
    return next((x.params for x in s.m.measures if x.id == MEASURE), {})


def _bin_minutes(s: Scope) -> int:
    return int(_params(s).get("bin_minutes", 15))


def day_activity(s: Scope) -> ibis.Table:
    """AV1's day cells: per UK day, region and bin of UTC time (minutes since the epoch over the
    bin width), the included requests and those answered with a success code."""
    t = included_requests(s, None)
    width = 60 * _bin_minutes(s)
    b = (t.received_at.epoch_seconds() // width).cast("int64")
    t = t.mutate(_bin=b, _ok=success_code(s, t).cast("int64"))
    return t.group_by(["report_date", "region", "_bin"]).aggregate(n=t.count(), ok=t._ok.sum().cast("int64"))


def _day_type(d: dt.date) -> str:
    return "sunday" if d.weekday() == 6 else "saturday" if d.weekday() == 5 else "weekday"


def activity_gaps(s: Scope, ctx: Context) -> list[Row]:
    """Quiet windows per region, each with the successes seen and expected in it."""
    p = _params(s)
    width = _bin_minutes(s)
    share, min_bins, min_expected = (
        p.get("max_share", 0.5),
        int(p.get("min_bins", 2)),
        p.get("min_expected", 30),
    )
    cells = day_cells(s, ctx, "day_activity", day_activity)
    rows = rows_of(cells.group_by(["region", "_bin"]).aggregate(ok=cells.ok.sum().cast("int64")))
    zone = ZoneInfo(s.m.report_timezone)
    bins = range(
        *(
            int(s.day_start(d).replace(tzinfo=dt.UTC).timestamp()) // (60 * width)
            for d in (s.first, s.last + dt.timedelta(days=1))
        )
    )
    # Each bin's UK day type and minute of day: what "the same time of day" means.
    slot = {}
    for b in bins:
        t = dt.datetime.fromtimestamp(b * 60 * width, dt.UTC).astimezone(zone)
        slot[b] = (_day_type(t.date()), t.hour * 60 + t.minute, t)
    seen: dict[str, dict[int, int]] = defaultdict(dict)
    for r in rows:
        seen[r["region"]][r["_bin"]] = r["ok"]
    out: list[Row] = []
    for region in sorted(seen):
        got = seen[region]
        usual: dict[tuple[str, int], list[int]] = defaultdict(list)
        for b in bins:
            usual[slot[b][:2]].append(got.get(b, 0))
        expected = {k: statistics.median(v) for k, v in usual.items()}
        run: list[tuple[int, int, float]] = []
        for b in [*bins, None]:  # a last step that closes any open run
            e = 0.0 if b is None else expected[slot[b][:2]]
            n = 0 if b is None else got.get(b, 0)
            if b is not None and e >= min_expected and n <= share * e:
                run.append((b, n, e))
                continue
            if len(run) >= min_bins:
                out.append(_window(region, run, width, slot))
            run = []
    return out


def _window(region: str, run: list[tuple[int, int, float]], width: int, slot: dict) -> Row:
    """A quiet window as an outcome row: successes seen against those usually seen."""
    a = slot[run[0][0]][2]
    z = a + dt.timedelta(minutes=width * len(run))
    n, e = sum(x[1] for x in run), sum(x[2] for x in run)
    usual = round(e)  # the value is computed from the counts shown, so they reproduce it
    return {
        "breakdown": "region",
        "key1": region,
        "key2": f"{a:%Y-%m-%d %H:%M}-{z:%H:%M} UK",
        "numerator": n,
        "denominator": usual,
        "value": 100.0 * n / usual if usual else None,
        "unit": "%",
        "note": (
            f"candidate outage: {len(run) * width} min with {n} requests answered with a success code "
            f"against {usual} usually; for confirmation, not counted in availability"
        ),
    }


MEASURES = {MEASURE: activity_gaps}
CELLS = {"day_activity": day_activity}
