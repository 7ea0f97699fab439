"""Alert outcomes: A1, alerts delivered within the SLA, and the failures by alert code."""

from __future__ import annotations

import ibis

from opmetrics.measures.outcome import Context, Row, count_row, day_cells, rows_of, success_rows
from opmetrics.measures.records import Scope, classified_alerts


def day_alert_outcomes(s: Scope) -> ibis.Table:
    """The alert outcomes' day cells, from one pass over every alert of the day: per region,
    kind, device type and alert code, whether included (and why not: suppressed), delivered
    within A1's SLA (`ok`) and delivered at all. A1 and PP1's local credit alerts read them."""
    t = classified_alerts(s)
    limit = s.m.outcomes.alert_trt_seconds * 1000
    ok = (t.delivered_at.notnull() & (t.delivery_ms <= limit)).fill_null(False)
    keys = ["report_date", "region", "kind", "device_type", "alert_code", "included", "suppressed"]
    return t.group_by([*keys, ok.name("ok"), t.delivered_at.isnull().name("undelivered")]).aggregate(
        n=t.count()
    )


def alert_cells(s: Scope, ctx: Context) -> ibis.Table:
    return day_cells(s, ctx, "day_alert_outcomes", day_alert_outcomes)


def a1(s: Scope, ctx: Context) -> list[Row]:
    a = alert_cells(s, ctx)
    t = a.filter(a.included)
    out = success_rows(t, t.ok, {"region": ["region"], "kind": ["kind"]}, weight="n")
    sup = rows_of(a.aggregate(n=ibis.ifelse(a.suppressed, a.n, 0).sum()))[0]["n"] or 0
    out[0]["note"] = f"{sup} suppressed alerts excluded"
    return out


def a1_failures_by_code(s: Scope, ctx: Context) -> list[Row]:
    a = alert_cells(s, ctx)
    f = a.filter(a.included & ~a.ok)
    rows = rows_of(
        f.group_by("alert_code")
        .aggregate(
            n=f.n.sum().cast("int64"), undelivered=ibis.ifelse(f.undelivered, f.n, 0).sum().cast("int64")
        )
        .order_by([ibis.desc("n"), "alert_code"])
    )
    return [
        count_row("alert code", r["alert_code"], r["n"], note=f"{r['undelivered']} never delivered")
        for r in rows
    ]


def alert_process(s: Scope, ctx: Context) -> list[Row]:
    """An alert process's measure (Alerts Management): its alerts delivered within A1's SLA,
    suppressed ones excluded as in A1, by region and by alert code."""
    codes = s.m.measure("AM1").alert_codes
    a = alert_cells(s, ctx)
    t = a.filter(a.included & a.alert_code.isin(codes or ["-"]))
    return success_rows(t, t.ok, {"region": ["region"], "alert_code": ["alert_code"]}, weight="n")


MEASURES = {"A1": a1, "A1.failures_by_code": a1_failures_by_code, "AM1": alert_process}
CELLS = {"day_alert_outcomes": day_alert_outcomes}
