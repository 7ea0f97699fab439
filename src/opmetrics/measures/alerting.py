"""Alert outcomes: A1, alerts delivered within the SLA, and the failures by alert code."""

from __future__ import annotations

import ibis

from opmetrics.measures.outcome import Context, Row, count_row, rows_of, success_rows
from opmetrics.measures.records import Scope, classified_alerts


def _alerts(s: Scope) -> ibis.Table:
    t = classified_alerts(s).filter(ibis._.included)
    limit = s.m.outcomes.alert_trt_seconds * 1000
    return t.mutate(ok=(t.delivered_at.notnull() & (t.delivery_ms <= limit)).fill_null(False))


def a1(s: Scope, ctx: Context) -> list[Row]:
    t = _alerts(s)
    out = success_rows(t, t.ok, {"region": ["region"], "kind": ["kind"]})
    sup = s.con.table("alerts")
    sup = sup.filter(sup.report_date.between(s.first, s.last) & sup.suppressed)
    out[0]["note"] = f"{rows_of(sup.aggregate(n=sup.count()))[0]['n']} suppressed alerts excluded"
    return out


def a1_failures_by_code(s: Scope, ctx: Context) -> list[Row]:
    t = _alerts(s)
    f = t.filter(~t.ok)
    rows = rows_of(
        f.group_by("alert_code")
        .aggregate(n=f.count(), undelivered=f.delivered_at.isnull().cast("int64").sum())
        .order_by([ibis.desc("n"), "alert_code"])
    )
    return [
        count_row("alert code", r["alert_code"], r["n"], note=f"{r['undelivered']} never delivered")
        for r in rows
    ]


MEASURES = {"A1": a1, "A1.failures_by_code": a1_failures_by_code}
