"""League tables (001 l.6270-6290, 003 customer analytics): each SEC Party's success and
within-TRT rates per business process, with the industry figures to compare against.

Stored with party identities; the report anonymises them (`opmetrics.report.league`).
"""

from __future__ import annotations

from opmetrics.measures.attribution import process_requests
from opmetrics.measures.outcome import Context, Row, rows_of, share_row
from opmetrics.measures.records import Scope


def lt1(s: Scope, ctx: Context) -> list[Row]:
    t = process_requests(s)
    t = t.mutate(
        _ok=(~t.failed).cast("int64") * t.count_weight - t.extra_failures, _in=t.within_trt.cast("int64")
    )
    rows = rows_of(
        t.group_by(["process_id", "party_id"])
        .aggregate(volume=t.count_weight.sum(), ok=t._ok.sum(), n=t.count(), within=t._in.sum())
        .order_by(["process_id", "party_id"])
    )
    out = []
    for r in rows:
        out.append(share_row(r["process_id"], r["party_id"], r["ok"], r["volume"], key2="success"))
        out.append(share_row(r["process_id"], r["party_id"], r["within"], r["n"], key2="within TRT"))
    return out


MEASURES = {"LT1": lt1}
