"""Firmware outcomes: device firmware (DF1-DF3) and Communications Hub firmware (CHF1, CHF2)."""

from __future__ import annotations

import datetime as dt

import ibis

from opmetrics.measures.outcome import (
    Context,
    Row,
    count_row,
    day_cells,
    rows_of,
    share_row,
    success_rows,
)
from opmetrics.measures.records import Scope, included_requests, outcome_requests, srv_in

DF2_ORDER = [
    "verified (8F72)",
    "verification failed (8F1C)",
    "no alert after SLA",
    "in progress (SLA not elapsed)",
]


def _df_srvs(s: Scope) -> list[str]:
    return sorted({*s.m.measure("DF1").srvs, *s.m.measure("DF3").srvs})


def day_firmware(s: Scope) -> ibis.Table:
    """DF1's and DF3's day cells: included requests of their SRVs per SRV, SMETS, region,
    device type, response category and failure."""
    t = outcome_requests(s)
    t = t.filter(srv_in(t, _df_srvs(s)))
    keys = ["report_date", "srv", "smets", "region", "device_type", "response_category", "failed"]
    return t.group_by(keys).aggregate(n=t.count())


def day_firmware_devices(s: Scope) -> ibis.Table:
    """The devices sent DF1's SRVs each day (DF1 counts devices, which days cannot sum)."""
    t = included_requests(s, s.m.measure("DF1").srvs)
    return t.select("report_date", "device_id").distinct()


def day_firmware_sends(s: Scope) -> ibis.Table:
    """DF2's acknowledged 11.1s, one row each (few): whether a verification alert followed
    within the SLA is decided at report time, from the alerts of the days after."""
    o = s.m.outcomes
    t = included_requests(
        s, ["11.1"], lambda r: (r.response_code == o.firmware_ack_code) & r.smets.isin(o.firmware_smets)
    )
    return t.select("report_date", "request_id", "device_id", "responded_at", "region")


def _firmware(s: Scope, ctx: Context, measure: str) -> ibis.Table:
    t = day_cells(s, ctx, "day_firmware", day_firmware)
    return t.filter(t.srv.isin(s.m.measure(measure).srvs))


def df1(s: Scope, ctx: Context) -> list[Row]:
    t = _firmware(s, ctx, "DF1")
    out = success_rows(t, ~t.failed, {"region": ["region"], "device_type": ["device_type"]}, weight="n")
    d = day_cells(s, ctx, "day_firmware_devices", day_firmware_devices)
    n = rows_of(d.aggregate(d=d.device_id.nunique()))[0]["d"]
    out[0]["note"] = (
        f"{n} devices; success is an acknowledgement of the command "
        '(001 l.998 "merely an acknowledgement of the command")'
    )
    return out


def df2_outcomes(s: Scope, ctx: Context) -> ibis.Table:
    """Each acknowledged 11.1 with the first verification alert within the SLA, and its category."""
    o = s.m.outcomes
    t = day_cells(s, ctx, "day_firmware_sends", day_firmware_sends)
    a = s.con.table("alerts")
    # An alert counts from its 11.1's response on, so none raised before the period can: the
    # bound spares a scan of every alert ever stored.
    a = a.filter(
        a.alert_code.isin([o.firmware_success_alert, o.firmware_failure_alert])
        & (a.raised_at >= s.day_start(s.first))
        & (a.raised_at <= s.as_of)
    )
    a = a.select(a_dev="device_id", a_code="alert_code", a_at="raised_at")
    sla = dt.timedelta(days=o.firmware_sla_days)
    j = t.left_join(a, [t.device_id == a.a_dev, a.a_at >= t.responded_at, a.a_at <= t.responded_at + sla])
    first = j.group_by("request_id").aggregate(
        ok=(j.a_code == o.firmware_success_alert).cast("int64").max(),
        bad=(j.a_code == o.firmware_failure_alert).cast("int64").max(),
        due=(j.responded_at + sla).max(),
        region=j.region.max(),
    )
    cat = ibis.cases(
        (first.ok == 1, DF2_ORDER[0]),
        (first.bad == 1, DF2_ORDER[1]),
        (first.due <= s.as_of, DF2_ORDER[2]),
        else_=DF2_ORDER[3],
    )
    return first.mutate(category=cat)


def df2(s: Scope, ctx: Context) -> list[Row]:
    t = df2_outcomes(s, ctx)
    rows = {r["category"]: r["n"] for r in rows_of(t.group_by("category").aggregate(n=t.count()))}
    decided = sum(rows.get(c, 0) for c in DF2_ORDER[:3])
    out = [share_row("category", c, rows.get(c, 0), decided) for c in DF2_ORDER[:3]]
    out.append(
        count_row(
            "category",
            DF2_ORDER[3],
            rows.get(DF2_ORDER[3], 0),
            note="not in the percentages: SLA not elapsed at report time",
        )
    )
    return out


def df3(s: Scope, ctx: Context) -> list[Row]:
    t = _firmware(s, ctx, "DF3")
    t = t.filter(t.smets.isin(s.m.outcomes.firmware_smets))
    by = {"response category": ["response_category"], "region": ["region"]}
    return success_rows(t, ~t.failed, by, weight="n")


def _chf(s: Scope) -> ibis.Table:
    f = s.con.table("ch_firmware")
    return f.filter(f.report_date.between(s.first, s.last))


def chf1(s: Scope, ctx: Context) -> list[Row]:
    f = _chf(s)
    pending = rows_of(f.aggregate(n=(f.delivery_outcome == "in_progress").cast("int64").sum()))[0]["n"] or 0
    t = f.filter(f.delivery_outcome != "in_progress")
    out = success_rows(t, t.delivery_outcome == "delivered", {"region": ["region"]})
    out[0]["note"] = f"{pending} still in progress, not counted"
    return out


def chf2(s: Scope, ctx: Context) -> list[Row]:
    f = _chf(s)
    t = f.filter(f.activation_outcome.isin(["activated", "failed"]))
    return success_rows(t, t.activation_outcome == "activated", {"region": ["region"]})


MEASURES = {"DF1": df1, "DF2": df2, "DF3": df3, "CHF1": chf1, "CHF2": chf2}
CELLS = {
    "day_firmware": day_firmware,
    "day_firmware_devices": day_firmware_devices,
    "day_firmware_sends": day_firmware_sends,
}
