"""Business-process attribution: which requests belong to which process
(001 l.945 "Requirement 2.1.1 Table 4 Notes").

The DCC cannot see inside a request, so it infers the process from context: I&C SRVs are those
sent to a device on its commissioning day, CoS SRVs those sent the same day as a 6.23, tariff
updates the 1.1.1s left over, security SRVs those seen in pairs. The rules are data
(`processes[].attribution` in the methodology); this module only evaluates them.
"""

from __future__ import annotations

import itertools

import ibis
import pyarrow as pa

from opmetrics.measures.records import (
    Scope,
    classified_requests,
    commissioning_days,
    has_classified_copy,
    included_alone,
    record_key,
    requests_in_period,
    srv_in,
)
from opmetrics.methodology import Process

KEYS = ["device_id", "party_id", "report_date"]


def flag(process_id: str) -> str:
    """The column of `flags` saying whether a request belongs to the process."""
    return f"_in_{process_id}"


def mark(process_id: str) -> str:
    """The column of `marked` saying whether a request's keys met its process's rule (true or null)."""
    return f"_mark_{process_id}"


def _rules(s: Scope) -> list[Process]:
    """The processes whose rule looks beyond the request itself (and so has a mark)."""
    on = s.m.attribution.enabled
    return [p for p in s.m.processes if on and p.attribution.rule not in ("all", "not_in")]


def _own_row(p: Process) -> bool:
    """A rule its request decides alone (`user_roles`), or with its pair's other requests by
    record key (timed pairs): marked without the day keys."""
    return p.attribution.rule == "user_roles" or _timed(p)


def _timed(p: Process) -> bool:
    """A pair sought within a time window (`pair_within: trt`), not on one UK day's keys."""
    return p.attribution.rule == "pairs" and p.attribution.pair_within == "trt"


def pair_window_seconds(s: Scope, p: Process) -> int:
    """The window of a timed pair: the on-demand TRT of the pair's second SRV (6.17: a day)."""
    srv = s.m.srv(p.attribution.pair[1])
    table = srv.trt if srv is not None else {}
    return int(table.get("on-demand", max(table.values(), default=s.m.trt_defaults_seconds["on-demand"])))


def window_days(s: Scope) -> int:
    """How many UK days either side a day's attribution can look (timed pairs): a day's cubes
    depend on its neighbours' requests that far (`incremental.day_fingerprints`)."""
    timed = [pair_window_seconds(s, p) for p in _rules(s) if _timed(p)]
    return -(-max(timed) // 86_400) if timed else 0


def pair_srvs(s: Scope) -> list[str]:
    """The SRVs of the timed pairs (their requests are what a day's neighbours lend it)."""
    return sorted({c for p in _rules(s) if _timed(p) for c in p.attribution.pair})


def _timed_pairs(s: Scope, p: Process) -> ibis.Table:
    """Record keys (`_pr`) of the requests of a timed pair's SRVs that have the other SRV to the
    same device from the same party within the window, either way round; the window is the
    second SRV's TRT. 001 l.960 "These SRVs should be seen in pairs"."""
    first, second = p.attribution.pair
    src = _rule_requests(s)
    a = src.filter(src.srv == first)
    a = a.select(a_dev="device_id", a_party="party_id", a_at="received_at", a_rec="_r")
    b = src.filter(src.srv == second)
    b = b.select(b_dev="device_id", b_party="party_id", b_at="received_at", b_rec="_r")
    ms = pair_window_seconds(s, p) * 1000
    j = a.inner_join(b, [a.a_dev == b.b_dev, a.a_party == b.b_party])
    j = j.filter(j.a_at.delta(j.b_at, unit="millisecond").abs() <= ms)
    return ibis.union(j.select(_pr=j.a_rec), j.select(_pr=j.b_rec)).distinct()


def marked(s: Scope, req: ibis.Table) -> ibis.Table:
    """`req` with a `mark(id)` column for each process whose rule looks beyond the request
    (true or null): whether its keys are among a small set of keys (commissioning days,
    anchor requests, pairs).

    Every rule's keys are a device and a UK day, some with a party: all the sets become one
    table of (device, day) with, per rule, a flag or the list of parties, so the requests meet
    them in one join (three joins of 33 M requests on text keys took 1.8 s of CPU a pass).
    The key sets come from the period's included requests, of which only the anchor and pair
    SRVs are read (`_rule_requests`). Everything else `flags` needs is on the request itself, so
    a caller may group the marked requests first and compute the flags on the groups."""
    rules = _rules(s)
    if not rules:
        return req
    for p in [p for p in rules if _own_row(p)]:
        a = p.attribution
        if a.rule == "user_roles":
            # 001 l.966 "there are markers within DCC data": the DUIS User Role it was sent under.
            hit = req.srv.isin(p.srvs) & req.user_role.isin(a.user_roles)
        else:  # a timed pair: by record key, the pair's requests being known as a set
            hit = record_key(req).isin(_timed_pairs(s, p)._pr) & req.srv.isin(a.pair)
        req = req.mutate(**{mark(p.id): ibis.ifelse(hit.fill_null(False), True, ibis.null("boolean"))})
    rules = [p for p in rules if not _own_row(p)]
    if not rules:
        return req
    src = _rule_requests(s)
    parts = []
    for p in rules:
        a = p.attribution
        if a.rule == "commissioning_day":
            dev = commissioning_days(s, a.day_of)
            k = dev.select(device_id=dev.device_id, report_date=dev.comm_day, party_id=ibis.null("string"))
        elif a.rule == "same_day_as":
            k = src.filter(src.srv == a.anchor_srv)
        else:  # pairs: both SRVs of the pair to the same device, from the same party, on the same UK day
            first, second = a.pair
            k1 = src.filter(src.srv == first).select(*KEYS).distinct()
            k = k1.semi_join(src.filter(src.srv == second), KEYS)
        parts.append(k.select(*KEYS, _rule=ibis.literal(p.id)))
    keys = ibis.union(*parts)
    mine = {p.id: keys._rule == p.id for p in rules}
    per_day = keys.group_by(_kd="device_id", _kr="report_date").aggregate(
        **{
            f"_k_{p.id}": mine[p.id].any()
            if p.attribution.rule == "commissioning_day"
            else keys.party_id.collect(where=mine[p.id])
            for p in rules
        }
    )
    j = req.left_join(per_day, [req.device_id == per_day._kd, req.report_date == per_day._kr])

    def met(p: Process) -> ibis.Value:
        # Only a request of the rule's own SRVs is marked (a rule reads no other's mark), so a
        # read to a device commissioned that day does not split the cubes' groups.
        a, k = p.attribution, j[f"_k_{p.id}"]
        own = j.srv.isin([c for c in p.srvs if a.rule != "pairs" or c in a.pair])
        return k.notnull() & own & (k if a.rule == "commissioning_day" else k.contains(j.party_id))

    marks_met = {mark(p.id): ibis.ifelse(met(p), True, ibis.null("boolean")) for p in rules}
    return j.mutate(**marks_met).drop("_kd", "_kr", *[f"_k_{p.id}" for p in rules])


def _rule_requests(s: Scope) -> ibis.Table:
    """Keys and SRV of the period's included requests of the SRVs that anchor or pair a rule
    (a few per cent of the requests), computed once per run: read from the classified
    requests when they are materialised, else classifying those SRVs alone, so that a pass
    over all the requests shares nothing with it."""
    # Sorted, so that the first and last bound them ("-" where no rule has an anchor or a pair).
    wanted = sorted(
        {
            p.attribution.anchor_srv
            for p in s.m.processes
            if p.attribution.rule == "same_day_as" and p.attribution.anchor_srv is not None
        }
        | {c for p in s.m.processes if p.attribution.rule == "pairs" for c in p.attribution.pair}
    ) or ["-"]
    cols = [*KEYS, "srv", "received_at"]

    def build() -> ibis.Table:
        if has_classified_copy(s) and not window_days(s):
            req = classified_requests(s)
            req = req.filter(req.included & req.srv.isin(wanted))
            return req.select(*cols, _r=record_key(req))
        # Timed pairs look beyond the days reduced: their neighbours' requests too.
        pad = window_days(s)
        sub = s if not pad or s.days is None else _padded(s, pad)
        sr = requests_in_period(sub)
        sr = sr.filter(srv_in(sr, wanted))
        included = included_alone(s, sr)
        if included is not None:
            # Only the inclusion rules: no RTT, TRT or failure-alert lookup, which nothing
            # here reads.
            sr = sr.filter(included)
            return sr.select(*cols, _r=record_key(sr))
        req = classified_requests(s, sr)
        req = req.filter(req.included)
        return req.select(*cols, _r=record_key(req))

    return s.cached("rule_requests", build)


def _padded(s: Scope, pad: int) -> Scope:
    """The scope's days and `pad` days either side of each, within the period."""
    import dataclasses
    import datetime as dt

    days = {d + dt.timedelta(days=k) for d in s.days or () for k in range(-pad, pad + 1)}
    keep = tuple(sorted(d for d in days if s.first <= d <= s.last))
    return dataclasses.replace(s, days=keep, _cache={}, _tables={})


def marks(s: Scope) -> list[str]:
    """The columns `marked` adds."""
    return [mark(p.id) for p in _rules(s)]


def flags(s: Scope, t: ibis.Table, keep_marks: bool = False) -> ibis.Table:
    """A `marked` table (or its groups by SRV, SMETS and marks) with one boolean column per
    process (`flag(id)`), whether the request belongs to it, and the marks dropped (unless
    `keep_marks`).

    SMETS1 requests are kept only where the process and the SRV apply to SMETS1 (001 Table 4)."""
    on = s.m.attribution.enabled
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
            cond = mine & t[mark(p.id)].notnull()
            if a.rule == "pairs":
                cond = cond & t.srv.isin(a.pair)
        member[p.id] = cond.fill_null(False)
        return member[p.id]

    out = {}
    for p in s.m.processes:
        smets1_srvs = (
            [c for c in p.srvs if (srv := s.m.srv(c)) is not None and srv.smets1] if p.smets1 else []
        )
        out[flag(p.id)] = belongs(p) & ((t.smets != 1) | t.srv.isin(smets1_srvs or ["-"])).fill_null(False)
    t = t.mutate(**out)
    return t if keep_marks else t.drop(*marks(s))


def per_process(s: Scope, f: ibis.Table, column: str = "process_id") -> ibis.Table:
    """Each row of a `flags` table once per process it belongs to, the process's id in
    `column`: its processes as a list (null where it does not belong), unnested, nulls dropped."""
    ids = ibis.array([ibis.ifelse(f[flag(p.id)], p.id, ibis.null("string")) for p in s.m.processes])
    t = f.mutate(**{column: ids.unnest()})
    return t.filter(t[column].notnull())


# The SMETS value standing for a missing one in `_memberships` (whose columns hold no nulls:
# Ibis hands a nullable integer column of an in-memory table to Spark as all nulls).
NO_SMETS = -1


def _memberships(s: Scope) -> ibis.Table:
    """Every process each possible (SRV, SMETS, marks) belongs to, one row per process: the
    rules evaluated once on a table of a few hundred combinations, for requests to be joined to.

    Columns `_l_srv`, `_l_smets` (NO_SMETS for a missing one), `_l_<mark>` (whether the mark
    is set) and `process_id`; a combination in no process has no row."""
    cols = marks(s)
    srvs = sorted({c for p in s.m.processes for c in p.srvs})
    combos = [
        {"srv": srv, "_smets": smets, **dict(zip(cols, m, strict=True))}
        for srv in srvs
        for smets in (1, 2, NO_SMETS)
        for m in itertools.product([True, False], repeat=len(cols))
    ]
    schema = pa.schema([("srv", pa.string()), ("_smets", pa.int64()), *[(c, pa.bool_()) for c in cols]])
    c = ibis.memtable(pa.Table.from_pylist(combos, schema))
    # As `marked` gives them: a missing SMETS is null, and a mark is true or null.
    c = c.mutate(
        smets=ibis.ifelse(c._smets == NO_SMETS, ibis.null("int64"), c._smets),
        **{m: ibis.ifelse(c[m], True, ibis.null("boolean")) for m in cols},
    )
    each = per_process(s, flags(s, c, keep_marks=True))
    return each.select(
        process_id=each.process_id,
        process_no=process_number(s, each.process_id),
        _l_srv=each.srv,
        _l_smets=each._smets,
        _l_marks=mark_bits(s, each),
    )


def process_number(s: Scope, process_id: ibis.Value) -> ibis.Value:
    """A process's place in the methodology's list (0, 1, ...): a grouping of tens of millions of
    rows by it costs less than by the id's text (docs/performance.md, Design choices measured)."""
    numbered = ((process_id == p.id, i) for i, p in enumerate(s.m.processes))
    return ibis.cases(*numbered, else_=None).cast("int64")


def process_of_number(s: Scope, process_no: ibis.Value) -> ibis.Value:
    """`process_number`'s inverse: the process id."""
    return ibis.cases(*((process_no == i, p.id) for i, p in enumerate(s.m.processes)), else_=None)


def mark_bits(s: Scope, t: ibis.Table) -> ibis.Value:
    """A `marked` table's marks as the bits of one integer (one join key instead of several)."""
    bits = [t[m].notnull().cast("int64") * (1 << i) for i, m in enumerate(marks(s))]
    return sum(bits[1:], bits[0]) if bits else ibis.literal(0, "int64")


def join_processes(s: Scope, t: ibis.Table, bits: str | None = None, number: bool = False) -> ibis.Table:
    """A `marked` table joined to its processes (`process_id`), one row per row and process,
    the marks dropped: as `per_process(s, flags(s, t))`, with the rules decided once per
    combination instead of once per row. `bits`: a column holding the marks as `mark_bits`
    gives them, in a table without the marks (chains carried from day to day). `number`: the
    process as `process_number` (`process_no`) instead of its id."""
    look = _memberships(s)
    on = [
        t.srv == look._l_srv,
        t.smets.fill_null(NO_SMETS) == look._l_smets,
        (mark_bits(s, t) if bits is None else t[bits]) == look._l_marks,
    ]
    j = t.inner_join(look, on)
    unused = "process_id" if number else "process_no"
    return j.drop("_l_srv", "_l_smets", "_l_marks", unused, *(marks(s) if bits is None else []))


def attributed(s: Scope, req: ibis.Table) -> ibis.Table:
    """(_rec, process_id) for every request attributed to a process: one row per pair."""
    return join_processes(s, marked(s, req)).select("_rec", "process_id")


def process_requests(s: Scope, number: bool = False) -> ibis.Table:
    """Included requests joined to the processes they are attributed to (one row per pair);
    `number`: each process as its `process_no`, not its id."""
    return join_processes(s, marked(s, classified_requests(s).filter(ibis._.included)), number=number)
