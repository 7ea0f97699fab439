"""First- and second-time success per business process (supplementary indicators, 001
l.6560-6600; 003 "success on which attempt"): chains of SEC Party resends of the same SRV to
the same device, bucketed by the attempt that succeeded.

A chain lasts as long as its resends keep failing within `retry_window_minutes` of each other
(a day, in methodology 2026.4), so it often crosses midnight. `compute` therefore folds the
chains day by day (`fold_days`): a day's sends continue the chains still open at the end of the
day before, which stand as one failed row each; the chains that end on a day are counted into
`day_att1`, those open at its end are kept in `day_att1_open`. The month is the sum of its days'
counts plus the chains open at its last day (never succeeded), equal to chaining the month's
sends in one go (tested). A late or corrected day folds again, and the days after it until the
chains handed on are unchanged. Spark, which keeps no state between runs, chains the month in
one go. The fold also counts the chains that ended per SRV (`day_att1_srv`), each chain once,
from which PP1's top-up attempts are read.
"""

from __future__ import annotations

import datetime as dt

import ibis

from opmetrics.measures.attribution import join_processes, mark_bits, marked, marks
from opmetrics.measures.outcome import Context, Folds, Row, rows_of, share_row
from opmetrics.measures.records import (
    CHAIN_KEYS,
    Scope,
    alone_and_repeated,
    chain_outcomes,
    chain_starts,
    in_scope,
    number_attempts,
    outcome_requests,
    repeated_chain_hashes,
)

BUCKETS = ("1st attempt", "2nd attempt", "later attempt", "never")


def bucket(won: ibis.Value) -> ibis.Value:
    return ibis.cases(
        (won == 1, BUCKETS[0]),
        (won == 2, BUCKETS[1]),
        (won.notnull(), BUCKETS[2]),
        else_=BUCKETS[3],
    )


def att1(s: Scope, ctx: Context) -> list[Row]:
    rows = _whole_period(s) if ctx.attempts is None else rows_of(_from_days(s, ctx.attempts))
    per: dict[str, dict[str, int]] = {}
    for r in rows:
        per.setdefault(r["process_id"], {})[r["b"]] = r["n"]
    out = []
    for p in s.m.processes:
        got = per.get(p.id, {})
        total = sum(got.values())
        out += [share_row(p.id, b, got.get(b, 0), total, note="chains of resends") for b in BUCKETS]
    return out


def _whole_period(s: Scope) -> list[Row]:
    # Each chain counts under the processes of its first send, decided from that send's SRV,
    # SMETS and attribution marks, carried through the chaining: no join of the chains to a
    # table of every request's processes. The sends are marked before they are chained, where
    # DuckDB knows their number and builds the join on the rule keys (marking the chains, it
    # built on the chains; docs/performance.md, Design choices measured). The counts are read
    # into a dict, so row order means nothing and joins may spill.
    with s.unordered():
        included = outcome_requests(s)
        repeated = s.cached("att1_repeated", lambda: repeated_chain_hashes(included))
        c = chain_outcomes(s, marked(s, included), "_rec", ["srv", "smets", *marks(s)], repeated)
        j = join_processes(s, c)
        rows = rows_of(j.group_by(["process_id", bucket(j.won).name("b")]).aggregate(n=j.count()))
    s.forget("att1_repeated")
    return rows


def _open_at_end(s: Scope, folds: Folds) -> ibis.Table:
    """The chains open at the end of the period's last folded day: they never succeeded."""
    folded = in_scope(s, folds.state)
    last = folded.aggregate(_last=folded.report_date.max())
    return folds.still_open.semi_join(last, folds.still_open.report_date == last._last)


def chains_of_srvs(s: Scope, folds: Folds, srvs: list[str]) -> dict[str, int]:
    """Chains of resends of `srvs` per bucket over the period, each chain once (PP1.attempts),
    from the stored day folds: those ended on its days plus those open at its end."""
    ended = in_scope(s, folds.ended_by_srv)
    ended = ended.filter(ended.srv.isin(srvs))
    got = {r["b"]: r["n"] for r in rows_of(ended.group_by("b").aggregate(n=ended.n.sum().cast("int64")))}
    never = _open_at_end(s, folds)
    never = never.filter(never.srv.isin(srvs))
    got[BUCKETS[3]] = got.get(BUCKETS[3], 0) + rows_of(never.aggregate(n=never.count()))[0]["n"]
    return got


def _from_days(s: Scope, folds: Folds) -> ibis.Table:
    """(process_id, b, n) of the period: its days' ended chains plus those open at the last
    day folded."""
    closed = in_scope(s, folds.ended)
    never = join_processes(s, _open_at_end(s, folds), bits="_bits")
    never = never.group_by("process_id").aggregate(n=never.count()).mutate(b=ibis.literal(BUCKETS[3]))
    both = ibis.union(closed.select("process_id", "b", "n"), never.select("process_id", "b", "n"))
    return both.group_by(["process_id", "b"]).aggregate(n=both.n.sum().cast("int64"))


OPEN_COLUMNS = ["report_date", *CHAIN_KEYS, "last_at", "attempts", "smets", "_bits"]
# What a failed send alone in its key keeps, beyond its day, SRV, SMETS and marks.
_ONE_BY_ONE = ["party_id", "device_id", "received_at", "_w"]


def _sends(s: Scope, days: list[dt.date], carried: ibis.Table | None) -> ibis.Table:
    """The included sends of `days` with what chaining reads, and each carried chain as one
    failed send of its attempts so far (weight `_w`), at its last send's time."""
    first, last = days[0], days[-1]
    req = outcome_requests(s)
    sends = marked(s, req.filter(req.report_date.between(first, last)))
    sends = sends.select(
        *CHAIN_KEYS,
        "report_date",
        "received_at",
        "request_id",
        "failed",
        smets=sends.smets.cast("int64"),
        _bits=mark_bits(s, sends),
        _w=ibis.literal(1, "int64"),
    )
    if carried is not None:
        pseudo = carried.select(
            *CHAIN_KEYS,
            "report_date",
            received_at=carried.last_at,
            request_id=ibis.literal(""),  # orders before any later send (none at the same time)
            failed=ibis.literal(True),
            smets=carried.smets,
            _bits=carried._bits,
            _w=carried.attempts,
        )
        sends = ibis.union(sends, pseudo.cast(sends.schema()))
    return sends


def fold_days(
    s: Scope, days: list[dt.date], carried: ibis.Table | None
) -> tuple[ibis.Table, ibis.Table, ibis.Table]:
    """The chains of a run of consecutive folded `days`, as folding them one by one would hand
    them on: (the chains that ended, per day, process and bucket: report_date, process_id, b,
    n; those open at the end of each day, as OPEN_COLUMNS; the chains that ended per day, SRV
    and bucket, each chain once: report_date, srv, b, n).

    `carried`: the chains open at the end of the day folded before (OPEN_COLUMNS), each standing
    as one failed row of its attempts so far, at its last send's time. A chain ends on the day
    of its success, or on the first day at whose end no resend can still come within the window
    of its last send; until then it is open at the end of each day, with its attempts and last
    send so far. The days are chained in one pass, not one query per day: a month's first
    compute folds every day at once."""
    sends = _sends(s, days, carried)
    repeated = s.cached("att1_repeated", lambda: repeated_chain_hashes(sends))
    alone, resent = alone_and_repeated(sends, repeated)
    # The sends alone in their key, in one pass: those that succeeded are chains of one won at
    # once, needed only as counts per day, SRV, SMETS and marks; those that failed (few) are
    # chains that may go on, kept one by one. (The keys of a success are nulled, so the
    # successes fall into few groups.)
    lone = alone.mutate(
        **{k: ibis.ifelse(alone.failed, alone[k], ibis.null(alone[k].type())) for k in _ONE_BY_ONE}
    )
    lone = lone.group_by(["report_date", "srv", "smets", "_bits", "failed", *_ONE_BY_ONE]).aggregate(
        n=lone.count()
    )
    lone = s.cached("att1_lone", lambda: lone)
    won_at_once = lone.filter(~lone.failed)
    failed = lone.filter(lone.failed)
    single = failed.select(
        *CHAIN_KEYS,
        chain_no=ibis.literal(0, "int64"),
        smets=failed.smets,
        _bits=failed._bits,
        won=ibis.null("int64"),
        last_at=failed.received_at,
        first_day=failed.report_date,
        last_day=failed.report_date,
    )
    # The resent keys' chains, as of the end of each day they have sends on: the head's SMETS
    # and marks, the attempt that won, the attempts and last send so far. Kept as a table: the
    # chains and their open days are read from it, and the sorts behind it are done once. Most
    # resends start a chain and succeed (a daily read, say): those are chains of one won at once,
    # told apart after the first sort and counted per day, SRV, SMETS and marks (rows with
    # `_once`), so only the chains with a failure are sorted again to number their attempts.
    starts = chain_starts(s, resent, weight="_w")
    once = (starts._new_chain == 1) & ~starts.failed
    ch = number_attempts(starts.filter(~once), weight="_w")
    head = ch.attempt_no == ch._w
    chained = ch.group_by([*CHAIN_KEYS, "chain_no", "report_date"]).aggregate(
        smets=ch.smets.max(where=head),
        _bits=ch._bits.max(where=head),
        won=ch.attempt_no.min(where=~ch.failed).cast("int64"),
        attempts=ch.attempt_no.max().cast("int64"),
        last_at=ch.received_at.max(),
        _once=ibis.null("int64"),
    )
    o = starts.filter(once)
    at_once_resent = o.group_by(["report_date", "srv", "smets", "_bits"]).aggregate(_once=o.count())
    at_once_resent = at_once_resent.mutate(
        party_id=ibis.null("string"),
        device_id=ibis.null("string"),
        chain_no=ibis.null("int64"),
        won=ibis.literal(1, "int64"),
        attempts=ibis.literal(1, "int64"),
        last_at=ibis.null("timestamp"),
    )
    both_kinds = ibis.union(chained, at_once_resent.select(*chained.columns).cast(chained.schema()))
    kept = s.cached("att1_per_day", lambda: both_kinds)
    per_day = kept.filter(kept._once.isnull()).drop("_once")
    won_at_once_resent = kept.filter(kept._once.notnull())
    grouped = per_day.group_by([*CHAIN_KEYS, "chain_no"]).aggregate(
        smets=per_day.smets.max(),
        _bits=per_day._bits.max(),
        won=per_day.won.min(),
        last_at=per_day.last_at.max(),
        first_day=per_day.report_date.min(),
        last_day=per_day.report_date.max(),
    )
    chains = ibis.union(grouped.select(*single.columns).cast(single.schema()), single)

    # The span's days and their ends; a chain not won ends on the first day at whose end the
    # window since its last send has passed.
    window = ibis.interval(minutes=s.m.counting.retry_window_minutes)
    cal = ibis.memtable({"day": days, "day_end": [s.day_start(d + dt.timedelta(days=1)) for d in days]}).cast(
        {"day": "date", "day_end": "timestamp"}
    )
    lapsed = chains.filter(chains.won.isnull())
    lapsed = lapsed.inner_join(cal, [cal.day >= lapsed.last_day, cal.day_end > lapsed.last_at + window])
    lapsed = lapsed.group_by([*CHAIN_KEYS, "chain_no"]).aggregate(_lapse=lapsed.day.min())
    lapsed = s.cached("att1_lapsed", lambda: lapsed)  # the failed chains alone: few
    keys = [*CHAIN_KEYS, "chain_no"]

    def with_end(t: ibis.Table) -> ibis.Table:
        j = t.left_join(lapsed, keys)
        return j.select(*t.columns, end_day=ibis.ifelse(j.won.notnull(), j.last_day, j._lapse))

    e = with_end(chains)
    e = e.filter(e.end_day.notnull())
    e = e.group_by(
        [e.end_day.name("report_date"), "srv", "smets", "_bits", bucket(e.won).name("b")]
    ).aggregate(n=e.count())
    at_once = ibis.union(
        won_at_once.select("report_date", "srv", "smets", "_bits", n="n"),
        won_at_once_resent.select("report_date", "srv", "smets", "_bits", n="_once"),
    ).mutate(b=ibis.literal(BUCKETS[0]))
    both = ibis.union(e, at_once.select(*e.columns).cast(e.schema()))
    by_srv = both.group_by(["report_date", "srv", "b"]).aggregate(n=both.n.sum().cast("int64"))
    ended = join_processes(s, both, bits="_bits")
    ended = ended.group_by(["report_date", "process_id", "b"]).aggregate(n=ended.n.sum().cast("int64"))

    still_open = _open_at_day_ends(with_end(chains), cal, per_day, failed)
    return (
        ended.select("report_date", "process_id", "b", "n"),
        still_open.select(*OPEN_COLUMNS),
        by_srv.select("report_date", "srv", "b", "n"),
    )


def _open_at_day_ends(c: ibis.Table, cal: ibis.Table, per_day: ibis.Table, failed: ibis.Table) -> ibis.Table:
    """Each chain open at the end of each day of the calendar `cal`: one whose first send is on
    or before it and that has not ended by it (`end_day`), with its attempts and last send as
    of that day (from `per_day`, the resent keys' chains per day, and `failed`, the failed
    sends alone in their key; the pseudo row of a carried chain stands for its sends before)."""
    keys = [*CHAIN_KEYS, "chain_no"]
    spans = c.filter((c.first_day < c.end_day) | c.end_day.isnull())
    at = spans.inner_join(
        cal, [cal.day >= spans.first_day, spans.end_day.isnull() | (cal.day < spans.end_day)]
    ).select(*keys, "smets", "_bits", report_date="day")
    sent = ibis.union(
        per_day.select(*keys, _d="report_date", _a="attempts", _t="last_at"),
        failed.select(
            *CHAIN_KEYS,
            chain_no=ibis.literal(0, "int64"),
            _d=failed.report_date,
            _a=failed._w,
            _t=failed.received_at,
        ),
    )
    j = at.inner_join(sent, [*[at[k] == sent[k] for k in keys], sent._d <= at.report_date])
    return j.group_by([*keys, "report_date", "smets", "_bits"]).aggregate(
        attempts=j._a.max().cast("int64"), last_at=j._t.max()
    )


MEASURES = {"ATT1": att1}

CELLS: dict = {}  # this family reads no day cells
