"""League tables
(001 l.6381 "who is achieving best in class via an anonymised league table"): each SEC Party's success and
within-TRT rates per business process, with the industry figures to compare against.

Stored with party identities; the report anonymises them (`opmetrics.report.anonymise`).
"""

from __future__ import annotations

import ibis

from opmetrics.measures.attribution import join_processes, mark_bits, marked
from opmetrics.measures.outcome import Context, Row, day_cells, rows_of, share_row
from opmetrics.measures.records import Scope, outcome_requests


def day_league(s: Scope) -> ibis.Table:
    """LT1's day cells: each party's volume, successes, requests and those within the TRT per
    process. The included requests are grouped by party, SRV, SMETS and marks first, and the
    groups joined to their processes: no join of every record."""
    t = marked(s, outcome_requests(s))
    t = t.mutate(
        _ok=(~t.failed).cast("int64") * t.count_weight - t.extra_failures,
        _in=t.within_trt.cast("int64"),
        _bits=mark_bits(s, t),
    )
    g = t.group_by(["report_date", "party_id", "srv", "smets", "_bits"]).aggregate(
        volume=t.count_weight.sum().cast("int64"),
        ok=t._ok.sum().cast("int64"),
        n=t.count(),
        within=t._in.sum().cast("int64"),
    )
    j = join_processes(s, g, bits="_bits")
    sums = {c: j[c].sum().cast("int64") for c in ("volume", "ok", "n", "within")}
    return j.group_by(["report_date", "process_id", "party_id"]).aggregate(**sums)


def lt1(s: Scope, ctx: Context) -> list[Row]:
    t = day_cells(s, ctx, "day_league", day_league)
    sums = {c: t[c].sum().cast("int64") for c in ("volume", "ok", "n", "within")}
    rows = rows_of(
        t.group_by(["process_id", "party_id"]).aggregate(**sums).order_by(["process_id", "party_id"])
    )
    out = []
    for r in rows:
        out.append(share_row(r["process_id"], r["party_id"], r["ok"], r["volume"], key2="success"))
        out.append(share_row(r["process_id"], r["party_id"], r["within"], r["n"], key2="within TRT"))
    return out


MEASURES = {"LT1": lt1}
CELLS = {"day_league": day_league}
