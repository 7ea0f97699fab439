"""Code Performance Measures CPM1-3 (SEC Section H13.1) and CPM6A from RSVP (003 CPM table).

Each row carries the numerator, denominator, percentage, target, minimum and RAG status, per
segment and for All, so a reader can recompute every published percentage.
"""

from __future__ import annotations

from typing import Any

import ibis
import pyarrow as pa

from opmetrics.measures.records import classified_alerts, classified_requests
from opmetrics.methodology import Methodology


def _by_segment(t: ibis.Table, cpm_id: str, key: str) -> list[ibis.Table]:
    agg = {"numerator": t.within_trt.cast("int64").sum(), "denominator": t.count()}
    region = t.group_by(segment=t.segment).aggregate(**agg)
    total = t.aggregate(**agg).mutate(segment=ibis.literal("All"))
    return [
        e.mutate(cpm=ibis.literal(cpm_id), key=ibis.literal(key)).select(
            "cpm", "key", "segment", "numerator", "denominator"
        )
        for e in (region, total)
    ]


def compute_cpm(con: Any, m: Methodology, period: str, rsvp: pa.Table) -> pa.Table:
    exprs: list[ibis.Table] = []
    for c in m.cpms:
        if c.kind == "service_requests":
            t = classified_requests(con, m, period).filter(ibis._.included)
            if c.mode:
                t = t.filter(t.mode == c.mode)
            if c.critical is not None:
                t = t.filter(t.critical == c.critical)
            exprs += _by_segment(t, c.id, "all")
        elif c.kind == "alerts":
            exprs += _by_segment(classified_alerts(con, m, period).filter(ibis._.included), c.id, "all")
    rows = ibis.union(*exprs).to_pyarrow().to_pylist()
    for c in m.cpms:  # CPM6A: each business process x (SMETS2 region | SMETS1), from RSVP
        if c.kind != "processes":
            continue
        for r in rsvp.to_pylist():
            if r["scope"] == "process" and r["rate"] == "month" and r["segment"] in m.segments.all:
                rows.append(
                    {
                        "cpm": c.id,
                        "key": r["key"],
                        "segment": r["segment"],
                        "numerator": r["within_trt"],
                        "denominator": r["trt_denominator"],
                    }
                )
    for r in rows:
        c = m.cpm(r["cpm"])
        pct = 100.0 * r["numerator"] / r["denominator"] if r["denominator"] else None
        r.update(pct=pct, target=c.target, minimum=c.minimum, status=c.status(pct), period=period)
    order = {c.id: i for i, c in enumerate(m.cpms)}
    seg_order = {s: i for i, s in enumerate([*m.segments.all, "All"])}
    rows.sort(key=lambda r: (order[r["cpm"]], r["key"], seg_order.get(r["segment"], 99)))
    return pa.Table.from_pylist(
        rows,
        schema=pa.schema(
            [
                ("cpm", pa.string()),
                ("key", pa.string()),
                ("segment", pa.string()),
                ("numerator", pa.int64()),
                ("denominator", pa.int64()),
                ("pct", pa.float64()),
                ("target", pa.float64()),
                ("minimum", pa.float64()),
                ("status", pa.string()),
                ("period", pa.string()),
            ]
        ),
    )
