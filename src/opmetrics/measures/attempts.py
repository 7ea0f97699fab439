"""First- and second-time success per business process (supplementary indicators, 001
l.6560-6600; 003 "success on which attempt"): chains of SEC Party resends of the same SRV to
the same device, bucketed by the attempt that succeeded."""

from __future__ import annotations

import ibis

from opmetrics.measures.attribution import attribution
from opmetrics.measures.outcome import Context, Row, rows_of, share_row
from opmetrics.measures.records import Scope, cached_chain_outcomes, classified_requests

BUCKETS = ("1st attempt", "2nd attempt", "later attempt", "never")


def att1(s: Scope, ctx: Context) -> list[Row]:
    # The chains (a grouping, two semi-joins, three window sorts) go to a narrow temporary
    # table first, a part of the devices at a time, and only then meet the processes on
    # record key: as one query, this ran out of DuckDB's memory at 1.25 of a national day.
    # The counts are read into a dict, so row order means nothing and joins may spill.
    with s.unordered():
        included = classified_requests(s).filter(ibis._.included)
        c = cached_chain_outcomes(s, "att1_chains", included, head="_rec")
        att = attribution(s)
        j = c.inner_join(att, c.head_id == att._rec)
        bucket = ibis.cases(
            (j.won == 1, BUCKETS[0]),
            (j.won == 2, BUCKETS[1]),
            (j.won.notnull(), BUCKETS[2]),
            else_=BUCKETS[3],
        )
        rows = rows_of(j.group_by(["process_id", bucket.name("b")]).aggregate(n=j.count()))
    s.forget("att1_chains")
    per: dict[str, dict[str, int]] = {}
    for r in rows:
        per.setdefault(r["process_id"], {})[r["b"]] = r["n"]
    out = []
    for p in s.m.processes:
        got = per.get(p.id, {})
        total = sum(got.values())
        out += [share_row(p.id, b, got.get(b, 0), total, note="chains of resends") for b in BUCKETS]
    return out


MEASURES = {"ATT1": att1}
