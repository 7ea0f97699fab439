"""Change of Supplier outcomes: CoS1 and the CoS trial volumes (TR1)."""

from __future__ import annotations

import ibis

from opmetrics.measures.outcome import Context, Row, count_row, rows_of, share_row, success_rows
from opmetrics.measures.records import Scope, classified_requests


def cos_requests(s: Scope) -> ibis.Table:
    """Included 6.23s, each with `ok`: delivered, or a failure overturned because the gaining
    party's later SRVs reached the device the same UK day (001 l.372, l.966). Four measures
    read it: computed once per run."""
    return s.cached("cos_requests", lambda: _cos_requests(s))


def _cos_requests(s: Scope) -> ibis.Table:
    req = classified_requests(s).filter(ibis._.included)
    cos = req.filter(req.srv == "6.23")
    later = req.filter((req.srv != "6.23") & (req.response_category == "response: success code"))
    # A failure is overturned when a later SRV reached the device that day: when the last
    # such SRV came after it. The SRVs are first narrowed to the keys of a 6.23 (a semi-join,
    # built on the few 6.23s), then reduced to their last time per key: no join of pairs,
    # which DuckDB built on the millions of later SRVs (1.5 s of CPU at 0.3 of a day).
    keys = ["device_id", "party_id", "report_date"]
    later = later.semi_join(cos, keys)
    last = later.group_by(keys).aggregate(l_last=later.received_at.max())
    last = last.rename(l_dev="device_id", l_party="party_id", l_day="report_date")
    same = [cos.device_id == last.l_dev, cos.party_id == last.l_party, cos.report_date == last.l_day]
    j = cos.left_join(last, same)
    hit = (j.l_last > j.received_at).fill_null(False)
    return j.mutate(overturned=j.failed & hit, ok=~j.failed | hit).drop("l_dev", "l_party", "l_day", "l_last")


def cos1(s: Scope, ctx: Context) -> list[Row]:
    t = cos_requests(s)
    out = success_rows(t, t.ok, {"region": ["region"]})
    n = rows_of(t.aggregate(o=t.overturned.cast("int64").sum()))[0]["o"] or 0
    out[0]["note"] = f"{n} failure responses overturned by the gaining party's later SRVs"
    return out


def cos1_segments(s: Scope, ctx: Context) -> list[Row]:
    t = cos_requests(s)
    return success_rows(t, t.ok, {"device_type x region": ["device_type", "region"]})[1:]


def cos1_failure_codes(s: Scope, ctx: Context) -> list[Row]:
    t = classified_requests(s)
    t = t.filter((t.srv == "6.23") & t.report_status.isin(s.m.report_status.included))
    bad = t.filter(t.failed | (t.response_category == "response: other code"))
    code = bad.response_code.fill_null("no response")
    rows = rows_of(
        bad.group_by(code=code)
        .aggregate(n=bad.count(), incl=bad.included.cast("int64").sum())
        .order_by([ibis.desc("n"), "code"])
    )
    return [
        count_row(
            "response code",
            r["code"],
            r["n"],
            note="" if r["incl"] == r["n"] else "outside DCC control: excluded from CoS1",
        )
        for r in rows
    ]


def cos1_daily_by_party(s: Scope, ctx: Context) -> list[Row]:
    t = cos_requests(s)
    return success_rows(t, t.ok, {"day x party": ["report_date", "party_id"]})[1:]


def tr1_cos_volumes(s: Scope, ctx: Context) -> list[Row]:
    """001 Table 16, Trial Report 1: industry CoS (registrations effective in the period), of
    which DCC-enrolled, attempted CoS (devices sent a 6.23), successful CoS, and success rate."""
    reg = s.con.table("registration_changes")
    reg = reg.filter(reg.report_date.between(s.first, s.last))
    r_reg = rows_of(reg.aggregate(n=reg.count(), dcc=reg.dcc_enrolled.cast("int64").sum()))[0]
    t = cos_requests(s)
    r = rows_of(t.aggregate(dev=t.device_id.nunique(), ok=t.device_id.nunique(where=t.ok)))[0]
    return [
        count_row("volume", "industry CoS (registration data)", r_reg["n"]),
        count_row("volume", "industry CoS, DCC enrolled", r_reg["dcc"] or 0),
        count_row("volume", "attempted CoS (devices sent a 6.23)", r["dev"]),
        count_row("volume", "successful CoS", r["ok"]),
        share_row("rate", "successful / attempted CoS", r["ok"], r["dev"]),
    ]


MEASURES = {
    "CoS1": cos1,
    "CoS1.segments": cos1_segments,
    "CoS1.failure_codes": cos1_failure_codes,
    "CoS1.daily_by_party": cos1_daily_by_party,
    "TR1.cos_volumes": tr1_cos_volumes,
}
