"""Security and Key Management: credential SRVs seen in pairs
(001 l.960 "These SRVs should be seen in pairs")."""

from __future__ import annotations

import ibis

from opmetrics.measures.attribution import KEYS, mark, marked
from opmetrics.measures.outcome import Context, Row, day_cells, rows_of, share_row
from opmetrics.measures.records import Scope, included_requests


def day_pairs(s: Scope) -> ibis.Table:
    """SEC1's day cells: the requests of each of the pair's SRVs, and how many of them have the
    other SRV to the same device from the same party: as the security process's attribution
    pairs them when it pairs these SRVs (the same UK day, or within the 6.17's TRT), else on
    one UK day (`KEYS` hold the day)."""
    a, b = s.m.measure("SEC1.pairs").srvs
    t = included_requests(s, [a, b])
    rule = next(
        (
            p
            for p in s.m.processes
            if s.m.attribution.enabled and p.attribution.rule == "pairs" and set(p.attribution.pair) == {a, b}
        ),
        None,
    )
    if rule is not None:
        j = marked(s, t)
        j = j.mutate(p=j[mark(rule.id)].notnull().cast("int64"))
        return j.group_by(["report_date", "srv"]).aggregate(n=j.count(), paired=j.p.sum().cast("int64"))
    k1 = t.filter(t.srv == a).select(*KEYS).distinct()
    k2 = t.filter(t.srv == b).select(*KEYS).distinct()
    paired = t.semi_join(k1.semi_join(k2, KEYS), KEYS).select(pid="request_id", p=ibis.literal(1, "int64"))
    j = t.left_join(paired, t.request_id == paired.pid)
    return j.group_by(["report_date", "srv"]).aggregate(
        n=j.count(), paired=j.p.fill_null(0).sum().cast("int64")
    )


def sec1_pairs(s: Scope, ctx: Context) -> list[Row]:
    t = day_cells(s, ctx, "day_pairs", day_pairs)
    rows = rows_of(
        t.group_by("srv")
        .aggregate(n=t.n.sum().cast("int64"), paired=t.paired.sum().cast("int64"))
        .order_by("srv")
    )
    return [share_row("srv", r["srv"], r["paired"], r["n"], note="paired / all") for r in rows]


MEASURES = {"SEC1.pairs": sec1_pairs}
CELLS = {"day_pairs": day_pairs}
