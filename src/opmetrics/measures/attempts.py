"""First- and second-time success per business process (supplementary indicators, 001
l.6560-6600; 003 "success on which attempt"): chains of SEC Party resends of the same SRV to
the same device, bucketed by the attempt that succeeded."""

from __future__ import annotations

import ibis

from opmetrics.measures.attribution import join_processes, marked, marks
from opmetrics.measures.outcome import Context, Row, rows_of, share_row
from opmetrics.measures.records import Scope, chain_outcomes, classified_requests, repeated_chain_hashes

BUCKETS = ("1st attempt", "2nd attempt", "later attempt", "never")


def att1(s: Scope, ctx: Context) -> list[Row]:
    # Each chain counts under the processes of its first send, decided from that send's SRV,
    # SMETS and attribution marks, carried through the chaining: no join of the chains to a
    # table of every request's processes. The sends are marked before they are chained, where
    # DuckDB knows their number and builds the join on the rule keys (marking the chains, it
    # built on the chains: 6.2 s of CPU at a national day). The counts are read into a dict, so
    # row order means nothing and joins may spill.
    with s.unordered():
        included = classified_requests(s).filter(ibis._.included)
        repeated = s.cached("att1_repeated", lambda: repeated_chain_hashes(included))
        c = chain_outcomes(s, marked(s, included), "_rec", ["srv", "smets", *marks(s)], repeated)
        j = join_processes(s, c)
        bucket = ibis.cases(
            (j.won == 1, BUCKETS[0]),
            (j.won == 2, BUCKETS[1]),
            (j.won.notnull(), BUCKETS[2]),
            else_=BUCKETS[3],
        )
        rows = rows_of(j.group_by(["process_id", bucket.name("b")]).aggregate(n=j.count()))
    s.forget("att1_repeated")
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
