"""Datafiles of a pack: CSV and XLSX per business process and per table, and figures.json.

Deterministic: rows in a fixed order, floats in a fixed format, no timestamps of writing, so
the same stored results give byte-identical CSV and JSON (issue 6, item 9).
"""

from __future__ import annotations

import csv
import datetime as dt
import json
from pathlib import Path
from typing import Any

import xlsxwriter

# Appended to every datafile row so a file separated from its pack still says where it came from.
PROVENANCE_COLUMNS = ["methodology_version", "methodology_fingerprint", "input_fingerprint", "run_id"]

RSVP_COLUMNS = [
    "period", "rate", "day", "level", "process_id", "srv", "segment", "volume", "failures",
    "success_pct", "failure_pct", "no_response", "responses", "rtt_count", "rtt_mean_s",
    "rtt_median_s", "rtt_min_s", "rtt_max_s", "within_trt", "trt_denominator", "within_trt_pct",
    "delivered_within_trt", "payload_failures", "payload_failure_pct", "no_response_success_code",
    "no_response_other_code", "response_success_code", "response_other_code",
]  # fmt: skip
MODE_COLUMNS = [
    "period", "scope", "key", "segment", "mode", "volume", "failures", "payload_failures",
    "no_response", "within_trt", "delivered_within_trt", "trt_denominator", "within_trt_pct",
    "success_pct", "payload_failure_pct",
]  # fmt: skip
DEVICE_COLUMNS = [c if c != "mode" else "device_type" for c in MODE_COLUMNS]
CPM_COLUMNS = [
    "period", "cpm", "key", "segment", "numerator", "denominator", "pct", "target", "minimum",
    "status", "instance", "months_below_target", "service_credit_gbp", "note",
]  # fmt: skip
OUTCOME_COLUMNS = [
    "period", "measure", "kind", "breakdown", "key1", "key2", "numerator", "denominator", "value",
    "unit", "status", "note",
]  # fmt: skip
AVAILABILITY_COLUMNS = [
    "period", "view", "subject", "region", "band", "day", "minutes", "planned_min",
    "planned_over_allowance_min", "unplanned_min", "uptime_min", "pct", "previous_pct", "target",
    "minimum", "status", "events", "mttr_hours", "mtbf_hours", "incidents", "incidents_cat12",
    "incidents_cat345_dcc", "note",
]  # fmt: skip
LEGS_COLUMNS = [
    "period", "process_id", "breakdown", "key", "requests", "with_legs", "coverage_pct",
    "proxy_median_s", "proxy_mean_s", "han_median_s", "han_mean_s", "rtt_median_s",
    "rtt_excl_han_median_s", "csp_median_s", "dsp_median_s", "dsp_trt_s", "dsp_within_pct", "note",
]  # fmt: skip
OPR_COLUMNS = ["period", "cpm", "key", "segment", "pct", "reported", "score"]
LEAGUE_COLUMNS = ["period", "process_id", "rank", "party", "success_pct", "industry_pct", "best_pct"]


FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_value(v: Any) -> Any:
    """A cell as text. Text that a spreadsheet would run as a formula (it starts with =, +, -,
    @, tab or carriage return: a party id or a note from the input could) gets a leading
    apostrophe, so opening a datafile never runs anything (CSV injection)."""
    if isinstance(v, str) and v.startswith(FORMULA_START):
        return "'" + v
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return f"{v:.6g}" if abs(v) >= 1e-4 or v == 0 else f"{v:.3e}"
    if isinstance(v, dt.datetime | dt.date):
        return v.isoformat()
    return "" if v is None else v


def _xlsx_value(v: Any) -> Any:
    if isinstance(v, dt.datetime | dt.date):
        return v.isoformat()
    return v


def write_table(path: Path, columns: list[str], rows: list[dict[str, Any]], prov: list[Any]) -> None:
    """The same table as CSV and XLSX (XLSX cells are values, never formulas)."""
    with path.with_suffix(".csv").open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(columns + PROVENANCE_COLUMNS)
        for r in rows:
            w.writerow([csv_value(r.get(c)) for c in columns] + prov)
    wb = xlsxwriter.Workbook(
        str(path.with_suffix(".xlsx")), {"strings_to_formulas": False, "strings_to_urls": False}
    )
    wb.set_properties({"title": path.stem, "created": dt.datetime(2000, 1, 1)})
    ws = wb.add_worksheet(path.stem[:31])
    bold = wb.add_format({"bold": True})
    for j, c in enumerate(columns + PROVENANCE_COLUMNS):
        ws.write_string(0, j, c, bold)
    for i, r in enumerate(rows, start=1):
        for j, v in enumerate([r.get(c) for c in columns] + prov):
            v = _xlsx_value(v)
            if v is None:
                continue
            if isinstance(v, str):
                ws.write_string(i, j, v)
            else:
                ws.write(i, j, v)
    ws.freeze_panes(1, 0)
    wb.close()


def _json_default(v: Any) -> Any:
    if isinstance(v, dt.datetime | dt.date):
        return v.isoformat()
    raise TypeError(type(v))


def stable(v: Any) -> Any:
    """Floats to 10 significant digits: parallel aggregation may add in a different order and
    change the last bits, which must not change a published figure or its fingerprint."""
    if isinstance(v, float):
        return float(f"{v:.10g}")
    if isinstance(v, dict):
        return {k: stable(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [stable(x) for x in v]
    return v


def canonical_json(figures: dict[str, Any]) -> str:
    return (
        json.dumps(stable(figures), default=_json_default, sort_keys=True, indent=1, ensure_ascii=False)
        + "\n"
    )
