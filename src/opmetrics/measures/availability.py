"""Service availability and reliability (001 l.4688 "A monthly view of end-to-end service availability").

Time is a grid of whole minutes in the period (UTC minute starts, each labelled with its UK
day and time band). Every outage becomes a mask over that grid: an outage that covers any part
of a minute takes the whole minute, so a logged outage can never round away to 100 %. A Service
is down in a minute when any sub-system it depends on is down; planned maintenance within the
SEC H8.4 allowance is excluded from uptime and reported, beyond the allowance it is downtime.

Availability = (uptime - unplanned downtime) / uptime, uptime = minutes - planned maintenance.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from functools import cache
from typing import Any
from zoneinfo import ZoneInfo

import holidays
import numpy as np
import pyarrow as pa

from opmetrics.measures.records import Scope, month_bounds, uk_midnight_utc
from opmetrics.methodology import Availability, Methodology, Service
from opmetrics.methodology.status import Status

BANDS = ("core", "other", "all")
ALL = "All"

SCHEMA = pa.schema(
    [
        ("view", pa.string()),  # service | daily | process | overall
        ("subject", pa.string()),  # Service name, process id, or "Overall Service Availability"
        ("region", pa.string()),
        ("band", pa.string()),
        ("day", pa.date32()),
        ("minutes", pa.int64()),
        ("planned_min", pa.int64()),
        ("planned_over_allowance_min", pa.int64()),
        ("unplanned_min", pa.int64()),
        ("uptime_min", pa.int64()),
        ("pct", pa.float64()),
        ("previous_pct", pa.float64()),
        ("target", pa.float64()),
        ("minimum", pa.float64()),
        ("status", pa.string()),
        ("events", pa.int64()),
        ("mttr_hours", pa.float64()),
        ("mtbf_hours", pa.float64()),
        ("incidents", pa.int64()),
        ("incidents_cat12", pa.int64()),
        ("incidents_cat345_dcc", pa.int64()),
        ("note", pa.string()),
        ("period", pa.string()),
    ]
)


@dataclass
class Grid:
    """The period's minutes: UTC start, UK day index and whether each is in the core band."""

    start: np.datetime64
    days: list[dt.date]
    day_idx: np.ndarray
    core: np.ndarray
    # A region whose bank holidays follow another calendar: its own core band
    # (`availability.holiday_subdivisions`, when bank holidays are "other" time).
    core_of: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def n(self) -> int:
        return len(self.core)

    def bands(self, region: str | None = None) -> dict[str, np.ndarray]:
        """The core, other and all-hours masks, in `region`'s calendar when it has its own."""
        core = self.core_of.get(region or "", self.core)
        return {"core": core, "other": ~core, "all": np.ones(self.n, dtype=bool)}

    def span(self, a: dt.datetime, b: dt.datetime) -> tuple[int, int]:
        """Grid indices [i, j) of the minutes touched by [a, b): partial minutes count whole."""
        i = int((np.datetime64(a, "ms") - self.start) // np.timedelta64(1, "m"))
        j = -int(-(np.datetime64(b, "ms") - self.start) // np.timedelta64(1, "m"))
        return max(i, 0), min(max(j, 0), self.n)


@cache
def _bank_holidays(subdiv: str, year: int) -> frozenset[dt.date]:
    return frozenset(holidays.country_holidays("GB", subdiv=subdiv, years=year))


def _hm(x: str) -> int:
    h, m = x.split(":")
    return int(h) * 60 + int(m)


def minute_grid(av: Availability, first: dt.date, last: dt.date, tz: str) -> Grid:
    """Minutes from UK midnight of `first` to UK midnight after `last`, with BST/GMT handled by
    stepping through UK days (a day is 23, 24 or 25 hours long)."""
    zone = ZoneInfo(tz)
    days = [first + dt.timedelta(days=i) for i in range((last - first).days + 1)]
    start = uk_midnight_utc(first, tz)
    day_idx, walls = [], []
    for k, d in enumerate(days):
        a, b = uk_midnight_utc(d, tz), uk_midnight_utc(d + dt.timedelta(days=1), tz)
        n = int((b - a).total_seconds() // 60)
        # UK wall-clock minute of day for each UTC minute of this UK day.
        wall = np.empty(n, dtype=np.int64)
        for i in range(0, n, 60):
            local = (a + dt.timedelta(minutes=i)).replace(tzinfo=dt.UTC).astimezone(zone)
            wall[i : i + 60] = local.hour * 60 + local.minute + np.arange(min(60, n - i))
        day_idx.append(np.full(n, k))
        walls.append(wall)

    def core_band(subdiv: str) -> np.ndarray:
        ch = av.core_hours
        out = []
        for d, wall in zip(days, walls, strict=True):
            holiday = av.bank_holidays == "other" and d in _bank_holidays(subdiv, d.year)
            if holiday or d.weekday() == 6:
                out.append(np.zeros(len(wall), dtype=bool))
            elif d.weekday() == 5:
                out.append((wall >= _hm(ch.saturday[0])) & (wall < _hm(ch.saturday[1])))
            else:
                out.append((wall >= _hm(ch.weekdays[0])) & (wall < _hm(ch.weekdays[1])))
        return np.concatenate(out)

    core = core_band(av.holiday_subdivision)
    own = {r: core_band(sub) for r, sub in av.holiday_subdivisions.items() if sub != av.holiday_subdivision}
    return Grid(np.datetime64(start, "ms"), days, np.concatenate(day_idx), core, own)


@dataclass
class Outage:
    outage_id: str
    service: str | None
    subsystem: str
    region: str | None
    start_at: dt.datetime
    end_at: dt.datetime | None
    planned: bool
    incident_id: str | None


def load_outages(con: Any, grid: Grid, as_of: dt.datetime) -> list[Outage]:
    """Outages overlapping the grid; an open outage runs until the report time."""
    t = con.table("outages")
    end = grid.start + np.timedelta64(grid.n, "m")
    rows = t.filter(t.start_at < end.astype(dt.datetime)).to_pyarrow().to_pylist()
    out = []
    for r in rows:
        o = Outage(**{k: r[k] for k in Outage.__dataclass_fields__})
        if (o.end_at or as_of) > grid.start.astype(dt.datetime):
            out.append(o)
    return out


class ServiceModel:
    """Masks of down and planned minutes per (Service or sub-system, region)."""

    def __init__(self, av: Availability, grid: Grid, outages: list[Outage], as_of: dt.datetime):
        self.av, self.grid, self.outages = av, grid, outages
        self.hits: dict[str, np.ndarray] = {}
        planned_any = np.zeros(grid.n, dtype=bool)
        for o in outages:
            i, j = grid.span(o.start_at, o.end_at or as_of)
            hit = np.zeros(grid.n, dtype=bool)
            hit[i:j] = True
            self.hits[o.outage_id] = hit
            if o.planned:
                planned_any |= hit
        # SEC H8.4: the first `allowance` planned minutes of the month (across all DCC
        # Systems, in time order) are excluded; later planned minutes are downtime.
        within = planned_any & (np.cumsum(planned_any) <= av.planned_maintenance_allowance_minutes)
        self.planned_within = within
        self.planned_over = planned_any & ~within

    def _affects(self, o: Outage, deps: list[str], service: str | None, region: str) -> bool:
        if o.subsystem not in deps and not (service and o.service == service):
            return False
        if region == ALL:
            return True
        sub = self.av.subsystem(o.subsystem)
        eff = o.region or (sub.region if sub else None)
        return eff is None or eff == region

    def masks(
        self, deps: list[str], region: str, service: str | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[Outage]]:
        """(down, planned, planned_over, downtime events) for a set of sub-systems in a region.
        Events are the unplanned outages and the maintenance that ran beyond the allowance."""
        down = np.zeros(self.grid.n, dtype=bool)
        planned = np.zeros(self.grid.n, dtype=bool)
        over = np.zeros(self.grid.n, dtype=bool)
        events = []
        for o in self.outages:
            if not self._affects(o, deps, service, region):
                continue
            hit = self.hits[o.outage_id]
            if o.planned:
                planned |= hit & self.planned_within
                over |= hit & self.planned_over
                if (hit & self.planned_over).any():
                    events.append(o)  # maintenance beyond the allowance is a downtime event
            else:
                down |= hit
                if hit.any():
                    events.append(o)
        if not self.av.planned_maintenance_excluded:
            down |= planned
            planned[:] = False
        down |= over
        down &= ~planned
        return down, planned, over, events

    def service_deps(self, names: list[str]) -> list[str]:
        """Sub-systems behind a list of Services and sub-system names."""
        deps: list[str] = []
        for n in names:
            svc = self.av.service(n)
            deps += svc.subsystems if svc else [n]
        return deps


def regions_of(m: Methodology, svc: Service) -> list[str]:
    return [*m.segments.smets2_regions, m.segments.smets1] if svc.regional else [ALL]


def _figures(down: np.ndarray, planned: np.ndarray, over: np.ndarray, mask: np.ndarray) -> dict[str, Any]:
    minutes = int(mask.sum())
    pl = int((planned & mask).sum())
    un = int((down & mask).sum())
    uptime = minutes - pl
    return {
        "minutes": minutes,
        "planned_min": pl,
        "planned_over_allowance_min": int((over & mask).sum()),
        "unplanned_min": un,
        "uptime_min": uptime,
        "pct": 100.0 * (uptime - un) / uptime if uptime else None,
    }


def _pooled(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Minutes summed over regions (region-minutes): their pct is the regions' mean when each
    region has the same uptime."""
    out = {k: sum(r[k] for r in rows) for k in ("minutes", "planned_min", "planned_over_allowance_min")}
    out["unplanned_min"] = sum(r["unplanned_min"] for r in rows)
    out["uptime_min"] = sum(r["uptime_min"] for r in rows)
    up = out["uptime_min"]
    out["pct"] = 100.0 * (up - out["unplanned_min"]) / up if up else None
    return out


def _incident_counts(con: Any, s: Scope, svc: Service, events: list[Outage]) -> tuple[int, int, int]:
    """Incidents raised in the period linked to the Service (by its outages or its name)."""
    inc = con.table("incidents")
    day = s.uk_day(inc.raised_at)
    rows = inc.filter(day.notnull()).to_pyarrow().to_pylist()
    linked = {o.incident_id for o in events if o.incident_id}
    mine = [r for r in rows if r["incident_id"] in linked or svc.name in (r.get("services") or "").split(";")]
    cat12 = sum(1 for r in mine if r["category"] <= 2)
    cat345 = sum(1 for r in mine if r["category"] >= 3 and r["dcc_responsible"])
    return len(mine), cat12, cat345


def _incidents_without_outage(s: Scope, outages: list[Outage]) -> dict[str, list[str]]:
    """Category 1/2 incidents open in the period that name a Service (or are linked to none)
    but have no outage row for it: a major incident without downtime needs a look, not a silent
    100 %. Per Service name, the incident ids."""
    inc = s.con.table("incidents")
    start, end = s.day_start(s.first), s.day_start(s.last + dt.timedelta(days=1))
    open_in_period = (inc.raised_at < end) & (inc.resolved_at.isnull() | (inc.resolved_at >= start))
    rows = inc.filter((inc.category <= 2) & open_in_period).to_pyarrow().to_pylist()
    svc_names = [x.name for x in s.m.availability.services]
    out: dict[str, list[str]] = {}
    for r in rows:
        named = [x for x in (r.get("services") or "").split(";") if x in svc_names]
        linked = [o for o in outages if o.incident_id == r["incident_id"]]
        for svc in named:
            deps = s.m.availability.service(svc).subsystems  # type: ignore[union-attr]
            if not any(o.service == svc or o.subsystem in deps for o in linked):
                out.setdefault(svc, []).append(r["incident_id"])
    return out


def previous_period(period: str) -> str:
    y, mo = (int(x) for x in period.split("-"))
    y, mo = (y - 1, 12) if mo == 1 else (y, mo - 1)
    return f"{y:04d}-{mo:02d}"


def compute_availability(
    s: Scope, input_rows: dict[str, int], previous: dict[tuple[str, str, str, str], float] | None = None
) -> pa.Table:
    """Service, daily, business-process and overall availability for the period.

    `previous` = last period's published pct per (view, subject, region, band), shown beside
    this month's (Table 13 "Previous Service Level").
    """
    m, av = s.m, s.m.availability
    first, last = month_bounds(s.period)
    grid = minute_grid(av, first, last, m.report_timezone)
    has_outages = bool(input_rows.get("outages"))
    outages = load_outages(s.con, grid, s.as_of) if has_outages else []
    model = ServiceModel(av, grid, outages, s.as_of)
    bands = grid.bands()
    prev = previous or {}
    # Without an outages input nothing says the Services were up: "missing input", like every
    # other measure (2027.1); 2026.3's reading assumed no outage.
    missing = not has_outages and av.without_outages == "missing_input"
    if has_outages:
        note_missing = ""
    elif missing:
        note_missing = "missing input: no outages data loaded"
    else:
        note_missing = "no outages data loaded: availability assumes no outage"
    unknown = sorted({o.subsystem for o in outages if av.subsystem(o.subsystem) is None})
    unmatched = _incidents_without_outage(s, outages) if input_rows.get("incidents") else {}
    rows: list[dict[str, Any]] = []

    def row(view: str, subject: str, region: str, band: str, fig: dict, **kw: Any) -> dict[str, Any]:
        if missing:
            fig = {**fig, "unplanned_min": None, "uptime_min": None, "pct": None}
        r = {
            "view": view,
            "subject": subject,
            "region": region,
            "band": band,
            "day": None,
            **fig,
            "previous_pct": prev.get((view, subject, region, band)),
            "target": av.target,
            "minimum": av.minimum,
            "status": av.status(fig["pct"]),
            "note": note_missing,
            "period": s.period,
        }
        r.update(kw)
        if missing:
            r["status"] = Status.MISSING_INPUT
        return r

    headline: list[float] = []
    for svc in av.services:
        per_region: dict[str, dict[str, dict]] = {b: {} for b in BANDS}
        all_events: dict[str, Outage] = {}
        for region in regions_of(m, svc):
            down, planned, over, events = model.masks(svc.subsystems, region, svc.name)
            all_events.update({o.outage_id: o for o in events})
            for band, mask in grid.bands(region).items():
                fig = _figures(down, planned, over, mask)
                per_region[band][region] = fig
                if svc.regional:
                    rows.append(row("service", svc.name, region, band, fig))
            for k, d in enumerate(grid.days):
                fig = _figures(down, planned, over, grid.day_idx == k)
                rows.append(row("daily", svc.name, region, "all", fig, day=d))
        # Headline of a regional Service: its region-minutes (`availability.headline: minutes`),
        # so the row's own minutes reproduce its percentage; or (2026.3) clock-time minutes in
        # which any region was down beside the mean of the regions' percentages, as in 001
        # Table 13 (regions 99.00 / 99.80 / 99.40 % -> Service 99.40 %). MTTR and MTBF count
        # clock time either way.
        u_down, u_planned, u_over, _ = model.masks(svc.subsystems, ALL, svc.name)
        for band in BANDS:
            fig = _figures(u_down, u_planned, u_over, bands[band])
            if svc.regional and av.headline == "minutes":
                fig = _pooled(list(per_region[band].values()))
            elif svc.regional:
                fig["pct"] = _pooled(list(per_region[band].values()))["pct"]
            extra: dict[str, Any] = {}
            if band == "all":
                events = list(all_events.values())
                total, cat12, cat345 = (
                    _incident_counts(s.con, s, svc, events) if input_rows.get("incidents") else (0, 0, 0)
                )
                down_h = int(u_down.sum()) / 60
                operating_h = (grid.n - int(u_planned.sum()) - int(u_down.sum())) / 60
                extra = {
                    "events": len(events),
                    "mttr_hours": down_h / len(events) if events else None,
                    "mtbf_hours": operating_h / len(events) if events else None,
                    "incidents": total,
                    "incidents_cat12": cat12,
                    "incidents_cat345_dcc": cat345,
                }
                if fig["pct"] is not None:
                    headline.append(fig["pct"])
            notes = [note_missing] if note_missing else []
            if svc.regional and av.headline == "minutes":
                notes.append("minutes summed over the regions (region-minutes); MTTR and MTBF in clock time")
            elif svc.regional:
                notes.append(
                    "pct = mean of the regions (region-minutes pooled); minutes are clock time in "
                    "which any region was down"
                )
            if band == "all" and unmatched.get(svc.name):
                notes.append(
                    "Category 1/2 incident(s) with no outage row on this Service: "
                    + ", ".join(unmatched[svc.name])
                )
            rows.append(row("service", svc.name, ALL, band, fig, note="; ".join(notes), **extra))
    overall = sum(headline) / len(headline) if headline else None
    rows.append(
        row(
            "overall",
            "Overall Service Availability",
            ALL,
            "all",
            {
                "minutes": grid.n,
                "planned_min": int(model.planned_within.sum()),
                "planned_over_allowance_min": int(model.planned_over.sum()),
                "unplanned_min": None,
                "uptime_min": None,
                "pct": overall,
            },
            note="mean of the Services' monthly availability, each Service counting once"
            + (
                f"; outages name sub-systems not in the service model: {', '.join(unknown)}"
                if unknown
                else ""
            ),
        )
    )
    rows += _process_rows(s, model, grid, row)
    return pa.Table.from_pylist(rows, schema=SCHEMA)


def _process_rows(s: Scope, model: ServiceModel, grid: Grid, row: Any) -> list[dict[str, Any]]:
    """Business-process view: could the DCC process and deliver the process's SRVs (or, for an
    alert process, its alerts)?"""
    m, av = s.m, s.m.availability
    dui = av.services[0].name if av.services else ""
    out = []
    everything = np.ones(grid.n, dtype=bool)
    for p in m.every_process:
        deps = model.service_deps(av.process_dependencies.get(p.id, [dui]))
        regions = [*m.segments.smets2_regions] + ([m.segments.smets1] if p.smets1 else [])
        figs = []
        for region in regions:
            down, planned, over, _ = model.masks(deps, region)
            fig = _figures(down, planned, over, everything)
            figs.append((region, fig))
        pooled = _pooled([f for _, f in figs])
        worst = min((f["pct"] for _, f in figs if f["pct"] is not None), default=None)
        status = Status.DEGRADED if worst is not None and worst < av.degraded_below_pct else Status.AVAILABLE
        for region, fig in figs:
            st = "Degraded" if fig["pct"] is not None and fig["pct"] < av.degraded_below_pct else "Available"
            out.append(row("process", p.id, region, "all", fig, status=st, target=None, minimum=None))
        out.append(
            row(
                "process",
                p.id,
                ALL,
                "all",
                pooled,
                status=status,
                target=None,
                minimum=None,
                note=f"Degraded when any region is below {av.degraded_below_pct}%; depends on "
                + ", ".join(av.process_dependencies.get(p.id, [dui])),
            )
        )
    return out
