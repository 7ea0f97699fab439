"""Build the PMR pack for a period from stored results: HTML, PDF, CSV/XLSX datafiles, JSON.

One template set renders both HTML and PDF. The pack reads only stored results (never
recomputes a figure), checks its invariants before writing anything, anonymises SEC Parties,
merges the period's commentary, and records each issue so a re-issue says what changed.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import duckdb
from jinja2 import Environment, PackageLoader, select_autoescape

from opmetrics import format as fmt
from opmetrics.engine import pmel
from opmetrics.engine.store import Store
from opmetrics.measures.operations import working_day_after
from opmetrics.measures.records import month_bounds
from opmetrics.measures.run import PER_RUN, require_current
from opmetrics.methodology import Methodology
from opmetrics.methodology.status import MISSED, Status
from opmetrics.report import datafiles as D
from opmetrics.report.anonymise import Anonymiser, league_key, league_tables, party_roles
from opmetrics.report.charts import availability_svg, daily_rsvp_svg, trend_svg
from opmetrics.report.commentary import commentary_keys, load_commentary
from opmetrics.report.events import incident_views, region_views
from opmetrics.report.figures import Figures, load_figures, major_events
from opmetrics.report.invariants import check_all
from opmetrics.report.issues import change_summary_markdown, changes_in_words, plan_issue, record_issue
from opmetrics.report.opr import opr_view

KEY_EVENTS = 5  # outages and major incidents named in the introduction, the biggest first
SHOW_CHANGES = 60  # changed figures listed inside the pack; CHANGES.md lists them all
# Outcome rows shown per measure in the HTML and PDF: its headline breakdowns, never its daily
# rows (those are in the charts and datafiles/outcomes.csv, which has every row).
SHOW_ROWS = 12
PACK_STEPS = 6  # progress steps reported through `on_step`
OPS = "service_operations"
HIDDEN_PROCESSES = {OPS, "league", "supplementary"}  # shown in their own sections


@dataclass
class PackResult:
    html: Path
    pdf: Path | None
    version: int
    changed: int
    warnings: list[str] = field(default_factory=list)


RAG: dict[str, str] = {Status.TARGET_MET: "green", Status.BELOW_TARGET: "amber", Status.BELOW_MINIMUM: "red"}


def _rag(status: str | None) -> str:
    return RAG.get(status or "", "grey")


def _env() -> Environment:
    env = Environment(loader=PackageLoader("opmetrics.report"), autoescape=select_autoescape())
    # One formatter for every figure (src/opmetrics/format.py): percentages truncated, never rounded.
    env.filters["pct"] = fmt.pct
    env.filters["pct_of"] = fmt.pct_of
    env.filters["hours"] = fmt.hours
    env.filters["secs"] = fmt.seconds
    env.filters["num"] = fmt.count
    env.filters["delta"] = fmt.points
    env.filters["measure_value"] = fmt.measure_value
    env.filters["rag"] = _rag
    return env


# --- anonymisation --------------------------------------------------------------------------


def anonymise_outcomes(rows: list[dict[str, Any]], anon: Anonymiser) -> list[dict[str, Any]]:
    """Other parties' ids become their anonymous names; their counts are withheld (a volume can
    reveal who a party is), keeping only their percentages, at the printed precision and not
    below the minimum cell (`Anonymiser.rate`), so the counts cannot be worked back."""
    out = []
    for r in rows:
        if r["measure"] == "LT1":
            continue  # shown as league tables, ranked, without volumes
        r = dict(r)
        other = anon.is_other(r["key1"]) or anon.is_other(r["key2"])
        for k in ("key1", "key2", "note"):
            r[k] = anon.scrub(r[k])
        if other:
            records = r["denominator"]
            r["numerator"] = r["denominator"] = None
            if r["unit"] not in ("%", "% of predicted", "% deviation"):
                r["value"] = None
                r["note"] = (r["note"] + "; " if r["note"] else "") + "volume withheld (anonymised party)"
            else:
                r["value"] = anon.rate(r["value"], records)
                if r["value"] is None:
                    why = f"fewer than {anon.withheld_below} records: withheld (anonymised party)"
                    r["note"] = (r["note"] + "; " if r["note"] else "") + why
        out.append(r)
    return out


# --- view model -----------------------------------------------------------------------------


def _executive_summary(f: Figures, m: Methodology) -> dict[str, Any]:
    cpm6a_target = m.cpm("CPM6A").target
    missed = [r for r in f.cpm if r["instance"] and r["status"] in MISSED]
    srvs_missed = [
        r
        for r in f.rsvp
        if r["scope"] == "srv"
        and r["rate"] == "month"
        and r["segment"] == "All"
        and r["within_trt_pct"] is not None
        and r["within_trt_pct"] < cpm6a_target
    ]
    overall = next((r for r in f.availability if r["view"] == "overall"), None)
    prev_overall = f.previous.get("availability", {}).get(
        ("overall", "Overall Service Availability", "All", "all")
    )
    mom = []
    for r in f.cpm:
        if r["segment"] != "All" or not r["instance"]:
            continue
        p = f.previous.get("cpm", {}).get((r["cpm"], r["key"], r["segment"]))
        mom.append(
            {
                "cpm": r["cpm"],
                "key": r["key"],
                "pct": r["pct"],
                "previous": p["pct"] if p else None,
                "delta": (r["pct"] - p["pct"])
                if p and p["pct"] is not None and r["pct"] is not None
                else None,
                "status": r["status"],
            }
        )
    return {
        "overall_pct": overall["pct"] if overall else None,
        "overall_previous": prev_overall["pct"] if prev_overall else None,
        "missed": missed,
        "srvs_missed": srvs_missed,
        "srv_target": cpm6a_target,
        "mom": mom,
        "has_previous": bool(f.previous.get("cpm")),
        "sources": f.previous.get("sources", []),
        "heat": _heat_map(f, m),
    }


def _heat_map(f: Figures, m: Methodology) -> dict[str, Any]:
    """Measures x regions, each cell RAG against target and minimum."""
    cols = [*m.segments.all, "All"]
    rows: list[dict[str, Any]] = []
    by: dict[tuple[str, str], dict[str, dict]] = {}
    for r in f.cpm:
        by.setdefault((r["cpm"], r["key"]), {})[r["segment"]] = r
    for (cid, key), seg in by.items():
        if not any(s in seg for s in m.segments.smets2_regions):
            continue  # not split by region (e.g. incidents by SMETS generation)
        if cid == "CPM6A":
            label = f"CPM6A {m.process(key).name}"
        elif cid == "CPM6":
            label = f"CPM6 {key}"
        else:
            label = cid
        rows.append({"label": label, "cells": [seg.get(c) for c in cols]})
    return {"cols": cols, "rows": rows}


def _process_sections(
    f: Figures, m: Methodology, outcomes: list[dict[str, Any]], commentary: dict[str, str]
) -> list[dict[str, Any]]:
    out = []
    cpm6a = m.cpm("CPM6A")
    for p in m.processes:
        mine = [r for r in f.rsvp if r["scope"] == "process" and r["key"] == p.id]
        month = {r["segment"]: r for r in mine if r["rate"] == "month"}
        daily = sorted(
            (r for r in mine if r["rate"] == "day" and r["segment"] == "All"), key=lambda r: r["day"]
        )
        srv_rows = [
            r
            for r in f.rsvp
            if r["scope"] == "srv" and r["rate"] == "month" and r["segment"] == "All" and r["key"] in p.srvs
        ]
        srv_rows.sort(key=lambda r: p.srvs.index(r["key"]))
        c6a = {r["segment"]: r for r in f.cpm if r["cpm"] == "CPM6A" and r["key"] == p.id}
        segments = [s for s in m.segments.all if p.smets1 or s != m.segments.smets1]
        measures = [
            {
                "region": s,
                "id": "CPM6A",
                "name": "Service Responses within TRT",
                "target": c6a[s]["target"],
                "minimum": c6a[s]["minimum"],
                "actual": c6a[s]["pct"],
                "status": c6a[s]["status"],
            }
            for s in [*segments, "All"]
            if s in c6a
        ]
        for md in m.measures:
            if md.process != p.id or md.kind != "M":
                continue
            for r in outcomes:
                if r["measure"] == md.id and r["breakdown"] in ("all", "region") and r["unit"] == "%":
                    measures.append(
                        {
                            "region": r["key1"],
                            "id": md.id,
                            "name": md.definition.split(". ")[0],
                            "target": md.target,
                            "minimum": md.minimum,
                            "actual": r["value"],
                            "status": r["status"],
                        }
                    )
        attempts = {r["key1"]: r for r in outcomes if r["measure"] == "ATT1" and r["breakdown"] == p.id}
        modes = [r for r in f.modes if r["scope"] == "process" and r["key"] == p.id and r["segment"] == "All"]
        devices = [
            r for r in f.devices if r["scope"] == "process" and r["key"] == p.id and r["segment"] == "All"
        ]
        trend_pts = [
            (r["period"], r["success_pct"], r["within_trt_pct"]) for r in f.history if r["key"] == p.id
        ]
        total = month.get("All")
        missed = [r for r in c6a.values() if r["instance"] and r["status"] in MISSED]
        note = commentary.get(p.id) or (commentary.get("CPM6A") if missed else None)
        legs = [r for r in f.legs if r["process_id"] == p.id and r["breakdown"] in ("All", "region")]
        legs.sort(key=lambda r: (r["breakdown"] != "All", r["key"]))
        out.append(
            {
                "legs": legs,
                "p": p,
                "month": month,
                "srvs": srv_rows,
                "cpm6a": c6a,
                # The SMETS2 and All columns of CPM6A's row, on CPM6A's own basis.
                "cpm6a_numerator": cpm6a.numerator,
                "modes": modes,
                "devices": devices,
                "measures": measures,
                "attempts": attempts,
                "segments": segments,
                "chart": daily_rsvp_svg(
                    daily,
                    total["rtt_mean_s"] if total else None,
                    f"{p.name}: daily RSVP, all segments",
                    f.incidents,
                )
                if daily
                else None,
                "trend": trend_svg(
                    trend_pts,
                    cpm6a.target if cpm6a.processes is None or p.id in cpm6a.processes else None,
                    f"{p.name}: monthly trend",
                )
                if len(trend_pts) >= 2
                else None,
                "trend_months": len(trend_pts),
                "commentary": note,
                "outstanding": bool(missed) and not note,
            }
        )
    return out


def _availability_view(f: Figures, m: Methodology) -> dict[str, Any]:
    rows = f.availability
    if not rows:
        return {}
    services = []
    series: dict[str, list[tuple[int, float | None]]] = {}
    for svc in m.availability.services:
        mine = [r for r in rows if r["subject"] == svc.name]
        month = {(r["region"], r["band"]): r for r in mine if r["view"] == "service"}
        by_day: dict[int, float] = {}
        for r in mine:
            if r["view"] == "daily" and r["pct"] is not None:
                by_day[r["day"].day] = min(by_day.get(r["day"].day, 100.0), r["pct"])
        series[svc.name] = sorted(by_day.items())
        services.append({"svc": svc, "month": month, "head": month.get(("All", "all"))})
    procs = []
    for p in m.every_process:
        by_region = {r["region"]: r for r in rows if r["view"] == "process" and r["subject"] == p.id}
        if by_region:
            procs.append({"p": p, "by": by_region, "head": by_region.get("All")})
    return {
        "services": services,
        "processes": procs,
        "candidates": [r for r in f.outcomes if r["measure"] == "AV1.activity_gaps" and r["unit"] == "%"],
        "overall": next((r for r in rows if r["view"] == "overall"), None),
        "chart": availability_svg(
            series,
            m.availability.target,
            m.availability.minimum,
            "Service availability by day (worst region)",
        ),
        "regions": [*m.segments.smets2_regions, m.segments.smets1],
    }


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


def _credits(m: Methodology, cpm: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for c in m.cpms:
        mine = [r for r in cpm if r["cpm"] == c.id and r["instance"]]
        out.append(
            {
                "c": c,
                "weight": m.service_credits.weights.get(c.id, 0.0),
                "instances": len(mine),
                "below": sum(1 for r in mine if r["status"] in MISSED),
                "credit": sum(r["service_credit_gbp"] or 0.0 for r in mine),
            }
        )
    return out


# --- the build ------------------------------------------------------------------------------


def build_pack(
    store: Store,
    m: Methodology,
    period: str,
    out_dir: str | Path,
    on_step: Callable[[str], None] | None = None,
    party: str | None = None,
    commentary_file: Path | None = None,
    pdf: bool = True,
    confidential: bool = False,
) -> PackResult:
    """Write the pack into `out_dir`: index.html, pmr-<period>.pdf, datafiles/, figures.json."""
    step = on_step or (lambda _s: None)
    step("Reading stored results")
    f = load_figures(store, m, period)
    require_current(store, f.run)
    roles = party_roles(store, period, f.run.run_id)
    anon = Anonymiser(league_key(store), period, roles, own=party, min_cell=m.publication.min_cell)
    if confidential and party:
        raise ValueError("the confidential edition is for the DCC and the SEC Panel: not with --party")
    edition = "confidential" if confidential else f"party:{party}" if party else "public"
    if not confidential:  # throttling report: 001 l.5840 "will not be made public"
        f = replace(f, outcomes=[r for r in f.outcomes if not m.publication.confidential(r["measure"])])
    outcomes = anonymise_outcomes(f.outcomes, anon)
    commentary = load_commentary(commentary_file)

    step("Checking invariants")
    summary = _executive_summary(f, m)
    register_ids = {e["exception_id"] for e in pmel.listing(store)}
    check_all(f, m, summary, f.outages, f.run.exclusions(), register_ids)

    warnings = []
    names = {p.id: p.name for p in m.every_process}
    for r in summary["missed"]:
        keys = commentary_keys(r["cpm"], r["key"])
        r["commentary"] = next((commentary[k] for k in keys if k in commentary), None)
        if r["commentary"] is None:
            scope = "" if r["key"] == "all" else " " + names.get(r["key"], r["key"])
            warnings.append(f"commentary outstanding: {r['cpm']}{scope} {r['segment']} ({r['status']})")

    step("Datafiles")
    final = Path(out_dir)
    final.parent.mkdir(parents=True, exist_ok=True)
    # Built in a work folder beside the destination and moved into place only once every check
    # has passed (issue 32, item 5): a refused pack leaves no file and takes no issue number.
    out = Path(tempfile.mkdtemp(prefix=f".{final.name}.building-", dir=final.parent))
    try:
        store.con.execute("BEGIN TRANSACTION")
        res = _write_pack(store, m, f, out, final, step, anon, edition, party, outcomes, commentary,
                          summary, warnings, pdf)  # fmt: skip
        store.con.execute("COMMIT")
    except BaseException:
        store.con.execute("ROLLBACK")
        shutil.rmtree(out, ignore_errors=True)
        raise
    _move_into_place(out, final)
    return res


def _move_into_place(work: Path, final: Path) -> None:
    """Move every file of the work folder over the destination's (earlier issues' archives
    stay); a CHANGES.md left from an earlier re-issue goes when this issue has none."""
    final.mkdir(parents=True, exist_ok=True)
    if not (work / "CHANGES.md").exists() and (final / "CHANGES.md").exists():
        (final / "CHANGES.md").unlink()
    for src in sorted(work.rglob("*")):
        if src.is_file():
            dst = final / src.relative_to(work)
            dst.parent.mkdir(parents=True, exist_ok=True)
            os.replace(src, dst)
    shutil.rmtree(work, ignore_errors=True)


def _write_pack(
    store: Store,
    m: Methodology,
    f: Figures,
    out: Path,
    final: Path,
    step: Callable[[str], None],
    anon: Anonymiser,
    edition: str,
    party: str | None,
    outcomes: list[dict[str, Any]],
    commentary: dict[str, str],
    summary: dict[str, Any],
    warnings: list[str],
    pdf: bool,
) -> PackResult:
    period = f.period
    (out / "datafiles").mkdir(parents=True, exist_ok=True)
    run = f.run
    prov = [getattr(run, c) for c in D.PROVENANCE_COLUMNS]
    for p in m.processes:
        rows = [
            r
            for r in f.rsvp
            if (r["scope"] == "process" and r["key"] == p.id) or (r["scope"] == "srv" and r["key"] in p.srvs)
        ]
        rows.sort(
            key=lambda r: (
                r["scope"] != "process",
                r["rate"] != "month",
                r["key"],
                r["day"] or dt.date.min,
                r["segment"],
            )
        )
        recs = [
            {**r, "level": r["scope"], "process_id": p.id, "srv": r["key"] if r["scope"] == "srv" else ""}
            for r in rows
        ]
        D.write_table(out / "datafiles" / p.id, D.RSVP_COLUMNS, recs, prov)
    D.write_table(out / "datafiles" / "modes", D.MODE_COLUMNS, f.modes, prov)
    D.write_table(out / "datafiles" / "device_types", D.DEVICE_COLUMNS, f.devices, prov)
    D.write_table(out / "datafiles" / "cpm", D.CPM_COLUMNS, f.cpm, prov)
    D.write_table(out / "datafiles" / "outcomes", D.OUTCOME_COLUMNS, outcomes, prov)
    D.write_table(out / "datafiles" / "availability", D.AVAILABILITY_COLUMNS, f.availability, prov)
    D.write_table(out / "datafiles" / "legs", D.LEGS_COLUMNS, f.legs, prov)
    opr = opr_view(store, m, period)
    opr_rows = [
        {"period": v["period"], "cpm": r["cpm"], "key": r["key"], "segment": r["segment"], "pct": v["pct"],
         "reported": v["reported"], "score": v["score"]}
        for r in opr["rows"]
        for v in r["values"]
    ]  # fmt: skip
    D.write_table(out / "datafiles" / "opr", D.OPR_COLUMNS, opr_rows, prov)
    names = {p.id: p.name for p in m.processes}
    league = league_tables(f.outcomes, anon, m.league, names)
    league_rows = [
        {
            "period": period,
            "process_id": t["process_id"],
            "rank": e["rank"],
            "party": e["party"],
            "success_pct": e["pct"],
            "industry_pct": t["industry_pct"],
            "best_pct": t["best_pct"],
        }
        for t in league
        for e in t["entries"]
    ]
    D.write_table(out / "datafiles" / "league", D.LEAGUE_COLUMNS, league_rows, prov)

    step("Recording the issue")
    provenance = {k: v for k, v in run.__dict__.items() if k not in PER_RUN}
    figures = {
        "provenance": provenance,
        "edition": edition,
        "rsvp": f.rsvp,
        "cpm": f.cpm,
        "outcomes": outcomes,
        "availability": f.availability,
        "league": league_rows,
        "legs": f.legs,
    }
    figures = D.stable(figures)
    text = D.canonical_json(figures)
    issue = plan_issue(store, period, edition, text)
    (out / "figures.json").write_text(text, encoding="utf-8")
    if issue.reissued and issue.previous_figures:
        arch = out / "archive" / f"issue-{issue.previous_version}"
        arch.mkdir(parents=True, exist_ok=True)
        (arch / "figures.json").write_text(issue.previous_figures, encoding="utf-8")
        (out / "CHANGES.md").write_text(change_summary_markdown(period, issue, m), encoding="utf-8")

    step("Rendering HTML")
    sub = m.availability.holiday_subdivision
    produced = issue.issued_at
    due = working_day_after(f.last, m.timeliness.due_working_days, sub)
    processes = _process_sections(f, m, outcomes, commentary)
    ctx = {
        "period": period,
        "period_label": f.first.strftime("%B %Y"),
        "first": f.first,
        "last": f.last,
        "m": m,
        "run": {**provenance, "computed_at": run.computed_at},
        "exclusions": run.exclusions(),
        "edition": edition,
        "party": party,
        "issue": issue,
        "changes": changes_in_words(issue, m)[:SHOW_CHANGES],
        "names": {p.id: p.name for p in m.every_process},
        "key_events": major_events(f, m.report_timezone)[:KEY_EVENTS],
        "produced": produced.strftime("%Y-%m-%d %H:%M"),
        "produced_date": produced.date(),
        "due": due,
        "sec_due": working_day_after(f.last, m.timeliness.sec_due_working_days, sub),
        "summary": summary,
        "processes": processes,
        "cpm": f.cpm,
        "cpm_groups": _cpm_groups(m, f.cpm),
        "credits": _credits(m, f.cpm),
        "measures": [
            {
                "d": md,
                "rows": shown,
                "more": len(rows) - len(shown),
                "withheld": edition != "confidential" and m.publication.confidential(md.id),
            }
            for md in m.measures
            for rows in [[r for r in outcomes if r["measure"] == md.id]]
            for shown in [[r for r in rows if not r["breakdown"].startswith("day")][:SHOW_ROWS]]
            if md.id != "LT1"
        ],
        "hidden_processes": HIDDEN_PROCESSES,
        "availability": _availability_view(f, m),
        "league": league,
        "diagnostics": _diagnostics(store, m, period, run.run_id, party),
        "benchmarks": _benchmarks(store, period, run.run_id, party),
        "opr": opr,
        "min_volume": m.league.min_volume,
        "incidents": f.incidents,
        "incident_views": incident_views(f, m),
        "region_views": region_views(f, m),
        "quality": f.quality,
        "reasons": f.reasons,
        "seg_cols": m.segments.all,
        "commentary": commentary,
        "warnings": warnings,
    }
    env = _env()
    html = env.get_template("pack.html.j2").render(**ctx, print_mode=False)
    page = out / "index.html"
    page.write_text(html, encoding="utf-8")
    pdf_path = None
    if pdf:
        step("Rendering PDF")
        from opmetrics.report.pdf import write_pdf

        suffix = f"-{party}" if party else ""
        pdf_path = out / f"pmr-{period}{suffix}.pdf"
        write_pdf(env.get_template("pack.html.j2").render(**ctx, print_mode=True), pdf_path, out)
    else:
        step("PDF skipped")
    if not party:
        _summary_paper(store, m, f, anon, out, env, pdf, issue.version)
    _check_no_other_party(out, anon)
    record_issue(store, period, edition, issue, run.run_id, text)
    return PackResult(final / page.name, final / pdf_path.name if pdf_path else None, issue.version,
                      len(issue.changes), warnings)  # fmt: skip


def _summary_paper(
    store: Store,
    m: Methodology,
    f: Figures,
    anon: Anonymiser,
    out: Path,
    env: Environment,
    pdf: bool,
    version: int,
) -> None:
    """The OPSG summary paper beside the public pack: opsg-summary.html (and .pdf)."""
    from opmetrics.measures.availability import previous_period
    from opmetrics.report import summary_paper

    prev = previous_period(f.period)
    ctx = {
        "paper": summary_paper.build(store, m, f, anon, prev),
        "period_label": f.first.strftime("%B %Y"),
        "prev_label": month_bounds(prev)[0].strftime("%B %Y"),
        "run": f.run,
        "m": m,
        "version": version,
    }
    html = env.get_template("summary.html.j2").render(**ctx)
    path = summary_paper.write(html, out)
    if pdf:
        from opmetrics.report.pdf import write_pdf

        write_pdf(html, path.with_suffix(".pdf"), out)


def _benchmarks(store: Store, period: str, run_id: str, party: str | None) -> list[dict]:
    """A party edition's position against the industry (all processes): every region, and the
    device sets carrying most of its requests."""
    if not party:
        return []
    try:
        rows = store.rows(
            "SELECT * FROM benchmarks WHERE period = ? AND run_id = ? AND party_id = ? "
            "AND process_id = 'all' AND dimension IN ('region', 'device set') "
            "ORDER BY dimension DESC, party_volume DESC",
            [period, run_id, party],
        )
    except duckdb.CatalogException:
        return []
    regions = [r for r in rows if r["dimension"] == "region"]
    sets = [r for r in rows if r["dimension"] == "device set"][:8]
    return regions + sets


def _diagnostics(store: Store, m: Methodology, period: str, run_id: str, party: str | None) -> list[dict]:
    """A party edition's 'what explains your gap': per process (all first), its explanations."""
    if not party:
        return []
    try:
        rows = store.rows(
            "SELECT * FROM diagnostics WHERE period = ? AND run_id = ? AND party_id = ? ORDER BY rank",
            [period, run_id, party],
        )
    except duckdb.CatalogException:
        return []
    names = {"all": "All business processes", **{p.id: p.name for p in m.processes}}
    out = []
    for pid in ["all", *(p.id for p in m.processes)]:
        mine = [r for r in rows if r["process_id"] == pid]
        if mine:
            top = [r for r in mine if r["rank"] > 0][:3]
            out.append({"process": names[pid], "head": mine[0], "rows": top})
    return out


def _check_no_other_party(out: Path, anon: Anonymiser) -> None:
    """No pack names a party other than its own edition's, in any file or file name (ids of
    fewer than 3 characters are too common as text to check this way)."""
    others = [p for p in anon.names if p != anon.own and len(p) >= 3]
    for path in out.rglob("*"):
        if any(o in path.name for o in others):
            raise ValueError(f"{path}: file name names another party")
        if path.suffix in (".html", ".csv", ".json", ".md"):
            text = path.read_text(encoding="utf-8")
            hit = next((o for o in others if o in text), None)
            if hit:
                raise ValueError(f"{path}: names another party ({hit}); the edition was not published")
