"""Checks a pack must pass before it is written (issue 6, item 7). Each returns messages; any
message fails the build, naming the figure, so a wrong pack is never published."""

from __future__ import annotations

import re
from collections import defaultdict
from typing import Any

from opmetrics.measures.cpm import INDICATOR
from opmetrics.methodology import Methodology
from opmetrics.methodology.status import MISSED, Status

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
        if r["status"] == Status.NO_EVENTS and r["denominator"]:
            out.append(f"{r['cpm']} {r['key']} {r['segment']}: 'No Events' with {r['denominator']} events")
        if not r["denominator"] and r["status"] not in (Status.NO_EVENTS, Status.MISSING_INPUT):
            out.append(f"{r['cpm']} {r['key']} {r['segment']}: no events but status '{r['status']}'")
    for r in f.outcomes:
        counted = r["denominator"] or r["numerator"]
        if r["status"] == Status.NO_EVENTS and (counted or r["value"] is not None):
            out.append(
                f"{r['measure']} {r['breakdown']} {r['key1']} {r['key2'] or ''}: 'No Events' with "
                f"{counted or r['value']} counted"
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
        (r["cpm"], r["key"], r["segment"]) for r in f.cpm if r["instance"] and r["status"] in MISSED
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


def values_follow_counts(f: Any, m: Methodology) -> list[str]:
    """A percentage equals its own counts, and a status follows from its value, target and
    minimum (a CPM marked 'target met' below its target is refused)."""
    out = []
    for r in f.cpm:
        num, den, pct = r["numerator"], r["denominator"], r["pct"]
        if den and (pct is None or abs(pct - 100.0 * num / den) > TOL):
            out.append(f"{r['cpm']} {r['key']} {r['segment']}: {pct} % but {num} of {den}")
        if not den and pct is not None:
            out.append(f"{r['cpm']} {r['key']} {r['segment']}: {pct} % with no events")
        if r["status"] == INDICATOR:
            if r["target"] is not None or r["service_credit_gbp"]:
                out.append(f"{r['cpm']} {r['key']} {r['segment']}: an indicator with a target or credit")
        elif pct is not None and r["status"] != m.cpm(r["cpm"]).status(pct):
            out.append(
                f"{r['cpm']} {r['key']} {r['segment']}: status '{r['status']}' at {pct:.4f} % "
                f"(target {r['target']}, minimum {r['minimum']}: '{m.cpm(r['cpm']).status(pct)}')"
            )
    for r in f.outcomes:
        num, den, v = r["numerator"], r["denominator"], r["value"]
        if r["unit"] == "%" and num is not None and den and (v is None or abs(v - 100.0 * num / den) > TOL):
            out.append(f"{r['measure']} {r['breakdown']} {r['key1']} {r['key2']}: {v} % but {num} of {den}")
    for r in f.rsvp:
        for pct, num, den in (
            ("success_pct", r["volume"] - r["failures"], r["volume"]),
            ("within_trt_pct", r["within_trt"], r["trt_denominator"]),
        ):
            v = r[pct]
            if den and (v is None or abs(v - 100.0 * num / den) > TOL):
                out.append(
                    f"rsvp {r['scope']} {r['key']} {r['rate']} {r['day'] or ''} {r['segment']}: "
                    f"{pct} = {v} but {num} of {den}"
                )
    for r in f.availability:
        up, un, v = r["uptime_min"], r["unplanned_min"], r["pct"]
        where = f"availability {r['view']} {r['subject']} {r['region']} {r['band']} {r['day'] or ''}"
        if up and un is not None and (v is None or abs(v - 100.0 * (up - un) / up) > TOL):
            out.append(f"{where}: {v} % but {un} unplanned of {up} minutes")
        if r["status"] != Status.MISSING_INPUT and r["view"] in ("service", "overall", "daily"):
            want = m.availability.status(v)
            if r["status"] != want:
                out.append(f"{where}: status '{r['status']}' at {v} % ('{want}')")
    return out


def availability_composes(f: Any) -> list[str]:
    """Overall availability is the mean of its Services' headlines; a Service or region with
    unplanned outage minutes is below 100 %."""
    out = []
    heads = [
        r["pct"]
        for r in f.availability
        if r["view"] == "service" and r["region"] == "All" and r["band"] == "all" and r["pct"] is not None
    ]
    overall = next((r for r in f.availability if r["view"] == "overall"), None)
    if overall is not None and heads:
        mean = sum(heads) / len(heads)
        if overall["pct"] is None or abs(overall["pct"] - mean) > TOL:
            out.append(
                f"Overall Service Availability {overall['pct']} % is not the mean of its Services ({mean} %)"
            )
    for r in f.availability:
        if r["unplanned_min"] and r["pct"] is not None and r["pct"] >= 100.0:
            out.append(
                f"availability {r['view']} {r['subject']} {r['region']} {r['band']} {r['day'] or ''}: "
                f"{r['unplanned_min']} unplanned minutes but {r['pct']} %"
            )
    return out


def header_adds_up(f: Any) -> list[str]:
    """Every request of the period is included or excluded under a named rule, and the
    included ones are the volume the SRV figures count."""
    run, out = f.run, []
    excluded = run.exclusions()
    if run.requests_excluded is not None:
        total = run.requests_included + sum(excluded.values())
        if total != run.requests_in_period:
            out.append(
                f"header: {run.requests_included} included + {sum(excluded.values())} excluded "
                f"!= {run.requests_in_period} in the period"
            )
    srv_volume = sum(
        r["volume"] for r in f.rsvp if r["scope"] == "srv" and r["rate"] == "month" and r["segment"] == "All"
    )
    if f.rsvp and srv_volume != run.requests_included:
        out.append(f"header: {run.requests_included} included but the SRV figures count {srv_volume}")
    return out


_NO_TABLE = re.compile(r"no (\w+) data loaded")


def missing_input_only_when_absent(f: Any) -> list[str]:
    """A figure says "missing input: no X data loaded" only when the run loaded none of X."""
    loaded = {q["table_name"]: int(q["accepted"] or 0) for q in f.quality}
    out = []
    rows = [("cpm", r, f"{r['cpm']} {r['key']} {r['segment']}") for r in f.cpm]
    rows += [("outcome", r, f"{r['measure']} {r['breakdown']} {r['key1']}") for r in f.outcomes]
    rows += [
        ("availability", r, f"{r['view']} {r['subject']} {r['region']} {r['band']}") for r in f.availability
    ]
    for _, r, where in rows:
        if r["status"] != Status.MISSING_INPUT:
            continue
        for table in _NO_TABLE.findall(r.get("note") or ""):
            if loaded.get(table):
                out.append(
                    f"{where}: 'missing input' (no {table}) but {loaded[table]} {table} rows were loaded"
                )
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
        + values_follow_counts(f, m)
        + availability_composes(f)
        + header_adds_up(f)
        + missing_input_only_when_absent(f)
        + exclusions_cite_exceptions(excluded_rules, register_ids, f.run.pmel_applied or "")
    )
    if problems:
        raise PackInvariantError(problems)
