"""The outcome measure families, declared once: each family module declares `MEASURES` (measure
id -> function) and `CELLS` (stored day-cell table -> builder). The registry of measures, the
day cells the incremental run reduces, and the runner all come from `FAMILIES`, so a new family
is one line here (docs/architecture.md, "Adding a measure")."""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType

import pyarrow as pa

from opmetrics.measures import (
    activity,
    alerting,
    attempts,
    billing,
    cos,
    firmware,
    forecasts,
    install,
    iterations,
    league,
    operations,
    prepayment,
    providers,
    security,
)
from opmetrics.measures.outcome import (
    NO_EVENTS,
    SCHEMA,
    CellBuilder,
    Context,
    MeasureFn,
    Row,
    count_row,
    default_status,
)
from opmetrics.measures.records import Scope
from opmetrics.methodology.status import Status

FAMILIES: list[ModuleType] = [
    install,
    cos,
    billing,
    prepayment,
    firmware,
    alerting,
    security,
    operations,
    league,
    attempts,
    forecasts,
    providers,
    activity,
    iterations,
]


def _merged(attribute: str, families: list[ModuleType]) -> dict:
    """One family's declarations after another's; an id declared twice is an error, not an
    override (the last family would silently win)."""
    out: dict = {}
    for mod in families:
        for key, value in getattr(mod, attribute).items():
            if key in out:
                raise ValueError(
                    f"{attribute} {key!r} is declared by two families (the second: {mod.__name__})"
                )
            out[key] = value
    return out


def registry(families: list[ModuleType] | None = None) -> dict[str, MeasureFn]:
    """Measure id -> the function that computes it."""
    return _merged("MEASURES", FAMILIES if families is None else families)


def cell_builders(families: list[ModuleType] | None = None) -> dict[str, CellBuilder]:
    """Every family's day cells (`outcome.day_cells`), by stored table name: reduced once per UK
    day with the other day cubes (`measures.incremental`)."""
    return _merged("CELLS", FAMILIES if families is None else families)


def compute_outcomes(s: Scope, ctx: Context, on_measure: Callable[[str], None] | None = None) -> pa.Table:
    """Every measure the methodology declares, in its order: computed by its family, or a row
    saying why not (not implemented, or an input table missing)."""
    reg = registry()
    rows: list[Row] = []
    for md in s.m.measures:
        if on_measure:
            on_measure(md.id)
        fn = reg.get(md.id)
        missing = [i for i in md.inputs if not ctx.input_rows.get(i)]
        if fn is None:
            # No figure, not a zero: nothing computed it.
            got = [
                {
                    **count_row("all", "All", 0, note=f"not implemented in opmetrics {md.id}"),
                    "value": None,
                    "status": Status.NOT_IMPLEMENTED,
                }
            ]
        elif missing:
            reason = "; ".join(
                f"{i} is not in the data contract" if i not in ctx.input_rows else f"no {i} data loaded"
                for i in missing
            )
            got = [
                {**count_row("all", "All", 0), "value": None, "status": Status.MISSING_INPUT, "note": reason}
            ]
        else:
            got = fn(s, ctx) or [{**count_row("all", "All", 0), "value": None, "status": NO_EVENTS}]
        for r in got:
            r.setdefault("status", "")
            if not r["status"]:
                r["status"] = default_status(r)
            r.update(measure=md.id, kind=md.kind, period=s.period)
        rows += got
    return pa.Table.from_pylist(rows, schema=SCHEMA)
