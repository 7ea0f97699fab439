"""The month's big events as a reader at the monthly meeting wants to see them (issue 32, item 8):
each Category 1 or 2 incident hour by hour, and each region that had an unplanned outage day by
day. Both read only what the run stored (`run_hourly`, the run's incidents, outages and
availability), never the requests.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from typing import Any
from zoneinfo import ZoneInfo

from opmetrics.methodology import Methodology
from opmetrics.report.charts import incident_intraday_svg, region_daily_svg
from opmetrics.report.figures import Figures

MARGIN = dt.timedelta(hours=6)  # hours shown either side of an incident
LONGEST = dt.timedelta(hours=72)  # an intraday view never spans more than three days
INTERFACE = "DCC User Interface"  # the Service whose regional availability a region's chart shows
COUNTS = ("volume", "failures", "within_trt", "requests")  # run_hourly's counts
NONE = [0, 0, 0, 0]  # an hour or a day without requests


def _pct(num: float, den: float) -> float | None:
    return 100.0 * num / den if den else None


def _hour(t: dt.datetime) -> dt.datetime:
    return t.replace(minute=0, second=0, microsecond=0)


def incident_views(f: Figures, m: Methodology) -> list[dict[str, Any]]:
    """Per Category 1 or 2 incident: the requests of its region (all regions when it had none)
    hour by hour from six hours before it was raised to six hours after it was resolved."""
    zone = ZoneInfo(m.report_timezone)
    regions = {*m.segments.smets2_regions, m.segments.smets1}
    hourly: dict[tuple[str, dt.datetime], list[int]] = {}
    for r in f.hourly:
        hourly[(r["region"], r["hour"])] = [r[c] for c in COUNTS]
    out = []
    for i in f.incidents:
        outages = [o for o in f.outages if o["incident_id"] == i["incident_id"] and not o["planned"]]
        end = i["resolved_at"] or f.as_of
        outage = (
            (min(o["start_at"] for o in outages), max(o["end_at"] or f.as_of for o in outages))
            if outages
            else None
        )
        a = _hour(min([i["raised_at"], *(outage[:1] if outage else ())]) - MARGIN)
        z = max([end, *(outage[1:] if outage else ())]) + MARGIN
        a, z = max(a, f.first_utc), min(z, f.end_utc, a + LONGEST)
        where = [i["region"]] if i["region"] in regions else sorted(regions)
        hours, t = [], a
        while t < z:
            vol, bad, within, n = (
                sum(c) for c in zip(*(hourly.get((r, t), NONE) for r in where), strict=True)
            )
            hours.append((_local(t, zone), vol, _pct(vol - bad, vol), _pct(within, n)))
            t += dt.timedelta(hours=1)
        window = (_local(i["raised_at"], zone), _local(end, zone))
        drawn = (_local(outage[0], zone), _local(outage[1], zone)) if outage else None
        title = (
            f"{i['incident_id']} (Category {i['category']}, {i['region']}, {i['duration']}): "
            f"requests {'in ' + i['region'] if i['region'] in regions else 'in every region'}, UK time"
        )
        chart = incident_intraday_svg(hours, window, drawn, title)
        out.append({"incident": i, "hours": hours, "chart": chart})
    return out


def region_views(f: Figures, m: Methodology) -> list[dict[str, Any]]:
    """Per region with an unplanned outage of its own in the month: the DCC User Interface's
    daily availability there and its requests' daily success and within-TRT rates, the days of
    its own and of every-region outages shaded."""
    zone = ZoneInfo(m.report_timezone)
    regions = [*m.segments.smets2_regions, m.segments.smets1]
    hit: dict[str | None, set[int]] = defaultdict(set)  # None: an outage of every region
    for o in f.outages:
        if o["planned"] or (o["region"] is not None and o["region"] not in regions):
            continue
        a, z = max(o["start_at"], f.first_utc), min(o["end_at"] or f.as_of, f.end_utc)
        day = _local(a, zone).date()
        while z > a and day <= _local(z - dt.timedelta(microseconds=1), zone).date():
            hit[o["region"]].add(day.day)
            day += dt.timedelta(days=1)
    out = []
    for region in [r for r in regions if hit.get(r)]:
        shaded = hit[region] | hit[None]
        sums: dict[int, list[int]] = defaultdict(lambda: list(NONE))
        for r in f.hourly:
            if r["region"] == region:
                s = sums[r["report_date"].day]
                for k, col in enumerate(COUNTS):
                    s[k] += r[col]
        avail = {
            r["day"].day: r["pct"]
            for r in f.availability
            if (r["view"], r["subject"], r["region"], r["band"]) == ("daily", INTERFACE, region, "all")
        }
        days = [
            (d, avail.get(d), _pct(v - bad, v), _pct(w, n))
            for d in range(1, f.last.day + 1)
            for v, bad, w, n in [sums.get(d, NONE)]
        ]
        title = f"{region}: availability and requests by day"
        out.append(
            {
                "region": region,
                "days": sorted(shaded),
                "chart": region_daily_svg(days, shaded, m.availability.target, title),
            }
        )
    return out


def _local(t: dt.datetime, zone: ZoneInfo) -> dt.datetime:
    """A stored (naive UTC) time as naive UK time, for axes labelled in UK time."""
    return t.replace(tzinfo=dt.UTC).astimezone(zone).replace(tzinfo=None)
