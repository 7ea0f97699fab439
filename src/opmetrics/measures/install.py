"""Install and Commission outcomes: IC1, IC2 and the installation trial metrics (TR2)."""

from __future__ import annotations

import datetime as dt

import ibis

from opmetrics.measures.forecasts import day_sent
from opmetrics.measures.outcome import (
    Context,
    Row,
    count_row,
    day_cells,
    grouped_shares,
    rows_of,
    share_row,
)
from opmetrics.measures.records import Scope, latest_devices

IC_TYPES = ["CHF", "ESME", "GSME"]
WEEKDAYS = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]


def _installs(s: Scope, pad_days: int = 0) -> ibis.Table:
    d = latest_devices(s)
    d = d.mutate(install_day=s.uk_day(d.installed_at, pad_days=pad_days))
    return d.filter(d.install_day.notnull())


def _in_period(t: ibis.Table, s: Scope) -> ibis.Table:
    return t.filter(t.install_day.between(s.first, s.last))


def ic1_rsvp(s: Scope, ctx: Context) -> list[Row]:
    out = []
    for r in ctx.rsvp.to_pylist():
        if r["scope"] == "process" and r["key"] == "install_commission" and r["rate"] == "month":
            late = r["trt_denominator"] - r["within_trt"]
            out.append(share_row("segment", r["segment"], late, r["trt_denominator"], note="% failing TRT"))
    return out


def ic1_installs(s: Scope, ctx: Context) -> list[Row]:
    """Installs that succeeded: a meter that reached Commissioned; a hub that did, with at
    least one meter joined to it when `outcomes.ch_install_success: meter_attached`
    (001 l.979 "DCC will report as Successful cases where there is at least one Meter attached")."""
    t = _in_period(_installs(s), s)
    t = t.filter(t.device_type.isin(IC_TYPES))
    ok = t.commissioned_at.notnull()
    note = "commissioned / installed"
    if s.m.outcomes.ch_install_success == "meter_attached":
        d = latest_devices(s)
        meters = d.filter(d.device_type.isin(["ESME", "GSME"]) & d.ch_id.notnull())
        hubs = meters.select(hub=meters.ch_id).distinct()
        t = t.left_join(hubs, t.device_id == hubs.hub)
        ok = t.commissioned_at.notnull() & ((t.device_type != "CHF") | t.hub.notnull())
        note = "commissioned (a hub: with a meter attached) / installed"
    return grouped_shares(t, ok, "device_type x region", ["device_type", "region"], note) + grouped_shares(
        t, ok, "day x device_type", ["install_day", "device_type"]
    )


def _daily_vs_prediction(s: Scope, by_party: bool) -> list[dict]:
    lag = s.m.outcomes.prediction_lag_days
    t = _installs(s, pad_days=lag)
    keys = ["install_day", "party_id"] if by_party else ["install_day"]
    daily = {tuple(r[k] for k in keys): r["n"] for r in rows_of(t.group_by(keys).aggregate(n=t.count()))}
    parties = sorted({k[1] for k in daily}) if by_party else [None]
    out = []
    day = s.first
    while day <= s.last:
        prev = day - dt.timedelta(days=lag)
        for p in parties:
            k, kp = ((day, p), (prev, p)) if by_party else ((day,), (prev,))
            out.append({"day": day, "party": p, "actual": daily.get(k, 0), "predicted": daily.get(kp, 0)})
        day += dt.timedelta(days=1)
    return out


def ic1_prediction(s: Scope, ctx: Context) -> list[Row]:
    out = []
    for r in _daily_vs_prediction(s, by_party=True):
        if r["actual"] or r["predicted"]:
            row = share_row("day x party", r["day"], r["actual"], r["predicted"], r["party"])
            row["unit"] = "% of predicted"  # a ratio, may exceed 100: not a share
            out.append(row)
    return out


def ic1_install_leave(s: Scope, ctx: Context) -> list[Row]:
    """Communications Hubs installed: Install and Commission (8.14.1), Install and Leave (8.14.2)
    decided or awaiting a decision within the 90-day investigation period, or neither, at the
    report time, as
    001 l.981 "DCC will also include a third category which identifies the installations" says.
    A hub installed this month cannot have left its 90 days, so the hubs of the three months
    before are reported as a cohort of their own,
    001 l.981 "or additionally provide reporting on the previous three months": there an Install
    and Leave is decided by a later status update (8.14.1, 8.14.3, 8.14.4) or by the
    investigation period running out."""
    days = s.m.outcomes.install_leave_investigation_days
    y, mo = s.first.year, s.first.month - 3
    y, mo = (y - 1, mo + 12) if mo < 1 else (y, mo)
    cohort_start = s.day_start(dt.date(y, mo, 1))
    period_start, period_end = s.day_start(s.first), s.day_start(s.last + dt.timedelta(days=1))
    d = latest_devices(s)
    hubs = d.filter(
        (d.device_type == "CHF") & (d.installed_at >= cohort_start) & (d.installed_at < period_end)
    )
    hubs = hubs.mutate(
        cohort=ibis.ifelse(
            hubs.installed_at >= period_start, "installed in the period", "installed in the 3 months before"
        )
    )
    u = s.con.table("ch_status_updates")
    u = u.filter((u.sent_at <= s.as_of) & u.srv.isin(["8.14.1", "8.14.2", "8.14.3", "8.14.4"]))
    first = u.group_by(ch=u.device_id).aggregate(
        ic=(u.srv == "8.14.1").any(), il_at=u.sent_at.min(where=u.srv == "8.14.2")
    )
    later = u.inner_join(first, u.device_id == first.ch)
    later = later.filter(later.il_at.notnull() & (later.sent_at > later.il_at) & (later.srv != "8.14.2"))
    decided = later.select(dec=later.device_id).distinct()
    j = hubs.left_join(first, hubs.device_id == first.ch).left_join(decided, hubs.device_id == decided.dec)
    expired = j.installed_at <= s.as_of - dt.timedelta(days=days)
    cat = ibis.cases(
        (j.il_at.notnull() & j.dec.notnull(), "install and leave: decided (a later status update)"),
        (j.il_at.notnull() & expired, f"install and leave: decided (the {days} days are over)"),
        (j.il_at.notnull(), f"install and leave: awaiting decision (within {days} days)"),
        (j.ic.fill_null(False), "install and commission (8.14.1)"),
        else_="neither",
    )
    j = j.mutate(category=cat)
    out = []
    for cohort in ("installed in the period", "installed in the 3 months before"):
        c = j.filter(j.cohort == cohort)
        total = rows_of(c.aggregate(n=c.count()))[0]["n"]
        name = (
            "category"
            if cohort == "installed in the period"
            else "category, hubs installed in the 3 months before"
        )
        out += [
            share_row(name, r["category"], r["n"], total)
            for r in rows_of(c.group_by("category").aggregate(n=c.count()).order_by("category"))
        ]
    mine = j.filter(j.cohort == "installed in the period")
    out += [
        share_row("region x category", r["region"], r["n"], r["d"], r["category"])
        for r in rows_of(
            mine.group_by(["region", "category"])
            .aggregate(n=mine.count())
            .mutate(d=ibis._.n.sum().over(group_by="region"))
            .order_by(["region", "category"])
        )
    ]
    return out


def ic2(s: Scope, ctx: Context) -> list[Row]:
    inc = s.con.table("incidents")
    inc = inc.filter(inc.category.isin([1, 2]))
    incidents = rows_of(
        inc.select("incident_id", "category", "raised_at", "resolved_at").order_by("incident_id")
    )
    sent = day_cells(s, ctx, "day_sent", day_sent)
    volume = {
        r["report_date"]: r["n"]
        for r in rows_of(sent.group_by("report_date").aggregate(n=sent.n.sum().cast("int64")))
    }
    threshold = s.m.outcomes.ic2_deviation_alert_pct
    out = []
    for r in _daily_vs_prediction(s, by_party=False):
        day = r["day"]
        start, end = s.day_start(day), s.day_start(day + dt.timedelta(days=1))
        open_ = [
            i["incident_id"]
            for i in incidents
            if i["raised_at"] < end and (i["resolved_at"] is None or i["resolved_at"] >= start)
        ]
        dev = 100.0 * (r["actual"] - r["predicted"]) / r["predicted"] if r["predicted"] else None
        flag = dev is not None and abs(dev) > threshold
        note = "; ".join(
            x
            for x in [
                f"Cat 1/2 open: {', '.join(open_)}" if open_ else "",
                f"deviation beyond {threshold:g} %" if flag else "",
                f"{volume.get(day, 0)} service requests",
            ]
            if x
        )
        out.append(
            {
                "breakdown": "day",
                "key1": str(day),
                "key2": "",
                "numerator": r["actual"],
                "denominator": r["predicted"],
                "value": dev,
                "unit": "% deviation",
                "note": note,
                # No status: outcome._status gives "ok", or "no baseline" for installs on a day
                # without a forecast, or "No Events".
            }
        )
    return out


def tr2_installs_by_weekday(s: Scope, ctx: Context) -> list[Row]:
    t = _in_period(_installs(s), s)
    rows = rows_of(t.group_by(["install_day", "region", "device_type"]).aggregate(n=t.count()))
    total = sum(r["n"] for r in rows)
    by_wd: dict[int, int] = {}
    by_region: dict[str, int] = {}
    by_type: dict[str, int] = {}
    for r in rows:
        wd = r["install_day"].weekday()
        by_wd[wd] = by_wd.get(wd, 0) + r["n"]
        by_region[r["region"]] = by_region.get(r["region"], 0) + r["n"]
        by_type[r["device_type"]] = by_type.get(r["device_type"], 0) + r["n"]
    n_days: dict[int, int] = {}
    d = s.first
    while d <= s.last:
        n_days[d.weekday()] = n_days.get(d.weekday(), 0) + 1
        d += dt.timedelta(days=1)
    out = [
        count_row(
            "weekday",
            WEEKDAYS[wd],
            by_wd.get(wd, 0),
            note=f"{by_wd.get(wd, 0) / n_days[wd]:.1f} per {WEEKDAYS[wd]}",
        )
        for wd in range(7)
    ]
    out += [share_row("region", k, v, total) for k, v in sorted(by_region.items())]
    out += [count_row("device_type", k, v) for k, v in sorted(by_type.items())]
    return out


MEASURES = {
    "IC1.RSVP": ic1_rsvp,
    "IC1.installs": ic1_installs,
    "IC1.prediction": ic1_prediction,
    "IC1.install_leave": ic1_install_leave,
    "IC2": ic2,
    "TR2.installs_by_weekday": tr2_installs_by_weekday,
}

CELLS: dict = {}  # this family reads no day cells
