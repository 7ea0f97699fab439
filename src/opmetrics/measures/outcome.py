"""Outcome measures and indicators (001 section 3.4): the shared row shape and the runner.

Every outcome row is (measure, breakdown, key1, key2, numerator, denominator, value, unit,
status, note). A measure whose input table is empty reports "missing input" with the reason;
one whose input is present but has nothing relevant reports "No Events"
(001 l.5363 "will only be used where").
The measure functions live in one module per business-process family, each declaring its
`MEASURES` and `CELLS`; `measures/families.py` lists the families and runs them.

A measure that reads the service requests or alerts does so through its family's day cells
(`day_cells`): small tables reduced once per UK day with the other day cubes and merged over the
period, so a month-end run reads no records. Where a measure counts devices, its cells keep the
day's distinct devices, which a month merges by counting them again.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import ibis
import pyarrow as pa

from opmetrics.measures.records import Scope, in_scope
from opmetrics.methodology.status import Status

NO_EVENTS = Status.NO_EVENTS
# Events happened but there is nothing to measure them against (e.g. installs on a day without
# a forecast): never "No Events", which says nothing happened.
NO_BASELINE = Status.NO_BASELINE


def default_status(r: dict[str, Any]) -> Status:
    """A row's default status: "No Events" only where nothing was counted and no value shown."""
    if not r["unit"].startswith("%") or r["denominator"] or r["value"] is not None:
        return Status.OK
    return NO_BASELINE if r["numerator"] else NO_EVENTS


SCHEMA = pa.schema(
    [
        ("measure", pa.string()),
        ("kind", pa.string()),
        ("breakdown", pa.string()),
        ("key1", pa.string()),
        ("key2", pa.string()),
        ("numerator", pa.int64()),
        ("denominator", pa.int64()),
        ("value", pa.float64()),
        ("unit", pa.string()),
        ("status", pa.string()),
        ("note", pa.string()),
        ("period", pa.string()),
    ]
)

Row = dict[str, Any]
MeasureFn = Callable[[Scope, "Context"], list[Row]]


class Context:
    """What measure functions share: the RSVP result, row counts of every input table, and the
    stored day cubes the measures merge when the run keeps them."""

    def __init__(
        self,
        rsvp: pa.Table,
        input_rows: dict[str, int],
        attempts: Folds | None = None,
        cells: dict[str, ibis.Table] | None = None,
    ):
        self.rsvp = rsvp
        self.input_rows = input_rows
        # ATT1's stored day folds, when kept.
        self.attempts = attempts
        # The outcome measures' stored day cells (`day_cells`), by table name, when kept.
        self.cells = cells or {}


class Folds(NamedTuple):
    """The stored day folds of the chains of resends (`attempts.fold_days`)."""

    ended: ibis.Table  # chains ended per day, process and bucket
    still_open: ibis.Table  # chains open at the end of each day
    state: ibis.Table  # the days folded
    ended_by_srv: ibis.Table  # chains ended per day, SRV and bucket (PP1.attempts)


CellBuilder = Callable[[Scope], ibis.Table]


def day_cells(s: Scope, ctx: Context, name: str, build: CellBuilder) -> ibis.Table:
    """The period's rows of the day cells `name`: from the stored day cubes when the run keeps
    them (a month end then merges days reduced once, and reads no records), else built now
    from the period's records, once per run (Spark, or a measure called on its own).

    A builder groups by `report_date` first, and every other column is a sum, a count or a
    grouping key, so the month is the sum of its days (tested against the records in one go)."""
    stored = ctx.cells.get(name)
    if stored is not None:
        return in_scope(s, stored)
    return s.cached(name, lambda: build(s))


def pct(n: int | None, d: int | None) -> float | None:
    return 100.0 * n / d if d and n is not None else None


def share_row(
    breakdown: str, key1: Any, numerator: int, denominator: int, key2: Any = "", note: str = ""
) -> Row:
    return {
        "breakdown": breakdown,
        "key1": "" if key1 is None else str(key1),
        "key2": "" if key2 is None else str(key2),
        "numerator": int(numerator or 0),
        "denominator": int(denominator or 0),
        "value": pct(numerator, denominator),
        "unit": "%",
        "note": note,
    }


def count_row(breakdown: str, key1: Any, count: int, key2: Any = "", note: str = "") -> Row:
    return {
        "breakdown": breakdown,
        "key1": "" if key1 is None else str(key1),
        "key2": "" if key2 is None else str(key2),
        "numerator": int(count or 0),
        "denominator": None,
        "value": float(count or 0),
        "unit": "count",
        "note": note,
    }


def rows_of(expr: ibis.Table) -> list[Row]:
    return expr.to_pyarrow().to_pylist()


def grouped_shares(t: ibis.Table, ok: ibis.Value, name: str, cols: list[str], note: str = "") -> list[Row]:
    """Share of rows where `ok` holds, per group of one or two columns, ordered by them."""
    t = t.mutate(_ok=ok.cast("int64"))
    out = []
    for r in rows_of(t.group_by(cols).aggregate(n=t._ok.sum(), d=t.count()).order_by(cols)):
        keys = [r[c] for c in cols]
        out.append(share_row(name, keys[0], r["n"], r["d"], keys[1] if len(keys) > 1 else "", note=note))
    return out


def success_rows(
    t: ibis.Table, ok: ibis.Value, by: dict[str, list[str]], weight: str | None = None
) -> list[Row]:
    """Success share overall ("all") and per breakdown: {breakdown name: [columns]}.
    `weight`: a column counting each row as that many (day cells: their count `n`).

    One grouping by every breakdown's columns, summed up in Python per breakdown: one pass
    over `t`, where a query per breakdown read it (and evaluated its joins) again each time."""
    w = ibis.literal(1, "int64") if weight is None else t[weight]
    t = t.mutate(_ok=ibis.ifelse(ok, w, 0).cast("int64"), _w=w)
    return cell_shares(t, "_ok", "_w", by)


def cell_shares(t: ibis.Table, n: str, d: str, by: dict[str, list[str]]) -> list[Row]:
    """As `success_rows`, from day cells: the share sum(`n`) / sum(`d`) overall and per
    breakdown."""
    cols = list(dict.fromkeys(c for cs in by.values() for c in cs))
    agg = {"n": t[n].sum().cast("int64"), "d": t[d].sum().cast("int64")}
    cells = rows_of(t.group_by(cols).aggregate(**agg) if cols else t.aggregate(**agg))
    out = [share_row("all", "All", sum(r["n"] or 0 for r in cells), sum(r["d"] or 0 for r in cells))]
    for name, cs in by.items():
        sums: dict[tuple[Any, ...], list[int]] = {}
        for r in cells:
            cell = sums.setdefault(tuple(r[c] for c in cs), [0, 0])
            cell[0] += r["n"] or 0
            cell[1] += r["d"] or 0
        # As ORDER BY the columns orders them on DuckDB: ascending, nulls last.
        for keys in sorted(sums, key=lambda k: [(v is None, v) for v in k]):
            num, den = sums[keys]
            out.append(share_row(name, keys[0], num, den, keys[1] if len(keys) > 1 else ""))
    return out
