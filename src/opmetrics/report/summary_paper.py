"""The OPSG summary paper (003 l.120 "Summary Paper Proposal"): the standing metrics of the
month on two or three pages, for the OPSG reporting meeting, with the anomalies of the month
picked automatically.

Standing metrics (methodology `opsg_summary`): a group of SRVs per business process and the
DCC alerts, each with volume, success, within TRT and median RTT against the previous month, and
a daily success graph per group. Anomalies, the biggest first: the month's unplanned outages
and Category 1/2 incidents (longest first), the days when a standing SRV's share delivered
within TRT fell far below its month (more than `anomaly_mad` median absolute deviations,
ranked by the requests it fell short by), missed CPM targets, and parties whose success is far
below other parties' (anonymised as in the league tables). Its figures are the pack's, formatted
by the pack's formatter, on the pack's success basis.
"""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

import duckdb

from opmetrics import format as fmt
from opmetrics.engine.store import Store
from opmetrics.measures.run import latest_run
from opmetrics.methodology import Methodology
from opmetrics.methodology.status import MISSED, Status
from opmetrics.report.anonymise import Anonymiser
from opmetrics.report.charts import srv_success_svg
from opmetrics.report.figures import Figures, major_events

PARTY_GAP_PTS = -5.0  # a party this far below other parties is listed
MAX_DAYS = 8  # outlying days listed, the most outlying first


def _srv_rows(store: Store, period: str, run_id: str, srvs: list[str]) -> list[dict[str, Any]]:
    if not srvs:
        return []
    return store.rows(
        "SELECT * FROM rsvp WHERE period = ? AND scope = 'srv' AND segment = 'All' AND key IN ? "
        "AND run_id = ?",
        [period, srvs, run_id],
    )


def delivered_pct(d: dict[str, Any]) -> float | None:
    """The share of a day's requests answered with their success code within the TRT (CPM6A's
    basis): an outage shows here whether the requests timed out or came back with an error."""
    den = d.get("trt_denominator")
    return 100.0 * d["delivered_within_trt"] / den if den else None


def daily_anomalies(days: list[dict[str, Any]], mad_k: float, min_volume: int) -> list[dict[str, Any]]:
    """Days whose delivered share is more than `mad_k` MADs below the month's median day, each
    with the requests it fell short by (its size, by which the paper ranks it)."""
    rated = [(d, delivered_pct(d)) for d in days if d["volume"] >= min_volume]
    vals = [(d, v) for d, v in rated if v is not None]
    if len(vals) < 7:
        return []
    med = statistics.median(v for _, v in vals)
    mad = statistics.median(abs(v - med) for _, v in vals) or 0.1  # a flat month: 0.1 point
    return [
        {
            **d,
            "pct": v,
            "median": med,
            "mads": (med - v) / mad,
            "short": d["trt_denominator"] * (med - v) / 100,
        }
        for d, v in vals
        if v < med - mad_k * mad
    ]


def build(store: Store, m: Methodology, f: Figures, anon: Anonymiser, prev_period: str) -> dict[str, Any]:
    """The paper's content, ready for its template."""
    cfg = m.opsg_summary
    names = {s.srv: s.name for s in m.srvs}
    all_srvs = [s for g in cfg.groups for s in g.srvs]
    now = _srv_rows(store, f.period, f.run.run_id, all_srvs)
    before = f.previous.get("srv", {})  # the previous month as the run stored it (run or published)
    month = {r["key"]: r for r in now if r["rate"] == "month"}
    groups, anomalies = [], []
    for g in cfg.groups:
        rows, series = [], {}
        for srv in g.srvs:
            r, p = month.get(srv), before.get(srv)
            rows.append({"srv": srv, "name": names.get(srv, ""), "now": r, "prev": p})
            days = sorted((x for x in now if x["key"] == srv and x["rate"] == "day"), key=lambda x: x["day"])
            if days:
                series[srv] = [(d["day"].day, d["success_pct"]) for d in days]
            for a in daily_anomalies(days, cfg.anomaly_mad, cfg.anomaly_min_volume):
                anomalies.append(
                    {
                        "short": a["short"],
                        "kind": "day",
                        "text": f"SRV {srv} ({names.get(srv, '')}) on {a['day']:%a %d %b}: "
                        f"{fmt.pct(a['pct'])} delivered within TRT on {a['volume']:,} requests, against a "
                        f"median day of {fmt.pct(a['median'])}: about {a['short']:,.0f} requests short "
                        f"({a['mads']:.0f} MADs below)",
                    }
                )
        chart = srv_success_svg(series, f"{g.name}: daily success") if series else None
        groups.append({"name": g.name, "rows": rows, "chart": chart})
    # The month's outages and major incidents first, longest first; then the days that fell
    # furthest short in requests (not in MADs: a small SRV's blip is not the month's story).
    days_found = sorted(anomalies, key=lambda a: -a["short"])[:MAX_DAYS]
    anomalies = [
        *major_events(f, m.report_timezone),
        *({"kind": "day", "text": a["text"]} for a in days_found),
    ]
    # CPMs: each cell below its minimum by name; cells below target counted per CPM.
    missed = [c for c in f.cpm if c.get("instance") and c["status"] in MISSED]
    process = {p.id: p.name for p in m.processes}

    def label(c: dict[str, Any]) -> str:  # business names, never an internal id
        return c["cpm"] + ("" if c["key"] == "all" else " " + process.get(c["key"], c["key"]))

    for c in [c for c in missed if c["status"] == Status.BELOW_MINIMUM]:
        anomalies.append(
            {
                "kind": "cpm",
                "text": f"{label(c)} ({c['segment']}): {fmt.pct(c['pct'])}, below the minimum "
                f"{c['minimum']}% (target {c['target']}%)",
            }
        )
    for cpm in sorted({c["cpm"] for c in missed if c["status"] == Status.BELOW_TARGET}):
        cells = [c for c in missed if c["cpm"] == cpm and c["status"] == Status.BELOW_TARGET]
        low = min(cells, key=lambda c: c["pct"])
        anomalies.append(
            {
                "kind": "cpm",
                "text": f"{cpm}: {len(cells)} cell(s) below target {low['target']}% "
                f"(lowest {label(low)} ({low['segment']}) {fmt.pct(low['pct'])})",
            }
        )
    try:
        diag = store.rows(
            "SELECT party_id, party_pct, others_pct, gap_pts, factor, value FROM diagnostics "
            "WHERE period = ? AND run_id = ? AND process_id = 'all' AND rank = 1 AND gap_pts <= ? "
            "ORDER BY gap_pts",
            [f.period, f.run.run_id, PARTY_GAP_PTS],
        )
    except duckdb.CatalogException:  # computed before diagnostics existed
        diag = []
    for d in diag:
        anomalies.append(
            {
                "kind": "party",
                "text": f"{anon.name(d['party_id'])}: {fmt.pct(d['party_pct'])} success against "
                f"{fmt.pct(d['others_pct'])} for other parties; first explanation: {d['factor']}"
                + (f" ({d['value']})" if d["factor"] != "orchestration" else ""),
            }
        )
    alerts = _alert_counts(f.alerts, cfg.dcc_alerts)
    prev_run = latest_run(store, prev_period)  # the previous month's counts as its own run stored them
    prev_rows = []
    if prev_run is not None:
        try:
            prev_rows = store.rows(
                "SELECT kind, alert_code, n FROM run_alerts WHERE period = ? AND run_id = ?",
                [prev_period, prev_run.run_id],
            )
        except duckdb.CatalogException:  # computed before runs stored their alerts
            prev_rows = []
    alerts_prev = _alert_counts(prev_rows, cfg.dcc_alerts) if prev_rows else {"dcc": None, "device": None}
    return {"groups": groups, "anomalies": anomalies, "alerts": alerts, "alerts_prev": alerts_prev}


def _alert_counts(rows: list[dict[str, Any]], dcc_alerts: list[str]) -> dict[str, int]:
    return {
        "dcc": sum(r["n"] for r in rows if r["kind"] == "dcc" and r["alert_code"] in dcc_alerts),
        "device": sum(r["n"] for r in rows if r["kind"] == "device"),
    }


def write(html: str, out: Path) -> Path:
    path = out / "opsg-summary.html"
    path.write_text(html, encoding="utf-8")
    return path
