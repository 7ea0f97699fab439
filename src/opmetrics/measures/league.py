"""League tables
(001 l.6381 "who is achieving best in class via an anonymised league table"): each SEC Party's success and
within-TRT rates per business process, with the industry figures to compare against.

Stored with party identities; the report anonymises them (`opmetrics.report.anonymise`).
"""

from __future__ import annotations

import ibis

from opmetrics.measures.drill import by_hour
from opmetrics.measures.outcome import Context, Row, day_cells, rows_of, share_row
from opmetrics.measures.records import Scope


def day_league(s: Scope) -> ibis.Table:
    """LT1's day cells: each party's volume, successes, requests and those within the TRT per
    process, summed from the drill-down's grouping of the attributed requests (`drill.by_hour`):
    no pass of its own over the records (docs/performance.md, Design choices measured)."""
    t = by_hour(s)
    sums = {"volume": t.volume, "ok": t.outcome_ok, "n": t.requests, "within": t.within_trt}
    return t.group_by(["report_date", "process_id", "party_id"]).aggregate(
        **{k: v.sum().cast("int64") for k, v in sums.items()}
    )


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
