"""What if the rules were another version? One period computed under two methodology versions
over the same stored inputs, side by side, without touching the published results.

Each version is computed in a scratch database of its own whose input tables are read-only
views of the real one (`Store.overlay`), so nothing published changes. The figures are then
compared per measure, and each figure that moved is listed with the rules that changed between
the two files and bear on it (a rule is a methodology setting: its dotted path in the file).
"""

from __future__ import annotations

import datetime as dt
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from opmetrics import format as fmt
from opmetrics.engine import results
from opmetrics.engine.store import Store
from opmetrics.measures.run import compute, default_as_of
from opmetrics.methodology import Methodology

# The settings each family of figures reads (top-level sections of the methodology, and the
# entries of `cpms` and `measures` named by their id): a changed setting outside them cannot
# have moved the family's figures.
RSVP_RULES = (
    "report_status", "response_codes", "payload", "speed", "trt_defaults_seconds", "srvs", "processes",
    "attribution", "counting",
)  # fmt: skip
# A CPM's figures by its kind (every CPM also reads its own entry and the service credits).
CPM_RULES: dict[str, tuple[str, ...]] = {
    "service_requests": (*RSVP_RULES, "critical_from"),
    "processes": RSVP_RULES,
    "alerts": ("alerts",),
    "incident_resolution": ("incidents",),
    "incident_response": ("incidents",),
    "availability": ("availability",),
}
# An outcome measure's, by the start of its id (the rest read the requests' rules and
# `outcomes`); every measure also reads its own entry.
OUTCOME_RULES: dict[str, tuple[str, ...]] = {
    "EH1": ("estate",),
    "INC1": ("incidents",),
    "IMP1": ("incidents", "availability", *RSVP_RULES),
    "A1": ("alerts", "outcomes"),
    "AM1": ("alerts", "outcomes"),
    "AV1": RSVP_RULES,
    "TIME1": ("timeliness",),
}
REQUEST_OUTCOME_RULES = (*RSVP_RULES, "outcomes")


@dataclass
class Change:
    family: str  # rsvp | cpm | outcomes | availability
    figure: str  # what it is, in words
    scope: str  # segment, region, key...
    before: Any
    after: Any
    rules: list[str]  # the changed settings that bear on it


@dataclass
class WhatIf:
    period: str
    before: str  # methodology version of the baseline (`--against`)
    after: str  # the version tried (`--methodology`)
    settings: list[tuple[str, Any, Any]]  # every changed setting: path, before, after
    changes: list[Change]
    unchanged: int  # figures compared that did not move
    added: list[str]  # catalogue entries (measures, CPMs) only the tried version has
    removed: list[str]  # and only the baseline has


def settings_of(m: Methodology) -> dict[str, Any]:
    """A methodology as {dotted path: value}: lists of entries named by an id (cpms, measures,
    processes, srvs) keyed by it, so a path says which CPM or SRV it is about."""
    # The deviations document the rules; they change no figure. 2026.4's code lists live on in
    # `response_codes`, which a file of that version is read into.
    data = m.model_dump(exclude={"fingerprint", "version", "title", "effective_from", "deviations"})
    for section, key in (("payload", "failure_response_codes"), ("payload", "success_response_codes"),
                         ("counting", "outside_dcc_control_codes")):  # fmt: skip
        data[section].pop(key, None)
    out: dict[str, Any] = {}

    def walk(prefix: str, v: Any) -> None:
        if isinstance(v, dict):
            for k, x in v.items():
                walk(f"{prefix}.{k}" if prefix else str(k), x)
        elif isinstance(v, list) and v and all(isinstance(x, dict) for x in v):
            for i, x in enumerate(v):
                name = x.get("id") or x.get("srv") or x.get("name") or str(i)
                walk(f"{prefix}[{name}]", {k: y for k, y in x.items() if k not in ("id", "srv")})
        else:
            out[prefix] = v

    walk("", data)
    return out


# Text that documents a rule without changing what it computes.
PROSE = ("source", "definition", "name", "description", "meaning", "srvs_source", "excluded_reason", "title")


def is_prose(path: str) -> bool:
    return path.rsplit(".", 1)[-1] in PROSE


def changed_settings(a: Methodology, b: Methodology) -> list[tuple[str, Any, Any]]:
    """(path, value in `a`, value in `b`) for every setting that differs, sorted by path; text
    that only documents a rule (sources, definitions, names) left out."""
    x, y = settings_of(a), settings_of(b)
    keys = sorted(k for k in set(x) | set(y) if not is_prose(k))
    return [(k, x.get(k), y.get(k)) for k in keys if x.get(k) != y.get(k)]


def _bears_on(path: str, family: str, key: str, m: Methodology) -> bool:
    """Whether a setting's path is among those a figure reads: by its family, and for a CPM or
    an outcome measure by its kind or id (its own entry of `cpms` or `measures` always)."""
    top = path.split(".")[0].split("[")[0]
    entry = path.split("[", 1)[1].split("]")[0] if "[" in path else None
    if family == "rsvp" and top == "processes" and entry is not None:
        # A process's figures read its own entry, and those of the processes it leaves its
        # requests to (tariff updates: the 1.1.1s not in I&C or CoS).
        mine = next((p for p in m.processes if p.id == key), None)
        return mine is not None and (entry == key or entry in mine.attribution.processes)
    if family == "rsvp":
        return top in RSVP_RULES
    if family == "availability":
        return top in ("availability", "alert_processes")
    if family == "cpm":
        kind = next((c.kind for c in m.cpms if c.id == key), "")
        return (top == "cpms" and entry == key) or top == "service_credits" or top in CPM_RULES.get(kind, ())
    if top == "measures":
        return entry == key
    rules = next((r for prefix, r in OUTCOME_RULES.items() if key.startswith(prefix)), REQUEST_OUTCOME_RULES)
    return top in rules


RSVP_FIGURES = (("volume", "volume"), ("success_pct", "success %"), ("within_trt_pct", "within TRT %"))


def _figures(store: Store, period: str) -> Iterator[tuple[str, str, str, str, Any]]:
    """(family, key for its rules, figure, scope, value) of one computed period."""
    stored = results.month_figures(store, period)
    for r in stored["rsvp"]:
        for col, label in RSVP_FIGURES:
            yield "rsvp", r["key"], f"RSVP {r['key']} {label}", r["segment"], r[col]
    for r in stored["cpm"]:
        scope = f"{r['key']} {r['segment']}".replace("all ", "")
        yield "cpm", r["cpm"], f"{r['cpm']} %", scope, r["pct"]
        yield "cpm", r["cpm"], f"{r['cpm']} status", scope, r["status"]
    for r in stored["outcomes"]:
        scope = " ".join(str(x) for x in (r["breakdown"], r["key1"], r["key2"]) if x)
        yield "outcomes", r["measure"], r["measure"], scope, r["value"]
    for r in stored["availability"]:
        yield "availability", r["subject"], f"availability {r['subject']}", r["region"], r["pct"]


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return abs(a - b) < 1e-9
    return a == b


def what_if(
    db: str | Path,
    period: str,
    tried: Methodology,
    against: Methodology,
    as_of: dt.datetime | None = None,
    work: str | Path | None = None,
) -> WhatIf:
    """Compute `period` under `against` (the baseline) and `tried` over the inputs stored in
    `db`, each in a scratch database (in `work`, a temporary folder by default), and compare."""
    with tempfile.TemporaryDirectory(dir=work) as tmp:
        got: dict[str, dict[tuple[str, str, str, str], Any]] = {}
        for tag, m in (("before", against), ("after", tried)):
            store = Store.overlay(db, Path(tmp) / f"{tag}.duckdb")
            try:
                store.quiet()
                at = as_of or default_as_of(store, period, m.report_timezone)
                compute(store, m, period, as_of=at)
                got[tag] = {(fam, key, fig, scope): v for fam, key, fig, scope, v in _figures(store, period)}
            finally:
                store.close()
    settings = changed_settings(against, tried)
    changes, unchanged = [], 0
    for k in sorted(set(got["before"]) | set(got["after"])):
        fam, key, fig, scope = k
        b, a = got["before"].get(k), got["after"].get(k)
        if _same(a, b):
            unchanged += 1
            continue
        rules = [p for p, _, _ in settings if _bears_on(p, fam, key, tried)]
        changes.append(Change(fam, fig, scope, b, a, rules))
    old = {f"measures[{x.id}]" for x in against.measures} | {f"cpms[{c.id}]" for c in against.cpms}
    new = {f"measures[{x.id}]" for x in tried.measures} | {f"cpms[{c.id}]" for c in tried.cpms}
    added, removed = sorted(new - old), sorted(old - new)
    return WhatIf(period, against.version, tried.version, settings, changes, unchanged, added, removed)


def _cell(v: Any) -> str:
    """Numbers as the pack prints them (opmetrics/format.py: truncated, never rounded)."""
    if v is None:
        return fmt.DASH
    if isinstance(v, float):
        return fmt.pct(v).removesuffix("%")
    return str(v)


def _short(v: Any, n: int = 60) -> str:
    s = _cell(v) if not isinstance(v, list | dict) else repr(v)
    return s if len(s) <= n else s[: n - 1] + "…"


def markdown(w: WhatIf, limit: int = 80) -> str:
    """The comparison as Markdown: the settings that changed, then the figures that moved (the
    largest moves of percentages first), each with the changed settings that bear on it."""
    lines = [
        f"### What if: {w.period} under {w.before} and under {w.after}",
        "",
        f"Computed by `opmetrics what-if --period {w.period} --methodology <{w.after}> "
        f"--against <{w.before}>` over the same stored inputs; {len(w.changes)} figures moved, "
        f"{w.unchanged} did not.",
        "",
        f"**Settings that differ** ({len(w.settings)}):",
        "",
        f"| setting | {w.before} | {w.after} |",
        "|---|---|---|",
    ]
    for path, b, a in w.settings:
        if path.startswith("srvs[") or path.startswith("response_codes.codes."):
            continue  # summarised below
        if any(path.startswith(e) for e in w.added + w.removed):
            continue  # a whole entry: listed below
        lines.append(f"| `{path}` | {_short(b)} | {_short(a)} |")
    srv_changes = [p for p, _, _ in w.settings if p.startswith("srvs[")]
    code_changes = [p for p, _, _ in w.settings if p.startswith("response_codes.codes.")]
    if srv_changes:
        srvs = sorted({p.split("[")[1].split("]")[0] for p in srv_changes})
        named = ", ".join(srvs[:12]) + (", …" if len(srvs) > 12 else "")
        lines.append(f"| `srvs[...]` | | {len(srvs)} SRV entries differ ({named}) |")
    if code_changes:
        codes = sorted({p.split(".")[2] for p in code_changes})
        lines.append(f"| `response_codes.codes` | | {len(codes)} codes differ ({', '.join(codes)}) |")
    if w.added:
        lines.append(f"| added | – | {', '.join(w.added)} |")
    if w.removed:
        lines.append(f"| removed | {', '.join(w.removed)} | – |")

    def order(c: Change) -> tuple:
        """Percentages that moved most first, then statuses that changed, then the rest."""
        pct = c.figure.endswith("%") or c.family in ("rsvp", "availability")
        if pct and isinstance(c.before, float) and isinstance(c.after, float):
            return (0, -abs(c.after - c.before), c.figure, c.scope)
        return (1 if c.figure.endswith("status") else 2, 0.0, c.figure, c.scope)

    shown = sorted(w.changes, key=order)[:limit]
    lines += [
        "",
        f"**Figures that moved** (the {len(shown)} largest of {len(w.changes)}; every one in the CSV):",
        "",
        f"| figure | scope | {w.before} | {w.after} | settings that bear on it |",
        "|---|---|---|---|---|",
    ]
    for c in shown:
        rules = ", ".join(f"`{r}`" for r in c.rules[:6]) + (" …" if len(c.rules) > 6 else "")
        lines.append(f"| {c.figure} | {c.scope} | {_cell(c.before)} | {_cell(c.after)} | {rules} |")
    return "\n".join(lines) + "\n"


def csv_rows(w: WhatIf) -> list[dict[str, Any]]:
    return [
        {
            "period": w.period,
            "family": c.family,
            "figure": c.figure,
            "scope": c.scope,
            f"value_{w.before}": c.before,
            f"value_{w.after}": c.after,
            "settings": "; ".join(c.rules),
        }
        for c in w.changes
    ]
