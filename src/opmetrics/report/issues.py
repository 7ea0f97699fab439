"""Pack versions and re-issue (issue 6, item 8; 001 l.8601 "PMR Open Issues": figures re-issued without a
record of what changed).

Every pack written is recorded in the `pack_issues` table with its figures. Writing the same
figures again keeps the version; different figures make a new version, keep the earlier ones
in the table, and produce a change summary listing every figure that changed and why.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from opmetrics import format as fmt
from opmetrics.engine.store import Store
from opmetrics.methodology import Methodology

_DDL = """
CREATE TABLE IF NOT EXISTS pack_issues (
    period VARCHAR NOT NULL,
    edition VARCHAR NOT NULL,
    version INTEGER NOT NULL,
    issued_at TIMESTAMP NOT NULL,
    run_id VARCHAR NOT NULL,
    figures_sha256 VARCHAR NOT NULL,
    figures_json VARCHAR NOT NULL,
    PRIMARY KEY (period, edition, version)
)"""

# Provenance fields whose change explains changed figures, in the words of the change summary.
WHY = {
    "methodology_version": "methodology version changed",
    "methodology_fingerprint": "methodology rules changed",
    "input_fingerprint": "input data changed (late, corrected or additional records)",
    "pmel_version": "exceptions register (PMEL) changed",
    "pmel_applied": "different exceptions applied",
    "as_of": "report time (data cut-off) changed",
    "opmetrics_version": "opmetrics version changed",
}


@dataclass
class Issue:
    version: int
    issued_at: dt.datetime
    reissued: bool
    previous_version: int | None
    changes: list[dict[str, Any]]
    reasons: list[str]
    previous_figures: str | None


# Each figure table's identifying columns, in the order a reader names a figure by.
KEYS = {
    "rsvp": ("scope", "key", "rate", "day", "segment"),
    "cpm": ("cpm", "key", "segment"),
    "outcomes": ("measure", "breakdown", "key1", "key2"),
    "availability": ("view", "subject", "region", "band", "day"),
    "league": ("process_id", "party"),
    "legs": ("process_id", "breakdown", "key"),
}
_NOT_FIGURES = ("period", "note", "run_id", "kind", "unit")


def _flatten(figures: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """figure key -> {table, keys, field, value} for every numeric or status figure in the pack."""
    out: dict[str, dict[str, Any]] = {}
    for table, cols in KEYS.items():
        for r in figures.get(table, []):
            keys = {c: r.get(c) for c in cols}
            k = " / ".join(str(r.get(c) or "") for c in cols).rstrip(" /")
            for fld, v in r.items():
                if fld in cols or fld in _NOT_FIGURES:
                    continue
                out[f"{table}: {k}: {fld}"] = {"table": table, "keys": keys, "field": fld, "value": v}
    return out


def _compare(old_text: str, new_text: str) -> tuple[list[dict[str, Any]], list[str]]:
    """Changed figures and the provenance reasons, both sides read from their canonical JSON
    (so a report time compares as the same text on both sides, never a string with a datetime)."""
    old, new = json.loads(old_text), json.loads(new_text)
    before, after = _flatten(old), _flatten(new)
    changes = []
    for k in sorted(set(before) | set(after)):
        b, a = before.get(k), after.get(k)
        if (b or {}).get("value") != (a or {}).get("value"):
            ref = a or b
            assert ref is not None
            changes.append(
                {
                    "figure": k,
                    "table": ref["table"],
                    "keys": ref["keys"],
                    "field": ref["field"],
                    "previous": b["value"] if b else None,
                    "now": a["value"] if a else None,
                }
            )
    po, pn = old.get("provenance", {}), new.get("provenance", {})
    reasons = [why for fld, why in WHY.items() if po.get(fld) != pn.get(fld)]
    if not reasons:
        reasons = ["presentation or league anonymisation changed; no input or rule changed"]
    return changes, reasons


def _issues(store: Store, period: str, edition: str) -> list[dict[str, Any]]:
    store.con.execute(_DDL)
    return store.rows(
        "SELECT * FROM pack_issues WHERE period = ? AND edition = ? ORDER BY version DESC LIMIT 2",
        [period, edition],
    )


def plan_issue(store: Store, period: str, edition: str, text: str) -> Issue:
    """The issue these figures would be, without recording it: the same figures as the last
    issue keep its number and time (and its change list against the issue before); different
    figures are the next number, compared with the last. `record_issue` records it once the
    pack has passed its checks, so a refused pack takes no number."""
    sha = hashlib.sha256(text.encode()).hexdigest()
    last = _issues(store, period, edition)
    if last and last[0]["figures_sha256"] == sha:
        version, issued_at = last[0]["version"], last[0]["issued_at"]
        before = last[1] if len(last) > 1 else None
    else:
        version = (last[0]["version"] + 1) if last else 1
        issued_at = dt.datetime.now(dt.UTC).replace(tzinfo=None, microsecond=0)
        before = last[0] if last else None
    changes, reasons = _compare(before["figures_json"], text) if before else ([], [])
    return Issue(
        version,
        issued_at,
        version > 1,
        before["version"] if before else None,
        changes,
        reasons,
        before["figures_json"] if before else None,
    )


def record_issue(store: Store, period: str, edition: str, issue: Issue, run_id: str, text: str) -> None:
    """Record a planned issue (a no-op when it is the last issue rebuilt from the same figures)."""
    sha = hashlib.sha256(text.encode()).hexdigest()
    last = _issues(store, period, edition)
    if last and last[0]["version"] == issue.version and last[0]["figures_sha256"] == sha:
        return
    store.con.execute(
        "INSERT INTO pack_issues VALUES (?, ?, ?, ?, ?, ?, ?)",
        [period, edition, issue.version, issue.issued_at, run_id, sha, text],
    )


# Stored field names in the words of the pack.
FIELD_WORDS = {
    "volume": "volume",
    "failures": "failures",
    "no_response": "no response",
    "responses": "responses",
    "success_pct": "success",
    "failure_pct": "failure rate",
    "within_trt_pct": "within TRT",
    "within_trt": "within TRT (count)",
    "payload_failures": "payload failures",
    "payload_failure_pct": "payload failure rate",
    "rtt_mean_s": "mean RTT (s)",
    "rtt_median_s": "median RTT (s)",
    "rtt_min_s": "min RTT (s)",
    "rtt_max_s": "max RTT (s)",
    "pct": "percentage",
    "value": "value",
    "numerator": "numerator",
    "denominator": "denominator",
    "status": "status",
    "service_credit_gbp": "service credit (£)",
    "months_below_target": "consecutive months below target",
    "unplanned_min": "unplanned outage (min)",
    "planned_min": "planned maintenance (min)",
    "success_pct_rank": "rank",
}


def _measure_and_scope(c: dict[str, Any], m: Methodology) -> tuple[str, str]:
    k, table = c["keys"], c["table"]
    names = {p.id: p.name for p in m.every_process}
    if table == "rsvp":
        what = names.get(k["key"], k["key"]) if k["scope"] == "process" else f"SRV {k['key']}"
        when = f"{k['day']}" if k["rate"] == "day" else "month"
        return f"RSVP {what}", f"{k['segment']}, {when}"
    if table == "cpm":
        key = names.get(k["key"], k["key"])
        return f"{k['cpm']}" + ("" if key == "all" else f" {key}"), k["segment"]
    if table == "outcomes":
        scope = ", ".join(str(x) for x in (k["breakdown"], k["key1"], k["key2"]) if x)
        return k["measure"], scope
    if table == "availability":
        scope = ", ".join(str(x) for x in (k["region"], k["band"], k["day"]) if x and x != "all")
        return f"Availability {k['subject']}", scope or "month"
    if table == "league":
        return f"League table {names.get(k['process_id'], k['process_id'])}", str(k["party"])
    return f"Legs {names.get(k['process_id'], k['process_id'])}", f"{k['breakdown']} {k['key']}"


def _value(field: str, v: Any) -> str:
    if v is None:
        return fmt.DASH
    if isinstance(v, float) and (field.endswith("pct") or field == "pct"):
        return fmt.pct(v)
    if isinstance(v, float):
        return f"{v:,.2f}"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


_TABLE_ORDER = {"cpm": 0, "availability": 1, "rsvp": 2, "league": 3, "outcomes": 4, "legs": 5}


def _reading_order(c: dict[str, Any]) -> tuple:
    """The CPMs first, then availability, RSVP's months (processes before SRVs), the league
    tables, outcomes and legs; RSVP's days last."""
    k = c["keys"]
    day = c["table"] == "rsvp" and k.get("rate") == "day"
    return (day, _TABLE_ORDER[c["table"]], c["table"] == "rsvp" and k.get("scope") == "srv", c["figure"])


def changes_in_words(issue: Issue, m: Methodology) -> list[dict[str, str]]:
    """Each changed figure as a reader names it, in reading order: measure, scope, what, old, new."""
    out = []
    for c in sorted(issue.changes, key=_reading_order):
        measure, scope = _measure_and_scope(c, m)
        out.append(
            {
                "measure": measure,
                "scope": scope,
                "field": FIELD_WORDS.get(c["field"], c["field"].replace("_", " ")),
                "previous": _value(c["field"], c["previous"]),
                "now": _value(c["field"], c["now"]),
            }
        )
    return out


def change_summary_markdown(period: str, issue: Issue, m: Methodology) -> str:
    lines = [
        f"# Changes in the {period} pack, issue {issue.version} (replaces issue {issue.previous_version})",
        "",
        "Why: " + "; ".join(issue.reasons) + ".",
        "",
        f"{len(issue.changes)} figure(s) changed. The earlier issue's figures are kept in "
        f"`archive/issue-{issue.previous_version}/figures.json` and in the `pack_issues` table.",
        "",
        f"| Measure | Scope | Figure | Issue {issue.previous_version} | Issue {issue.version} |",
        "|---|---|---|---|---|",
    ]
    for c in changes_in_words(issue, m):
        lines.append(f"| {c['measure']} | {c['scope']} | {c['field']} | {c['previous']} | {c['now']} |")
    return "\n".join(lines) + "\n"


def published_run(store: Store, period: str) -> str | None:
    """The run behind the latest issued public pack of a period, if any: `compute` warns when its
    new results differ from what was published."""
    import duckdb

    try:
        rows = store.rows(
            "SELECT run_id FROM pack_issues WHERE period = ? AND edition = 'public' "
            "ORDER BY version DESC LIMIT 1",
            [period],
        )
    except duckdb.CatalogException:  # no pack issued yet: no pack_issues table
        return None
    return rows[0]["run_id"] if rows else None
