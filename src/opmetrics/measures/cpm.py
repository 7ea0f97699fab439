"""Code Performance Measures CPM1-CPM9 (SEC Sections H13.1, L8.6, D11.1; 003 CPM table).

Each row carries numerator, denominator, percentage, target, minimum and status, so a reader
can recompute every published percentage. Rows marked `instance` are the measures the SEC
defines (one per CPM6 interface x region x time of day, per CPM6A process x region, per CPM5
category...); the others are breakdowns for information.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, NamedTuple

import ibis
import pyarrow as pa

from opmetrics.measures.daily import DayCubes, day_cubes, month_alerts, month_requests
from opmetrics.measures.records import Scope
from opmetrics.methodology import Cpm
from opmetrics.methodology.status import MISSED, Status

NO_EVENTS = Status.NO_EVENTS
# A row reported with a CPM's figures, outside the scope the CPM text gives it (CPM6A's
# processes beyond those the text names): no target, no minimum, no service credit.
INDICATOR = Status.INDICATOR

SCHEMA = pa.schema(
    [
        ("cpm", pa.string()),
        ("key", pa.string()),
        ("segment", pa.string()),
        ("instance", pa.bool_()),
        ("numerator", pa.int64()),
        ("denominator", pa.int64()),
        ("pct", pa.float64()),
        ("target", pa.float64()),
        ("minimum", pa.float64()),
        ("status", pa.string()),
        ("months_below_target", pa.int64()),
        ("service_credit_gbp", pa.float64()),
        ("note", pa.string()),
        ("period", pa.string()),
    ]
)


def _rows(expr: ibis.Table) -> list[dict[str, Any]]:
    return expr.to_pyarrow().to_pylist()


def _by_segment(
    t: ibis.Table,
    within: ibis.Value,
    key: str,
    segments: Iterable[str] | None,
    weight: ibis.Value | None = None,
) -> list[dict]:
    """numerator/denominator per segment and for All; every expected segment appears.

    Per record, `within` is a boolean and each record counts once; over aggregated rows (the day
    cubes), `within` is the count within target and `weight` the records the row stands for.
    """
    t = t.mutate(_ok=within.cast("int64"), _n=ibis.literal(1) if weight is None else weight)
    per = {
        r["segment"]: r
        for r in _rows(
            t.group_by("segment").aggregate(
                numerator=t._ok.sum().cast("int64"), denominator=t._n.sum().cast("int64")
            )
        )
    }
    total = _rows(t.aggregate(numerator=t._ok.sum().cast("int64"), denominator=t._n.sum().cast("int64")))[0]
    out = []
    for seg in segments or []:
        r = per.get(seg, {"numerator": 0, "denominator": 0})
        out.append(
            {
                "key": key,
                "segment": seg,
                "instance": False,
                "numerator": r["numerator"] or 0,
                "denominator": r["denominator"] or 0,
            }
        )
    out.append(
        {
            "key": key,
            "segment": "All",
            "instance": True,
            "numerator": total["numerator"] or 0,
            "denominator": total["denominator"] or 0,
        }
    )
    return out


def _closed_incidents(s: Scope, responsible_only: bool = True) -> ibis.Table:
    inc = s.con.table("incidents")
    closed = s.uk_day(inc[s.m.incidents.period_field]).notnull()
    return inc.filter(closed & inc.dcc_responsible if responsible_only else closed).mutate(
        segment=ibis.cases(
            (inc.smets == 1, "SMETS1"), (inc.smets == 2, "SMETS2"), else_="not device specific"
        )
    )


def _incident_targets(s: Scope, t: ibis.Table, measure: str) -> ibis.Value:
    """Met target, with SMETS1 incidents held to their own target times
    (001 l.5436 "There are differing Target Resolution Times for SMETS1 & SMETS2")."""
    cats = s.m.incidents.categories
    if measure == "resolution":
        limit = ibis.cases(
            *[
                ((t.category == k) & (t.smets == smets), v.resolution_hours(smets) * 3_600_000)
                for k, v in cats.items()
                for smets in (1, 2)
            ],
            *[(t.category == k, v.target_resolution_hours * 3_600_000) for k, v in cats.items()],
        )
        return t.resolved_at.delta(t.raised_at, unit="millisecond") <= limit
    limit = ibis.cases(
        *[
            ((t.category == k) & (t.smets == smets), v.response_minutes(smets) * 60_000)
            for k, v in cats.items()
            for smets in (1, 2)
        ],
        *[(t.category == k, v.initial_response_minutes * 60_000) for k, v in cats.items()],
    )
    return t.assigned_at.notnull() & (t.assigned_at.delta(t.raised_at, unit="millisecond") <= limit)


def _incidents(s: Scope, c: Cpm) -> list[dict]:
    inc = _closed_incidents(s, c.responsible_only)
    measure = "resolution" if c.kind == "incident_resolution" else "response"
    groups = [[k] for k in c.categories] if c.per_category else [c.categories]
    out = []
    for cats in groups:
        t = inc.filter(inc.category.isin(cats))
        key = "Cat " + "-".join(str(k) for k in cats) if len(cats) > 1 else f"Cat {cats[0]}"
        out += _by_segment(t, _incident_targets(s, t, measure).fill_null(False), key, ["SMETS1", "SMETS2"])
    return out


def availability_rows(s: Scope, availability: pa.Table) -> list[dict]:
    """CPM6 instances: each Service x region x time band (core / other) of the availability
    table, as minutes available over uptime minutes (planned maintenance excluded)."""
    out = []
    for r in availability.to_pylist():
        if r["view"] != "service" or r["band"] == "all":
            continue
        svc = s.m.availability.service(r["subject"])
        if svc is None or (svc.regional and r["region"] == "All"):
            continue
        out.append(
            {
                "key": f"{r['subject']} / {r['band']}",
                "segment": r["region"],
                "instance": True,
                "numerator": r["uptime_min"] - r["unplanned_min"],
                "denominator": r["uptime_min"],
                "note": f"planned maintenance {r['planned_min']} min excluded"
                + (
                    f", {r['planned_over_allowance_min']} min over the allowance counted as downtime"
                    if r["planned_over_allowance_min"]
                    else ""
                ),
            }
        )
    return out


def _ch_firmware(s: Scope, c: Cpm) -> list[dict]:
    f = s.con.table("ch_firmware")
    f = f.filter(f.report_date.between(s.first, s.last)).mutate(segment=f.region)
    if c.kind == "ch_firmware_delivery":
        t = f.filter(f.delivery_outcome != "in_progress")
        return _by_segment(t, t.delivery_outcome == "delivered", "all", s.m.segments.all)
    t = f.filter(f.activation_outcome.isin(["activated", "failed"]))
    return _by_segment(t, t.activation_outcome == "activated", "all", s.m.segments.all)


def _smki(s: Scope, c: Cpm) -> list[dict]:
    r = s.con.table("smki_requests")
    r = r.filter(r.report_date.between(s.first, s.last) & (r.service == c.service)).mutate(
        segment=ibis.literal("All")
    )
    trt = s.m.smki.certificate_trt_seconds if c.service == "certificate" else s.m.smki.repository_trt_seconds
    ok = r.responded_at.notnull() & (r.responded_at.delta(r.received_at, unit="millisecond") <= trt * 1000)
    return _by_segment(r, ok.fill_null(False), "all", None)


def _assessments(s: Scope) -> list[dict]:
    a = s.con.table("dcc_assessments")
    a = a.filter(a.report_date.between(s.first, s.last)).mutate(segment=ibis.literal("All"))
    ok = a.completed_at.notnull() & (a.completed_at <= a.due_at)
    return _by_segment(a, ok.fill_null(False), "all", None)


@dataclass(frozen=True)
class CpmInputs:
    """What a CPM kind's rows are computed from: the scope, the month's day cubes, and the RSVP
    and availability results of the same run."""

    s: Scope
    cubes: DayCubes
    rsvp: pa.Table
    availability: pa.Table | None


def _service_requests(i: CpmInputs, c: Cpm) -> list[dict]:
    t = month_requests(i.s, i.cubes)
    if c.mode:
        t = t.filter(t.mode == c.mode)
    if c.critical is not None:
        t = t.filter(t.critical == c.critical)
    return _by_segment(t, t.within_trt, "all", i.s.m.segments.all, t.records)


def _alerts(i: CpmInputs, c: Cpm) -> list[dict]:
    t = month_alerts(i.s, i.cubes)
    return _by_segment(t, t.within_trt, "all", i.s.m.segments.all, t.records)


def _processes(i: CpmInputs, c: Cpm) -> list[dict]:
    """CPM6A from RSVP's month rows per process and region; processes the CPM text does not name
    are reported beside it as indicators."""
    out = []
    for r in i.rsvp.to_pylist():
        if r["scope"] == "process" and r["rate"] == "month" and r["segment"] in i.s.m.segments.all:
            scoped = c.processes is None or r["key"] in c.processes
            out.append(
                {
                    "key": r["key"],
                    "segment": r["segment"],
                    "instance": scoped,
                    "indicator": not scoped,
                    "numerator": r[c.numerator],
                    "denominator": r["trt_denominator"],
                }
            )
    return out


class CpmKindModel(NamedTuple):
    input: str  # the input table whose absence makes the CPM "missing input"
    rows: Callable[[CpmInputs, Cpm], list[dict]]


# Each kind of CPM the methodology can declare (`methodology.CpmKind`), once: what it reads and
# how its rows are made. A kind without an entry here is refused by a test, not at month end.
KINDS: dict[str, CpmKindModel] = {
    "service_requests": CpmKindModel("service_requests", _service_requests),
    "alerts": CpmKindModel("alerts", _alerts),
    "processes": CpmKindModel("service_requests", _processes),
    "incident_resolution": CpmKindModel("incidents", lambda i, c: _incidents(i.s, c)),
    "incident_response": CpmKindModel("incidents", lambda i, c: _incidents(i.s, c)),
    "availability": CpmKindModel(
        "outages", lambda i, c: availability_rows(i.s, i.availability) if i.availability is not None else []
    ),
    "ch_firmware_delivery": CpmKindModel("ch_firmware", lambda i, c: _ch_firmware(i.s, c)),
    "ch_firmware_activation": CpmKindModel("ch_firmware", lambda i, c: _ch_firmware(i.s, c)),
    "smki": CpmKindModel("smki_requests", lambda i, c: _smki(i.s, c)),
    "assessments": CpmKindModel("dcc_assessments", lambda i, c: _assessments(i.s)),
}


def _credit(c: Cpm, pct: float | None, share: float) -> float:
    if pct is None or pct >= c.target:
        return 0.0
    if pct < c.minimum or c.target == c.minimum:
        return share
    return share * (c.target - pct) / (c.target - c.minimum)


def compute_cpm(
    s: Scope,
    rsvp: pa.Table,
    input_rows: dict[str, int],
    history: dict[tuple[str, str, str], dict[str, str]] | None = None,
    availability: pa.Table | None = None,
    cubes: DayCubes | None = None,
) -> pa.Table:
    """All CPMs for the period. `input_rows` = rows per input table (0 means missing input);
    `history` = earlier periods' statuses per (cpm, key, segment), for months below target;
    `cubes` = the period's day cubes (reduced now when not given)."""
    m = s.m
    inputs = CpmInputs(s, cubes or day_cubes(s), rsvp, availability)
    rows: list[dict] = []
    for c in m.cpms:
        got: list[dict] = []
        table = KINDS[c.kind].input
        if not input_rows.get(table):
            got = [
                {
                    "key": "all",
                    "segment": "All",
                    "instance": True,
                    "numerator": 0,
                    "denominator": 0,
                    "note": f"missing input: no {table} data loaded",
                }
            ]
        else:
            got = KINDS[c.kind].rows(inputs, c)
        for r in got:
            r["cpm"] = c.id
        rows += got
    amount = m.service_credits.monthly_amount_at_risk_gbp
    instances: dict[str, int] = {}
    for r in rows:
        instances[r["cpm"]] = instances.get(r["cpm"], 0) + int(r["instance"])
    for r in rows:
        c = m.cpm(r["cpm"])
        pct = 100.0 * r["numerator"] / r["denominator"] if r["denominator"] else None
        status = c.status(pct)
        note = r.get("note") or ""
        if pct is None and not note.startswith("missing input"):
            status = NO_EVENTS
        elif pct is None:
            status = Status.MISSING_INPUT
        past = (history or {}).get((r["cpm"], r["key"], r["segment"]), {})
        run = 0
        if status in MISSED:
            run = 1
            y, mo = (int(x) for x in s.period.split("-"))
            while True:
                y, mo = (y - 1, 12) if mo == 1 else (y, mo - 1)
                if past.get(f"{y:04d}-{mo:02d}") in MISSED:
                    run += 1
                else:
                    break
        share = amount * m.service_credits.weights.get(c.id, 0.0) / max(instances[c.id], 1)
        indicator = r.pop("indicator", False)
        if indicator:
            run = 0
            status = NO_EVENTS if pct is None else INDICATOR
            note = note or f"outside {c.id}'s scope in the CPM text: reported for information"
        r.update(
            pct=pct,
            target=None if indicator else c.target,
            minimum=None if indicator else c.minimum,
            status=status,
            months_below_target=run,
            service_credit_gbp=round(_credit(c, pct, share), 2) if r["instance"] else 0.0,
            note=note,
            period=s.period,
        )
    order = {c.id: i for i, c in enumerate(m.cpms)}
    seg_order = {x: i for i, x in enumerate([*m.segments.all, "SMETS2", "All"])}
    rows.sort(key=lambda r: (order[r["cpm"]], r["key"], seg_order.get(r["segment"], 99)))
    return pa.Table.from_pylist(rows, schema=SCHEMA)
