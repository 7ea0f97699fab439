"""Iterations of a business process that met a failure alert or no response (ITER1), as
001 l.321 "report the percentage of those iterations across all Users that returned" asks.

An iteration is what one SEC Party sends to one device for one process on one UK day: the
process's requests (as attributed) grouped by party, device and day. It failed when any of them
got no response or had a failure alert (N12/N13) linked to it. Each day holds its own
iterations, so the month is the sum of its days.
"""

from __future__ import annotations

import ibis

from opmetrics.measures.attribution import process_of_number, process_requests
from opmetrics.measures.outcome import Context, Row, day_cells, rows_of, share_row
from opmetrics.measures.records import Scope, failure_links

MEASURE = "ITER1"


def day_iterations(s: Scope) -> ibis.Table:
    """ITER1's day cells: per UK day and process, the iterations and those that failed."""
    # Grouped by the process's number, not its id: 39 M rows into 30 M groups at a national day.
    t = process_requests(s, number=True)
    alerted = t._rec.isin(failure_links(s)._rec)
    t = t.mutate(_f=(~t.has_response | alerted).cast("int64"))
    it = t.group_by(["report_date", "process_no", "party_id", "device_id"]).aggregate(f=t._f.max())
    d = it.group_by(["report_date", "process_no"]).aggregate(n=it.count(), failed=it.f.sum().cast("int64"))
    return d.select("report_date", process_id=process_of_number(s, d.process_no), n=d.n, failed=d.failed)


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
