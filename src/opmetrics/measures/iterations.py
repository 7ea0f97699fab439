"""Iterations of a business process that met a failure alert or no response (ITER1), as
001 l.321 "report the percentage of those iterations across all Users that returned" asks.

An iteration is what one SEC Party sends to one device for one process on one UK day: the
process's requests (as attributed) grouped by party, device and day. It failed when any of them
got no response or had a failure alert (N12/N13) linked to it. Each day holds its own
iterations, so the month is the sum of its days.
"""

from __future__ import annotations

import ibis

from opmetrics.measures.attribution import join_process_flags, marked, process_flag
from opmetrics.measures.outcome import Context, Row, day_cells, rows_of, share_row
from opmetrics.measures.records import Scope, classified_requests, failure_links

MEASURE = "ITER1"


def day_iterations(s: Scope) -> ibis.Table:
    """ITER1's day cells: per UK day and process, the iterations and those that failed.

    The included requests are grouped once by party, device and day, each group keeping, per
    process, whether any of its requests belongs to it and whether any of those failed
    (`join_process_flags`); a process's iterations are then the groups flagged for it, with no
    copy of a request per process it belongs to (docs/performance.md, Design choices measured)."""
    t = classified_requests(s).filter(ibis._.included)
    t = join_process_flags(s, marked(s, t))
    failed = (~t.has_response | t._rec.isin(failure_links(s)._rec)).cast("int8")
    n = len(s.m.processes)
    it = t.group_by(["report_date", "party_id", "device_id"]).aggregate(
        **{f"_in{i}": t[process_flag(i)].max() for i in range(n)},
        **{f"_f{i}": (t[process_flag(i)] * failed).max() for i in range(n)},
    )
    per_day = it.group_by("report_date").aggregate(
        **{f"_n{i}": it[f"_in{i}"].cast("int64").sum() for i in range(n)},
        **{f"_nf{i}": it[f"_f{i}"].cast("int64").sum() for i in range(n)},
    )
    rows = [
        per_day.select(
            "report_date",
            process_id=ibis.literal(p.id),
            n=per_day[f"_n{i}"].cast("int64"),
            failed=per_day[f"_nf{i}"].cast("int64"),
        )
        for i, p in enumerate(s.m.processes)
    ]
    out = ibis.union(*rows)
    return out.filter(out.n > 0)


def iter1(s: Scope, ctx: Context) -> list[Row]:
    t = day_cells(s, ctx, "day_iterations", day_iterations)
    rows = rows_of(
        t.group_by("process_id")
        .aggregate(n=t.n.sum().cast("int64"), failed=t.failed.sum().cast("int64"))
        .order_by("process_id")
    )
    note = "iterations (party x device x UK day) with a failure alert or no response"
    return [share_row("process", r["process_id"], r["failed"], r["n"], note=note) for r in rows]


MEASURES = {MEASURE: iter1}
CELLS = {"day_iterations": day_iterations}
