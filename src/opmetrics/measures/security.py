"""Security and Key Management: credential SRVs seen in pairs (001 l.930)."""

from __future__ import annotations

import ibis

from opmetrics.measures.attribution import KEYS
from opmetrics.measures.outcome import Context, Row, rows_of, share_row
from opmetrics.measures.records import Scope, classified_requests


def sec1_pairs(s: Scope, ctx: Context) -> list[Row]:
    a, b = s.m.measure("SEC1.pairs").srvs
    t = classified_requests(s).filter(ibis._.included)
    t = t.filter(t.srv.isin([a, b]))
    k1 = t.filter(t.srv == a).select(*KEYS).distinct()
    k2 = t.filter(t.srv == b).select(*KEYS).distinct()
    paired = t.semi_join(k1.semi_join(k2, KEYS), KEYS).select(pid="request_id", p=ibis.literal(1))
    j = t.left_join(paired, t.request_id == paired.pid)
    rows = rows_of(j.group_by("srv").aggregate(n=j.count(), paired=j.p.fill_null(0).sum()).order_by("srv"))
    return [share_row("srv", r["srv"], r["paired"], r["n"], note="paired / all") for r in rows]


MEASURES = {"SEC1.pairs": sec1_pairs}
