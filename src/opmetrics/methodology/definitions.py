"""docs/definitions.md: every measure with the seed text it implements, the rule the project
applies, and each deviation from (or reading of) the seed with its reason and the setting that
restores the seed's reading. Generated from the methodology by `opmetrics definitions-doc`, so
it cannot drift from the rules; the what-if table of the versions is read from its own file.
"""

from __future__ import annotations

from pathlib import Path

from opmetrics.methodology import Cpm, MeasureDef, Methodology
from opmetrics.methodology.citations import find

# RSVP is defined by the methodology's general sections, not by a catalogue entry.
RSVP = [
    (
        "Rate",
        '001 l.91 "For the purposes of the PMR the rate will be either daily or monthly"',
        "Monthly and daily figures per UK calendar day (Europe/London), per SRV and per business "
        "process, by region (SMETS2) and SMETS1, with SMETS2 and All totals.",
    ),
    (
        "Speed",
        '001 l.94 "Speed should be measured as an average (mean) as well as a median"',
        "RTT from receipt (or ADT quarantine release) to the response; mean, exact median, min and "
        "max over the modes in `speed.rtt_modes` (on-demand); % within TRT over every mode, each "
        "request against its own SRV, SMETS and mode TRT; at the TRT is on time.",
    ),
    (
        "Volume",
        '001 l.97 "The total number of Service Requests or group of SRVs processed by the DCC Total System"',
        "Included requests: a reported Report Status, no exception on the PMEL, no response code "
        "outside DCC control; each excluded request is counted under its rule.",
    ),
    (
        "Payload",
        '001 l.105 "success of an SRV would be if Users received a response to it, irrespective"',
        "Rate of success: a response received (`payload.rsvp_success`). Payload failures "
        "(a failure_dcc code or a linked N12/N13 alert) and the four response categories are "
        "reported beside it.",
    ),
]


def _quotes(source: str) -> list[str]:
    """The citations of a `source` field, each as a Markdown quote line."""
    cites = list(find(source))
    if not cites:
        return [f"> {source}" if source else "> (no seed text: ours)"]
    out = []
    for c in cites:
        lines = f"l.{c.first}" + (f"-{c.last}" if c.last != c.first else "")
        out.append(f'> {c.seed} {lines}: "{c.quote}"')
    return out


def _cpm_rule(m: Methodology, c: Cpm) -> str:
    cats = ", ".join(map(str, c.categories))
    responsible = ", DCC responsible only" if c.responsible_only else ""
    rule = {
        "service_requests": f"{c.mode} requests within their TRT"
        + ("" if c.critical is None else f", {'critical' if c.critical else 'non-critical'} only")
        + (" (the flag from the SRV catalogue)" if m.critical_from == "catalogue" else " (the input's flag)"),
        "alerts": f"alerts delivered within {m.alerts.trt_seconds} s"
        + ("" if m.alerts.count_suppressed else ", suppressed (consolidated) alerts not counted"),
        "processes": "each business process's requests "
        + (
            "answered with a success code within the TRT"
            if c.numerator == "delivered_within_trt"
            else "answered within the TRT"
        )
        + (
            f"; measures for {', '.join(c.processes)}, the other processes as indicators"
            if c.processes
            else ""
        ),
        "incident_resolution": f"Category {cats} incidents closed in the period resolved within the target "
        "resolution time" + responsible,
        "incident_response": f"Category {cats} incidents closed in the period assigned within the target "
        "initial response time" + responsible,
        "availability": "minutes each DCC interface was available over its uptime, per region and time band, "
        "planned maintenance within the allowance excluded",
        "ch_firmware_delivery": "Communications Hub firmware images delivered",
        "ch_firmware_activation": "delivered Communications Hub firmware images activated",
        "smki": f"SMKI {c.service} requests answered within their TRT",
        "assessments": "DCC assessments completed within the required timescales",
    }[c.kind]
    return f"{rule}; target {c.target:g} %, minimum {c.minimum:g} %."


def _measure_rule(m: Methodology, x: MeasureDef) -> str:
    extra = []
    if x.srvs and x.kind == "M" and m.outcomes.success_basis == "response_codes":
        codes = sorted({c for s in x.srvs for c in m.success_codes_of(s)})
        extra.append(f"success: answered with {', '.join(codes)}")
    if x.modes:
        extra.append(f"modes: {', '.join(x.modes)}")
    if x.params:
        extra.append("parameters: " + ", ".join(f"{k} {v:g}" for k, v in x.params.items()))
    return x.definition + (f" ({'; '.join(extra)})" if extra else "")


def _deviations(m: Methodology, key: str) -> list[str]:
    out = []
    for d in m.deviations:
        if key in d.affects:
            restore = f" Switch: `{d.restore}` restores the seed's reading." if d.restore else ""
            out.append(f"- *{d.kind}* `{d.id}`: {d.rule} Why: {d.why}{restore}")
    return out


def markdown(m: Methodology, what_if: Path | None = None) -> str:
    lines = [
        "# Definitions",
        "",
        f"Generated from methodology {m.version} by `opmetrics definitions-doc`; do not edit by hand.",
        "For every measure: the seed text it implements (quoted verbatim, checked by "
        "`opmetrics seeds check`), the rule opmetrics applies, and each deviation from the seed "
        "(a setting restores the seed's reading) or reading of a seed that is silent or ambiguous.",
        "Seeds: 001 = `../shared/seeds/001_0a0f74c54dc85ae9.txt` (impact assessment and OPSG review), "
        "003 = `../shared/seeds/003_f3ee2c604e5a6b7e.txt` (MP122A slides).",
        "",
        "## Deviations and readings",
        "",
        "| id | kind | affects | seed | our rule | restore the seed's reading |",
        "|---|---|---|---|---|---|",
    ]
    for d in m.deviations:
        seed = " ".join(q[2:] for q in _quotes(d.seed))
        lines.append(
            f"| `{d.id}` | {d.kind} | {', '.join(d.affects)} | {seed} | {d.rule} | "
            + (f"`{d.restore}`" if d.restore else "–")
            + " |"
        )
    lines += ["", "## RSVP", ""]
    for name, seed, rule in RSVP:
        lines += [f"### {name}", "", *_quotes(seed), "", rule, ""]
    lines += _deviations(m, "RSVP") + [""]
    lines += ["## Code Performance Measures", ""]
    for c in m.cpms:
        lines += [f"### {c.id}: {c.name}", "", *_quotes(c.source), "", _cpm_rule(m, c), ""]
        lines += _deviations(m, c.id) + ([""] if _deviations(m, c.id) else [])
    lines += ["## Service availability", "", *_deviations(m, "availability"), ""]
    lines += ["## Outcome measures and indicators", ""]
    for x in m.measures:
        kind = "Measure" if x.kind == "M" else "Indicator"
        lines += [f"### {x.id} ({kind}, {x.process})", "", *_quotes(x.source), "", _measure_rule(m, x), ""]
        lines += _deviations(m, x.id) + ([""] if _deviations(m, x.id) else [])
    if what_if is not None and what_if.exists():
        lines += ["## What changed between versions", "", what_if.read_text(encoding="utf-8").rstrip(), ""]
    return "\n".join(lines).rstrip() + "\n"
