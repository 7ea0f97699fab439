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

from opmetrics.engine.store import Store

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


def _flatten(figures: dict[str, Any]) -> dict[str, Any]:
    """figure key -> value, for every numeric or status figure in the pack."""
    out: dict[str, Any] = {}
    keys = {
        "rsvp": ("scope", "key", "rate", "day", "segment"),
        "cpm": ("cpm", "key", "segment"),
        "outcomes": ("measure", "breakdown", "key1", "key2"),
        "availability": ("view", "subject", "region", "band", "day"),
        "league": ("process_id", "party"),
        "legs": ("process_id", "breakdown", "key"),
    }
    for table, cols in keys.items():
        for r in figures.get(table, []):
            k = " / ".join(str(r.get(c) or "") for c in cols).rstrip(" /")
            for fld, v in r.items():
                if fld in cols or fld in ("period", "note", "run_id", "kind", "unit"):
                    continue
                out[f"{table}: {k}: {fld}"] = v
    return out


def record_issue(store: Store, period: str, edition: str, figures: dict[str, Any], text: str) -> Issue:
    store.con.execute(_DDL)
    sha = hashlib.sha256(text.encode()).hexdigest()
    last = store.rows(
        "SELECT * FROM pack_issues WHERE period = ? AND edition = ? ORDER BY version DESC LIMIT 1",
        [period, edition],
    )
    if last and last[0]["figures_sha256"] == sha:
        # The same figures again: the same issue, with its original issue time, so a pack
        # rebuilt from the same results looks the same.
        return Issue(last[0]["version"], last[0]["issued_at"], last[0]["version"] > 1, None, [], [], None)
    version = (last[0]["version"] + 1) if last else 1
    changes: list[dict[str, Any]] = []
    reasons: list[str] = []
    if last:
        old = json.loads(last[0]["figures_json"])
        before, after = _flatten(old), _flatten(figures)
        for k in sorted(set(before) | set(after)):
            if before.get(k) != after.get(k):
                changes.append({"figure": k, "previous": before.get(k), "now": after.get(k)})
        po, pn = old.get("provenance", {}), figures.get("provenance", {})
        reasons = [why for fld, why in WHY.items() if po.get(fld) != pn.get(fld)]
        if not reasons:
            reasons = ["presentation or league anonymisation changed; no input or rule changed"]
    issued_at = dt.datetime.now(dt.UTC).replace(tzinfo=None, microsecond=0)
    store.con.execute(
        "INSERT INTO pack_issues VALUES (?, ?, ?, ?, ?, ?, ?)",
        [
            period,
            edition,
            version,
            issued_at,
            figures["provenance"]["run_id"],
            sha,
            text,
        ],
    )
    return Issue(
        version,
        issued_at,
        version > 1,
        version - 1 if last else None,
        changes,
        reasons,
        last[0]["figures_json"] if last else None,
    )


def change_summary_markdown(period: str, issue: Issue) -> str:
    lines = [
        f"# Changes in the {period} pack, issue {issue.version} (replaces issue {issue.previous_version})",
        "",
        "Why: " + "; ".join(issue.reasons) + ".",
        "",
        f"{len(issue.changes)} figure(s) changed. The earlier issue's figures are kept in "
        f"`archive/issue-{issue.previous_version}/figures.json` and in the `pack_issues` table.",
        "",
        "| Figure | Issue " + str(issue.previous_version) + " | Issue " + str(issue.version) + " |",
        "|---|---|---|",
    ]
    for c in issue.changes:
        lines.append(f"| {c['figure']} | {_fmt(c['previous'])} | {_fmt(c['now'])} |")
    return "\n".join(lines) + "\n"


def _fmt(v: Any) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:.6g}"
    return str(v)
