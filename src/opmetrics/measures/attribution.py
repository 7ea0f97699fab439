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


def flag(process_id: str) -> str:
    """The column of `flagged` saying whether a request belongs to the process."""
    return f"_in_{process_id}"


def _key_set(keys: ibis.Table, cols: list[str], mark: str) -> ibis.Table:
    """Distinct keys renamed for a left join, with a `mark` column that is true where one matched."""
    return (
        keys.select(*cols)
        .distinct()
        .rename({f"_k{i}": c for i, c in enumerate(cols)})
        .mutate(**{mark: ibis.literal(True)})
    )


def _marked(t: ibis.Table, keys: ibis.Table, on: list[str], mark: str) -> ibis.Table:
    """`t` with `mark`: whether its `on` columns are among `keys` (a left join to a small set of
    distinct keys, so no request is repeated)."""
    k = _key_set(keys, on, mark)
    j = t.left_join(k, [t[c] == k[f"_k{i}"] for i, c in enumerate(on)])
    return j.drop(*[f"_k{i}" for i in range(len(on))])


def flagged(s: Scope, req: ibis.Table) -> ibis.Table:
    """`req` with one boolean column per process (`flag(id)`): whether the request belongs to it.

    Each rule is a condition on the request itself, or on its presence in a small set of keys
    (commissioning days, anchor requests, pairs) joined once: one pass over the requests decides
    every process, instead of one set of members per process joined back by record.
    SMETS1 requests are kept only where the process and the SRV apply to SMETS1 (001 Table 4).
    """
    on = s.m.attribution.enabled
    t = req
    for p in s.m.processes:
        a, mark = p.attribution, f"_mark_{p.id}"
        if not on or a.rule in ("all", "not_in"):
            continue
        if a.rule == "commissioning_day":
            dev = commissioning_days(s)
            t = _marked(t, dev.select(device_id=dev.device_id, report_date=dev.comm_day), KEYS[::2], mark)
        elif a.rule == "same_day_as":
            t = _marked(t, req.filter(req.srv == a.anchor_srv), KEYS, mark)
        else:  # pairs: both SRVs of the pair to the same device, from the same party, on the same UK day
            first, second = a.pair
            k1 = req.filter(req.srv == first).select(*KEYS).distinct()
            both = k1.semi_join(req.filter(req.srv == second), KEYS)
            t = _marked(t, both, KEYS, mark)
    member: dict[str, ibis.Value] = {}

    def belongs(p: Process) -> ibis.Value:
        if p.id in member:
            return member[p.id]
        a = p.attribution
        mine = t.srv.isin(p.srvs)
        if not on or a.rule == "all":
            cond = mine
        elif a.rule == "not_in":
            taken = [belongs(s.m.process(q)) for q in a.processes]
            cond = mine & ~ibis.or_(*taken)
        else:
            cond = mine & t[f"_mark_{p.id}"].notnull()
            if a.rule == "pairs":
                cond = cond & t.srv.isin(a.pair)
        member[p.id] = cond.fill_null(False)
        return member[p.id]

    flags = {}
    for p in s.m.processes:
        smets1_srvs = (
            [c for c in p.srvs if (srv := s.m.srv(c)) is not None and srv.smets1] if p.smets1 else []
        )
        flags[flag(p.id)] = belongs(p) & ((t.smets != 1) | t.srv.isin(smets1_srvs or ["-"])).fill_null(False)
    marks = [c for c in t.columns if c.startswith("_mark_")]
    return t.mutate(**flags).drop(*marks)


def per_process(s: Scope, f: ibis.Table, column: str = "process_id") -> ibis.Table:
    """Each row of a `flagged` table once per process it belongs to, the process's id in
    `column`: its processes as a list (null where it does not belong), unnested, nulls dropped."""
    ids = ibis.array([ibis.ifelse(f[flag(p.id)], p.id, ibis.null("string")) for p in s.m.processes])
    t = f.mutate(**{column: ids.unnest()})
    return t.filter(t[column].notnull())


def attributed(s: Scope, req: ibis.Table) -> ibis.Table:
    """(_rec, process_id) for every request attributed to a process: one row per pair."""
    flags = [flag(p.id) for p in s.m.processes]
    f = flagged(s, req).select("_rec", *flags)
    f = f.filter(ibis.or_(*[f[c] for c in flags]))
    return per_process(s, f).select("_rec", "process_id")


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
