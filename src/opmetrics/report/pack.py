"""Build the report pack for a period from stored results: HTML page, datafiles, provenance.

Reads only result tables and provenance from the store (never recomputes a figure), so the
page, the CSVs and the JSON always show the same numbers.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
from jinja2 import Environment, PackageLoader, select_autoescape

from opmetrics.engine.store import Store
from opmetrics.ingest.load import DUPLICATE_DETAIL
from opmetrics.measures.availability import display_pct
from opmetrics.measures.operations import working_day_after
from opmetrics.measures.records import month_bounds
from opmetrics.measures.run import latest_run
from opmetrics.methodology import Methodology
from opmetrics.report.charts import availability_svg, daily_rsvp_svg

CSV_COLUMNS = [
    "period",
    "rate",
    "day",
    "level",
    "process_id",
    "srv",
    "segment",
    "volume",
    "failures",
    "success_pct",
    "failure_pct",
    "no_response",
    "responses",
    "rtt_count",
    "rtt_mean_s",
    "rtt_median_s",
    "rtt_min_s",
    "rtt_max_s",
    "within_trt",
    "trt_denominator",
    "within_trt_pct",
]
# Appended to every datafile row so a CSV separated from its pack still says where it came from.
PROVENANCE_COLUMNS = ["methodology_version", "methodology_fingerprint", "input_fingerprint", "run_id"]


def _duration(minutes: float) -> str:
    h, mnt = divmod(int(round(minutes)), 60)
    return f"{h}h{mnt:02d}m" if h else f"{mnt}m"


def major_incidents(store: Store, period: str) -> list[dict[str, Any]]:
    """Category 1 and 2 incidents raised in the period, with their outage duration if known."""
    first, last = month_bounds(period)
    rows = store.rows(
        """
        WITH o AS (SELECT incident_id, max(epoch(end_at) - epoch(start_at)) AS secs
                   FROM outages WHERE incident_id IS NOT NULL GROUP BY incident_id)
        SELECT i.incident_id, i.category, coalesce(i.region, 'all regions') AS region,
               i.report_date, i.summary,
               coalesce(o.secs, epoch(i.resolved_at) - epoch(i.raised_at)) / 60 AS minutes
        FROM incidents i LEFT JOIN o USING (incident_id)
        WHERE i.category <= 2 AND i.report_date BETWEEN ? AND ?
        ORDER BY i.report_date""",
        [first, last],
    )
    for r in rows:
        r["day"] = r["report_date"].day
        dur = _duration(r["minutes"]) if r["minutes"] is not None else "open"
        r["label"] = f"{r['incident_id']} Cat {r['category']} {r['region']} {dur}"
    return rows


def _csv_value(v: Any) -> Any:
    if isinstance(v, float):
        return f"{v:.6g}" if abs(v) >= 1e-4 or v == 0 else f"{v:.3e}"
    return "" if v is None else v


OUTCOME_COLUMNS = [
    "period",
    "measure",
    "kind",
    "breakdown",
    "key1",
    "key2",
    "numerator",
    "denominator",
    "value",
    "unit",
    "status",
    "note",
]
SHOW_ROWS = 40  # outcome rows shown per measure in the HTML; the datafile has them all


def _cpm_groups(m: Methodology, cpm: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One table row per (CPM, key) with its segments side by side (CPM6A is in the process pages)."""
    groups: dict[tuple[str, str], dict[str, Any]] = {}
    for r in cpm:
        if r["cpm"] == "CPM6A":
            continue
        g = groups.setdefault(
            (r["cpm"], r["key"]),
            {"c": m.cpm(r["cpm"]), "key": r["key"], "by": {}, "credit": 0.0, "below": 0, "notes": set()},
        )
        g["by"][r["segment"]] = r
        g["credit"] += r["service_credit_gbp"] or 0.0
        g["below"] = max(g["below"], r["months_below_target"] or 0)
        if r["note"]:
            g["notes"].add(r["note"])
    return list(groups.values())


def _measure_sections(m: Methodology, outcomes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for md in m.measures:
        rows = [r for r in outcomes if r["measure"] == md.id]
        out.append({"d": md, "rows": rows[:SHOW_ROWS], "more": max(0, len(rows) - SHOW_ROWS)})
    return out


def _availability_view(store: Store, m: Methodology, period: str, run_id: str) -> dict[str, Any]:
    """Table 13 per Service, the daily chart and the business-process view."""
    try:
        rows = store.rows("SELECT * FROM availability WHERE period = ? AND run_id = ?", [period, run_id])
    except duckdb.CatalogException:
        return {}
    if not rows:
        return {}
    services = []
    regions = [*m.segments.smets2_regions, m.segments.smets1]
    series: dict[str, list[tuple[int, float | None]]] = {}
    for svc in m.availability.services:
        mine = [r for r in rows if r["subject"] == svc.name]
        month = {(r["region"], r["band"]): r for r in mine if r["view"] == "service"}
        series[svc.name] = sorted(
            (r["day"].day, r["pct"]) for r in mine if r["view"] == "daily" and r["region"] == "All"
        )
        if svc.regional and not series[svc.name]:
            # Regional Services have daily rows per region: show the worst region each day.
            by_day: dict[int, float] = {}
            for r in mine:
                if r["view"] == "daily" and r["pct"] is not None:
                    by_day[r["day"].day] = min(by_day.get(r["day"].day, 100.0), r["pct"])
            series[svc.name] = sorted(by_day.items())
        services.append({"svc": svc, "month": month, "head": month.get(("All", "all"))})
    procs = []
    for p in m.processes:
        mine = {r["region"]: r for r in rows if r["view"] == "process" and r["subject"] == p.id}
        if mine:
            procs.append({"p": p, "by": mine, "head": mine.get("All")})
    overall = next((r for r in rows if r["view"] == "overall"), None)
    chart = availability_svg(
        series, m.availability.target, m.availability.minimum, "Service availability by day (worst region)"
    )
    return {"services": services, "processes": procs, "overall": overall, "chart": chart, "regions": regions}


def build_pack(
    store: Store,
    m: Methodology,
    period: str,
    out_dir: str | Path,
    on_step: Callable[[str], None] | None = None,
) -> Path:
    """Write OUT/index.html, OUT/datafiles/*.csv and OUT/figures.json; return the HTML path."""
    step = on_step or (lambda _s: None)
    run = latest_run(store, period)
    if run is None:
        raise ValueError(f"no computed results for {period}; run `opmetrics compute --period {period}`")
    if run.methodology_fingerprint != m.fingerprint:
        raise ValueError(
            f"results for {period} were computed with methodology {run.methodology_version} "
            f"({run.methodology_fingerprint[:12]}), not the one given ({m.version}, "
            f"{m.fingerprint[:12]}); run `opmetrics compute` again"
        )
    out = Path(out_dir)
    (out / "datafiles").mkdir(parents=True, exist_ok=True)
    rsvp = store.rows("SELECT * FROM rsvp WHERE period = ? AND run_id = ?", [period, run.run_id])
    cpm = store.rows("SELECT * FROM cpm WHERE period = ? AND run_id = ? ORDER BY rowid", [period, run.run_id])
    outcomes = store.rows(
        "SELECT * FROM outcomes WHERE period = ? AND run_id = ? ORDER BY rowid", [period, run.run_id]
    )
    incidents = major_incidents(store, period)
    seg_cols = m.segments.all
    availability = _availability_view(store, m, period, run.run_id)
    prov = [getattr(run, c) for c in PROVENANCE_COLUMNS]

    processes = []
    for p in m.processes:
        step(f"Process {p.name}")
        mine = [r for r in rsvp if r["scope"] == "process" and r["key"] == p.id]
        month = {r["segment"]: r for r in mine if r["rate"] == "month"}
        daily = sorted(
            (r for r in mine if r["rate"] == "day" and r["segment"] == "All"), key=lambda r: r["day"]
        )
        srv_rows = [
            r
            for r in rsvp
            if r["scope"] == "srv" and r["rate"] == "month" and r["segment"] == "All" and r["key"] in p.srvs
        ]
        srv_rows.sort(key=lambda r: p.srvs.index(r["key"]))
        cpm6a = {r["segment"]: r for r in cpm if r["cpm"] == "CPM6A" and r["key"] == p.id}
        total = month.get("All")
        chart = (
            daily_rsvp_svg(
                daily,
                total["rtt_mean_s"] if total else None,
                f"{p.name}: daily RSVP, all segments",
                incidents,
            )
            if daily
            else None
        )
        processes.append(
            {
                "p": p,
                "month": month,
                "srvs": srv_rows,
                "cpm6a": cpm6a,
                "chart": chart,
                "segments": [s for s in seg_cols if p.smets1 or s != m.segments.smets1],
            }
        )
        with (out / "datafiles" / f"{p.id}.csv").open("w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh)
            w.writerow(CSV_COLUMNS + PROVENANCE_COLUMNS)
            rows = mine + [r for r in rsvp if r["scope"] == "srv" and r["key"] in p.srvs]
            for r in sorted(
                rows,
                key=lambda r: (
                    r["scope"] != "process",
                    r["rate"] != "month",
                    r["key"],
                    r["day"] or dt.date.min,
                    r["segment"],
                ),
            ):
                rec = {
                    **r,
                    "level": r["scope"],
                    "process_id": p.id,
                    "srv": r["key"] if r["scope"] == "srv" else "",
                }
                w.writerow([_csv_value(rec[c]) for c in CSV_COLUMNS] + prov)

    step("CPM table and provenance")
    with (out / "datafiles" / "cpm.csv").open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        cols = [
            "period",
            "cpm",
            "key",
            "segment",
            "numerator",
            "denominator",
            "pct",
            "target",
            "minimum",
            "status",
            "instance",
            "months_below_target",
            "service_credit_gbp",
            "note",
        ]
        w.writerow(cols + PROVENANCE_COLUMNS)
        for r in cpm:
            w.writerow([_csv_value(r[c]) for c in cols] + prov)
    with (out / "datafiles" / "outcomes.csv").open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        cols = [c for c in OUTCOME_COLUMNS]
        w.writerow(cols + PROVENANCE_COLUMNS)
        for r in outcomes:
            w.writerow([_csv_value(r[c]) for c in cols] + prov)
    avail_rows = store.rows(
        "SELECT * EXCLUDE (run_id) FROM availability WHERE period = ? AND run_id = ? ORDER BY rowid",
        [period, run.run_id],
    )
    with (out / "datafiles" / "availability.csv").open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        cols = [c for c in (avail_rows[0] if avail_rows else {}) if c != "period"]
        w.writerow(["period", *cols] + PROVENANCE_COLUMNS)
        for r in avail_rows:
            w.writerow([period, *[_csv_value(r[c]) for c in cols]] + prov)
    quality = store.rows(
        """
        SELECT table_name, count(*) AS files, sum(rows_read) AS rows_read,
               sum(rows_accepted) AS accepted, sum(rows_quarantined) AS quarantined
        FROM loaded_files GROUP BY ALL ORDER BY table_name""",
        [],
    )
    reasons = store.rows(
        """
        SELECT table_name, coalesce(field, '(row)') AS field,
               regexp_replace(reason, ?, '') AS reason,
               count(*) AS n
        FROM quarantine GROUP BY ALL ORDER BY n DESC, table_name LIMIT 20""",
        [DUPLICATE_DETAIL],
    )
    provenance = {k: (v.isoformat() if isinstance(v, dt.datetime) else v) for k, v in run.__dict__.items()}
    figures = {
        "provenance": provenance,
        "cpm": cpm,
        "rsvp": rsvp,
        "outcomes": outcomes,
        "availability": avail_rows,
    }
    (out / "figures.json").write_text(json.dumps(figures, default=str, indent=1))

    env = Environment(loader=PackageLoader("opmetrics.report"), autoescape=select_autoescape())
    env.filters["pct"] = lambda v: "–" if v is None else f"{v:.2f}%"
    env.filters["apct"] = display_pct
    env.filters["hours"] = lambda v: "–" if v is None else f"{v / 60:.2f} h"
    env.filters["secs"] = lambda v: "–" if v is None else f"{v:.1f}"
    env.filters["num"] = lambda v: "–" if v is None else f"{int(v):,}"
    env.filters["rag"] = lambda s: {
        "target met": "green",
        "below target": "amber",
        "below minimum": "red",
    }.get(s, "grey")
    first, last = month_bounds(period)
    sub = m.availability.holiday_subdivision
    produced = dt.datetime.now(dt.UTC).replace(tzinfo=None, microsecond=0)
    html = env.get_template("pack.html.j2").render(
        produced=produced.strftime("%Y-%m-%d %H:%M"),
        produced_date=produced.date(),
        due=working_day_after(last, m.timeliness.due_working_days, sub),
        sec_due=working_day_after(last, m.timeliness.sec_due_working_days, sub),
        period=period,
        period_label=first.strftime("%B %Y"),
        first=first,
        last=last,
        m=m,
        run=provenance,
        processes=processes,
        cpm=cpm,
        cpm_groups=_cpm_groups(m, cpm),
        measures=_measure_sections(m, outcomes),
        availability=availability,
        incidents=incidents,
        quality=quality,
        reasons=reasons,
        seg_cols=seg_cols,
    )
    page = out / "index.html"
    page.write_text(html, encoding="utf-8")
    return page
