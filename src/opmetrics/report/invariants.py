"""Checks a pack must pass before it is written (issue 6, item 7). Each returns messages; any
message fails the build, naming the figure, so a wrong pack is never published."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from opmetrics.methodology import Methodology

PCT_FIELDS = ("success_pct", "failure_pct", "within_trt_pct")
TOL = 1e-6


class PackInvariantError(ValueError):
    def __init__(self, problems: list[str]):
        self.problems = problems
        head = f"{len(problems)} pack invariant(s) failed; nothing was written:\n  - "
        super().__init__(head + "\n  - ".join(problems[:25]) + ("\n  - ..." if len(problems) > 25 else ""))


def percentages_in_range(f: Any) -> list[str]:
    out = []
    for r in f.rsvp:
        for c in PCT_FIELDS:
            v = r[c]
            if v is not None and not (-TOL <= v <= 100 + TOL):
                out.append(
                    f"rsvp {r['scope']} {r['key']} {r['rate']} {r['day'] or ''} {r['segment']}: "
                    f"{c} = {v:.2f} %"
                )
    for r in f.cpm:
        if r["pct"] is not None and not (-TOL <= r["pct"] <= 100 + TOL):
            out.append(f"{r['cpm']} {r['key']} {r['segment']}: {r['pct']:.2f} %")
    for r in f.outcomes:
        if r["unit"] == "%" and r["value"] is not None and not (-TOL <= r["value"] <= 100 + TOL):
            out.append(f"{r['measure']} {r['breakdown']} {r['key1']} {r['key2']}: {r['value']:.2f} %")
    for r in f.availability:
        if r["pct"] is not None and not (-TOL <= r["pct"] <= 100 + TOL):
            out.append(f"availability {r['view']} {r['subject']} {r['region']} {r['band']}: {r['pct']:.2f} %")
    return out


def breakdowns_add_up(f: Any, m: Methodology) -> list[str]:
    """RSVP: regions add up to All, North+Central+South to SMETS2, days to the month."""
    out = []
    cells: dict[tuple, dict[str, dict]] = defaultdict(dict)
    for r in f.rsvp:
        cells[(r["scope"], r["key"], r["rate"], r["day"])][r["segment"]] = r
    regions = m.segments.all
    for (scope, key, rate, day), seg in cells.items():
        for fld in ("volume", "failures", "within_trt"):
            if "All" in seg:
                parts = sum(seg[s][fld] for s in regions if s in seg)
                if parts != seg["All"][fld]:
                    out.append(
                        f"rsvp {scope} {key} {rate} {day or ''}: {fld} by region {parts} "
                        f"!= All {seg['All'][fld]}"
                    )
            if "SMETS2" in seg:
                s2 = sum(seg[s][fld] for s in m.segments.smets2_regions if s in seg)
                if s2 != seg["SMETS2"][fld]:
                    out.append(
                        f"rsvp {scope} {key} {rate} {day or ''}: {fld} North+Central+South {s2} != SMETS2"
                    )
    monthly: dict[tuple, int] = defaultdict(int)
    for r in f.rsvp:
        if r["rate"] == "day":
            monthly[(r["scope"], r["key"], r["segment"])] += r["volume"]
    for r in f.rsvp:
        if r["rate"] == "month" and monthly.get((r["scope"], r["key"], r["segment"]), 0) != r["volume"]:
            out.append(
                f"rsvp {r['scope']} {r['key']} {r['segment']}: daily volumes add up to "
                f"{monthly.get((r['scope'], r['key'], r['segment']), 0)}, month says {r['volume']}"
            )
    by_cpm: dict[tuple, dict[str, dict]] = defaultdict(dict)
    for r in f.cpm:
        by_cpm[(r["cpm"], r["key"])][r["segment"]] = r
    for (cid, key), seg in by_cpm.items():
        # Regions that are a breakdown of an All instance (not CPM6's independent instances).
        if "All" in seg and all(s in seg and not seg[s]["instance"] for s in regions):
            for fld in ("numerator", "denominator"):
                parts = sum(seg[s][fld] for s in regions)
                if parts != seg["All"][fld]:
                    out.append(f"{cid} {key}: {fld} by region {parts} != All {seg['All'][fld]}")
    return out


def no_events_only_when_none(f: Any) -> list[str]:
    out = []
    for r in f.cpm:
        if r["status"] == "No Events" and r["denominator"]:
            out.append(f"{r['cpm']} {r['key']} {r['segment']}: 'No Events' with {r['denominator']} events")
        if not r["denominator"] and r["status"] not in ("No Events", "missing input"):
            out.append(f"{r['cpm']} {r['key']} {r['segment']}: no events but status '{r['status']}'")
    for r in f.outcomes:
        if r["status"] == "No Events" and r["unit"] == "%" and r["denominator"]:
            out.append(
                f"{r['measure']} {r['breakdown']} {r['key1']}: 'No Events' with {r['denominator']} events"
            )
    return out


def outages_never_show_full_availability(f: Any, m: Methodology, outages: list[dict[str, Any]]) -> list[str]:
    """Independently of the availability engine: every Service that depends on the sub-system of
    an unplanned outage inside the period (or is named by it) must be below 100 %."""
    out = []
    first, last = f.first_utc, f.end_utc
    head = {
        r["subject"]: r
        for r in f.availability
        if r["view"] == "service" and r["region"] == "All" and r["band"] == "all"
    }
    for o in outages:
        if o["planned"]:
            continue
        end = o["end_at"] or f.as_of
        if not (o["start_at"] < last and end > first and end > o["start_at"]):
            continue
        for svc in m.availability.services:
            if o["subsystem"] in svc.subsystems or o["service"] == svc.name:
                r = head.get(svc.name)
                if r is None or r["pct"] is None or r["pct"] >= 100.0:
                    out.append(
                        f"{svc.name}: outage {o['outage_id']} ({o['subsystem']}) but availability shows 100 %"
                    )
    return out


def summary_agrees(summary: dict[str, Any], f: Any) -> list[str]:
    """The executive summary is recounted from the detail tables."""
    out = []
    missed = sorted(
        (r["cpm"], r["key"], r["segment"])
        for r in f.cpm
        if r["instance"] and r["status"] in ("below target", "below minimum")
    )
    if sorted((x["cpm"], x["key"], x["segment"]) for x in summary["missed"]) != missed:
        out.append("executive summary: the list of missed targets differs from the CPM table")
    overall = next((r for r in f.availability if r["view"] == "overall"), None)
    if overall is not None and summary.get("overall_pct") != overall["pct"]:
        out.append("executive summary: Overall Service Availability differs from the availability table")
    return out


def exclusions_cite_exceptions(
    excluded_rules: dict[str, int], register_ids: set[str], applied: str
) -> list[str]:
    """Every PMEL exclusion names an exception that is on the register and was applied."""
    out = []
    applied_ids = {x.strip() for x in applied.split(",") if x.strip()}
    for rule, n in excluded_rules.items():
        if " on the PMEL (" not in rule:
            continue
        cited = rule.split()[1]
        if cited not in register_ids or cited not in applied_ids:
            out.append(
                f"{n} record(s) excluded by '{rule}', which cites no applied exception on the register"
            )
    missing = applied_ids - register_ids
    if missing:
        out.append(f"run applied exceptions not on the register: {sorted(missing)}")
    return out


def check_all(
    f: Any,
    m: Methodology,
    summary: dict[str, Any],
    outages: list[dict[str, Any]],
    excluded_rules: dict[str, int],
    register_ids: set[str],
) -> None:
    problems = (
        summary_agrees(summary, f)
        + breakdowns_add_up(f, m)
        + percentages_in_range(f)
        + outages_never_show_full_availability(f, m, outages)
        + no_events_only_when_none(f)
        + exclusions_cite_exceptions(excluded_rules, register_ids, f.run.pmel_applied or "")
    )
    if problems:
        raise PackInvariantError(problems)
