"""Change of Supplier outcomes: CoS1 and the CoS trial volumes (TR1)."""

from __future__ import annotations

import ibis

from opmetrics.measures.outcome import Context, Row, cell_shares, count_row, day_cells, rows_of, share_row
from opmetrics.measures.records import (
    Scope,
    classified_requests,
    included_requests,
    outcome_requests,
    success_code,
)


def cos_requests(s: Scope) -> ibis.Table:
    """Included 6.23s, each with `ok`: delivered, or a failure overturned because the gaining
    party's later SRVs reached the device the same UK day
    (001 l.371 "subsequent critical and non-critical SRs sent by the gaining supplier"). Four measures
    read it: computed once per run."""
    return s.cached("cos_requests", lambda: _cos_requests(s))


def _cos_requests(s: Scope) -> ibis.Table:
    req = outcome_requests(s)
    cos = req.filter(req.srv == "6.23")
    # Read from their own rows: a success code needs no lookup.
    later = included_requests(s, None, lambda r: (r.srv != "6.23") & success_code(s, r))
    # A failure is overturned when a later SRV reached the device that day: when the last
    # such SRV came after it. The SRVs are first narrowed to the keys of a 6.23 (a semi-join,
    # built on the few 6.23s), then reduced to their last time per key: no join of pairs,
    # which DuckDB built on the millions of later SRVs.
    keys = ["device_id", "party_id", *s.m.outcomes.cos_followup_keys]
    later = later.semi_join(cos, keys)
    last = later.group_by(keys).aggregate(l_last=later.received_at.max())
    last = last.rename({f"l_{k}": k for k in keys})
    j = cos.left_join(last, [cos[k] == last[f"l_{k}"] for k in keys])
    hit = (j.l_last > j.received_at).fill_null(False)
    return j.mutate(overturned=j.failed & hit, ok=~j.failed | hit).drop(*(f"l_{k}" for k in keys), "l_last")


def day_cos(s: Scope) -> ibis.Table:
    """CoS1's day cells: 6.23s, successes and overturned failures per party, region and device
    type (the overturning SRVs are looked for on the same UK day, so a day holds its own)."""
    t = cos_requests(s)
    return t.group_by(["report_date", "party_id", "region", "device_type"]).aggregate(
        n=t.count(),
        ok=t.ok.cast("int64").sum().cast("int64"),
        overturned=t.overturned.cast("int64").sum().cast("int64"),
    )


def day_cos_devices(s: Scope) -> ibis.Table:
    """Each device sent a 6.23 on a day, and whether one succeeded: the month's attempted and
    successful CoS count devices, which days cannot sum."""
    t = cos_requests(s)
    return t.group_by(["report_date", "device_id"]).aggregate(ok=t.ok.cast("int64").max())


def day_cos_codes(s: Scope) -> ibis.Table:
    """6.23s with a reportable status that failed or got another code, per response code; `incl`
    of them counted in CoS1 (the rest are outside DCC control)."""
    t = classified_requests(s)
    t = t.filter((t.srv == "6.23") & t.report_status.isin(s.m.report_status.included))
    bad = t.filter(t.outcome_failed | (t.response_category == "response: other code"))
    return bad.group_by(["report_date", bad.response_code.fill_null("no response").name("code")]).aggregate(
        n=bad.count(), incl=bad.included.cast("int64").sum().cast("int64")
    )


def _cos(s: Scope, ctx: Context) -> ibis.Table:
    return day_cells(s, ctx, "day_cos", day_cos)


def cos1(s: Scope, ctx: Context) -> list[Row]:
    t = _cos(s, ctx)
    out = cell_shares(t, "ok", "n", {"region": ["region"]})
    n = rows_of(t.aggregate(o=t.overturned.sum()))[0]["o"] or 0
    out[0]["note"] = f"{n} failure responses overturned by the gaining party's later SRVs"
    return out


def cos1_segments(s: Scope, ctx: Context) -> list[Row]:
    return cell_shares(_cos(s, ctx), "ok", "n", {"device_type x region": ["device_type", "region"]})[1:]


def cos1_failure_codes(s: Scope, ctx: Context) -> list[Row]:
    t = day_cells(s, ctx, "day_cos_codes", day_cos_codes)
    rows = rows_of(
        t.group_by("code")
        .aggregate(n=t.n.sum().cast("int64"), incl=t.incl.sum().cast("int64"))
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
    return cell_shares(_cos(s, ctx), "ok", "n", {"day x party": ["report_date", "party_id"]})[1:]


def tr1_cos_volumes(s: Scope, ctx: Context) -> list[Row]:
    """001 Table 16, Trial Report 1: industry CoS (registrations effective in the period), of
    which DCC-enrolled, attempted CoS (devices sent a 6.23), successful CoS, and success rate."""
    reg = s.con.table("registration_changes")
    reg = reg.filter(reg.report_date.between(s.first, s.last))
    r_reg = rows_of(reg.aggregate(n=reg.count(), dcc=reg.dcc_enrolled.cast("int64").sum()))[0]
    d = day_cells(s, ctx, "day_cos_devices", day_cos_devices)
    d = d.group_by("device_id").aggregate(ok=d.ok.max())
    r = rows_of(d.aggregate(dev=d.count(), ok=d.ok.sum()))[0]
    return [
        count_row("volume", "industry CoS (registration data)", r_reg["n"]),
        count_row("volume", "industry CoS, DCC enrolled", r_reg["dcc"] or 0),
        count_row("volume", "attempted CoS (devices sent a 6.23)", r["dev"]),
        count_row("volume", "successful CoS", r["ok"] or 0),
        share_row("rate", "successful / attempted CoS", r["ok"] or 0, r["dev"]),
    ]


MEASURES = {
    "CoS1": cos1,
    "CoS1.segments": cos1_segments,
    "CoS1.failure_codes": cos1_failure_codes,
    "CoS1.daily_by_party": cos1_daily_by_party,
    "TR1.cos_volumes": tr1_cos_volumes,
}
CELLS = {"day_cos": day_cos, "day_cos_devices": day_cos_devices, "day_cos_codes": day_cos_codes}
