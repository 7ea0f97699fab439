"""Install and Commission outcomes: IC1, IC2 and the installation trial metrics (TR2)."""

from __future__ import annotations

import datetime as dt

import ibis

from opmetrics.measures.forecasts import day_sent
from opmetrics.measures.outcome import Context, Row, count_row, day_cells, grouped_shares, rows_of, share_row
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
    t = _in_period(_installs(s), s)
    t = t.filter(t.device_type.isin(IC_TYPES))
    ok = t.commissioned_at.notnull()
    note = "commissioned / installed"
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
    hubs = _in_period(_installs(s), s)
    hubs = hubs.filter(hubs.device_type == "CHF")
    u = s.con.table("ch_status_updates")
    u = u.filter((u.sent_at <= s.as_of) & u.srv.isin(["8.14.1", "8.14.2"]))
    flags = u.group_by(ch=u.device_id).aggregate(
        ic=(u.srv == "8.14.1").cast("int64").max(), il=(u.srv == "8.14.2").cast("int64").max()
    )
    j = hubs.left_join(flags, hubs.device_id == flags.ch)
    days = s.m.outcomes.install_leave_investigation_days
    within = j.installed_at > (s.as_of - dt.timedelta(days=days))
    cat = ibis.cases(
        (j.ic == 1, "install and commission (8.14.1)"),
        ((j.il == 1) & within, f"install and leave: awaiting decision (within {days} days)"),
        (j.il == 1, "install and leave (8.14.2)"),
        else_="neither",
    )
    j = j.mutate(category=cat)
    total = rows_of(j.aggregate(n=j.count()))[0]["n"]
    out = [
        share_row("category", r["category"], r["n"], total)
        for r in rows_of(j.group_by("category").aggregate(n=j.count()).order_by("category"))
    ]
    out += [
        share_row("region x category", r["region"], r["n"], r["d"], r["category"])
        for r in rows_of(
            j.group_by(["region", "category"])
            .aggregate(n=j.count())
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
                "status": "ok" if dev is not None else "No Events",
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
