"""Business-process attribution: which requests belong to which process (001 l.904-935).

The DCC cannot see inside a request, so it infers the process from context: I&C SRVs are those
sent to a device on its commissioning day, CoS SRVs those sent the same day as a 6.23, tariff
updates the 1.1.1s left over, security SRVs those seen in pairs. The rules are data
(`processes[].attribution` in the methodology); this module only evaluates them.
"""

from __future__ import annotations

import ibis

from opmetrics.measures.records import Scope, commissioning_days
from opmetrics.methodology import Process

KEYS = ["device_id", "party_id", "report_date"]


MEMBER = ["_rec", "srv", "smets"]  # _rec: the record key (records.record_key)


def _members(s: Scope, req: ibis.Table, p: Process, done: dict[str, ibis.Table]) -> ibis.Table:
    """Requests (_rec, srv, smets) attributed to process `p`."""
    a = p.attribution
    mine = req.filter(req.srv.isin(p.srvs))
    if not s.m.attribution.enabled or a.rule == "all":
        return mine.select(*MEMBER)
    if a.rule == "commissioning_day":
        dev = commissioning_days(s).rename(dev_id="device_id")
        j = mine.inner_join(dev, [mine.device_id == dev.dev_id, mine.report_date == dev.comm_day])
        return j.select(*MEMBER)
    if a.rule == "same_day_as":
        anchors = req.filter(req.srv == a.anchor_srv).select(*KEYS).distinct()
        return mine.semi_join(anchors, KEYS).select(*MEMBER)
    if a.rule == "not_in":
        taken = [done[q] if q in done else _members(s, req, s.m.process(q), done) for q in a.processes]
        out = mine.select(*MEMBER)
        for t in taken:
            out = out.anti_join(t.select("_rec"), "_rec")
        return out
    # pairs: both SRVs of the pair to the same device, from the same party, on the same UK day
    first, second = a.pair
    k1 = req.filter(req.srv == first).select(*KEYS).distinct()
    k2 = req.filter(req.srv == second).select(*KEYS).distinct()
    both = k1.semi_join(k2, KEYS)
    return mine.filter(mine.srv.isin(a.pair)).semi_join(both, KEYS).select(*MEMBER)


def attributed(s: Scope, req: ibis.Table) -> ibis.Table:
    """(_rec, process_id) for every request attributed to a process.

    SMETS1 requests are kept only where the process and the SRV apply to SMETS1 (001 Table 4).
    """
    done: dict[str, ibis.Table] = {}
    parts = []
    for p in s.m.processes:
        members = _members(s, req, p, done)
        done[p.id] = members
        smets1_srvs = (
            [c for c in p.srvs if (srv := s.m.srv(c)) is not None and srv.smets1] if p.smets1 else []
        )
        # members are requests, so filtering them is the same as keeping those the rule allows
        keep = (members.smets != 1) | members.srv.isin(smets1_srvs or ["-"])
        parts.append(members.filter(keep).select("_rec").mutate(process_id=ibis.literal(p.id)))
    return ibis.union(*parts)


def attribution(s: Scope) -> ibis.Table:
    """(_rec, process_id) of the included requests of the period, computed once per run."""
    from opmetrics.measures.records import classified_requests

    return s.cached("attribution", lambda: attributed(s, classified_requests(s).filter(ibis._.included)))


def process_requests(s: Scope) -> ibis.Table:
    """Included requests joined to the processes they are attributed to (one row per pair)."""
    from opmetrics.measures.records import classified_requests

    req = classified_requests(s).filter(ibis._.included)
    att = attribution(s).rename(att_rec="_rec")
    return req.inner_join(att, req._rec == att.att_rec).drop("att_rec")
