"""Per-record classification: the rule that included or excluded each record, and its outcome.

Every aggregate in opmetrics is a GROUP BY over these expressions, so any published figure can
be traced back to the records and the methodology rules that produced it (`opmetrics explain`).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import ibis
from ibis import _

from opmetrics.methodology import Methodology


def month_bounds(period: str) -> tuple[dt.date, dt.date]:
    """First and last UK calendar day of a `YYYY-MM` period."""
    try:
        y, m = (int(x) for x in period.split("-"))
        first = dt.date(y, m, 1)
    except ValueError:
        raise ValueError(f"period must look like 2026-10, got {period!r}") from None
    nxt = dt.date(y + (m == 12), m % 12 + 1, 1)
    return first, nxt - dt.timedelta(days=1)


def classified_requests(con: Any, m: Methodology, period: str | None = None) -> ibis.Table:
    """service_requests with inclusion rule, payload outcome, RTT and TRT per record."""
    sr = con.table("service_requests")
    if period:
        first, last = month_bounds(period)
        sr = sr.filter(sr.report_date.between(first, last))
    trt = ibis.memtable(m.trt_rows()).rename(trt_srv="srv", trt_smets="smets", trt_mode="mode")
    alerts = con.table("alerts")
    failing = alerts.filter(
        alerts.alert_code.isin(m.payload.failure_alert_codes) & alerts.request_id.notnull()
    )
    t = sr.left_join(trt, [sr.srv == trt.trt_srv, sr.smets == trt.trt_smets, sr.mode == trt.trt_mode]).drop(
        "trt_srv", "trt_smets", "trt_mode"
    )
    default_trt = ibis.cases(
        *[(t.mode == mode, secs) for mode, secs in m.trt_defaults_seconds.items()], else_=None
    )
    start = (
        t.quarantine_released_at.coalesce(t.received_at) if m.speed.exclude_quarantine_time else t.received_at
    )
    has_response = t.responded_at.notnull()
    comms_failure = t.response_code.isin(m.payload.failure_response_codes).fill_null(False)
    alert_failure = t.request_id.isin(failing.request_id)
    no_response_failure = ~has_response if m.payload.no_response_is_failure else ibis.literal(False)
    included = t.report_status.isin(m.report_status.included)
    t = t.mutate(
        included=included,
        rule=ibis.ifelse(
            included,
            ibis.literal("included: report status in reporting set"),
            ibis.literal("excluded: report status ")
            + t.report_status.cast("string")
            + " not in reporting (001 l.595-750)",
        ),
        segment=t.region,
        trt_s=t.trt_s.coalesce(default_trt),
        rtt_ms=t.responded_at.delta(start, unit="millisecond"),
        has_response=has_response,
        failed=comms_failure | alert_failure | no_response_failure,
        failure_reason=ibis.cases(
            (comms_failure, ibis.literal("response code ") + t.response_code),
            (alert_failure, ibis.literal("failure alert (N12/N13) linked to request")),
            (~has_response, ibis.literal("no response")),
            else_=None,
        ),
        response_category=ibis.cases(
            (~has_response, "no response"),
            (t.response_code.isin(m.payload.success_response_codes), "response: success code"),
            (comms_failure, "response: communications failure code"),
            else_="response: other code",
        ),
        speed_counted=t.mode.isin(m.speed.rtt_modes) & has_response,
    )
    late_if_missing = ibis.literal(not m.speed.no_response_counts_as_late)
    return t.mutate(
        within_trt=ibis.ifelse(_.has_response, _.rtt_ms <= _.trt_s * 1000, late_if_missing),
    )


def classified_alerts(con: Any, m: Methodology, period: str | None = None) -> ibis.Table:
    """alerts with CPM3 inclusion rule and delivery time per record."""
    a = con.table("alerts")
    if period:
        first, last = month_bounds(period)
        a = a.filter(a.report_date.between(first, last))
    included = ibis.literal(True) if m.alerts.count_suppressed else ~a.suppressed
    delivered = a.delivered_at.notnull()
    return a.mutate(
        included=included,
        rule=ibis.ifelse(included, "included", "excluded: suppressed by Alert Management Mechanism"),
        segment=a.region,
        delivery_ms=a.delivered_at.delta(a.raised_at, unit="millisecond"),
        within_trt=ibis.ifelse(
            delivered,
            a.delivered_at.delta(a.raised_at, unit="millisecond") <= m.alerts.trt_seconds * 1000,
            not m.alerts.undelivered_counts_as_late,
        ),
    )


def process_map(m: Methodology) -> ibis.Table:
    """(process_id, srv, smets1_applicable) rows: an SRV appears once per process listing it."""
    rows = []
    for p in m.processes:
        for code in p.srvs:
            srv = m.srv(code)
            rows.append(
                {
                    "process_id": p.id,
                    "srv": code,
                    "smets1_applicable": bool(p.smets1 and srv is not None and srv.smets1),
                }
            )
    return ibis.memtable(rows).rename(map_srv="srv")
