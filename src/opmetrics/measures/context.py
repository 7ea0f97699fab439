"""What a run used besides its figures (issue 32, item 1), stored with the run so the pack, the
summary paper and the dashboard show what the run saw and never read an input table:

- `run_incidents`: the period's incidents (every category) with their outage duration, as the
  pack's major-incident list and the dashboard's incident list show them;
- `run_outages`: the outages overlapping the period, as the availability measures used them;
- `run_parties`: every SEC Party that has sent requests, with the DUIS User Role it mostly sent
  under (the anonymised letters derive from these: a pack re-built from the run letters its
  parties as the run did, whatever was loaded since; every party ever seen is on the list, so
  the leak guard knows every id to look for);
- `run_alerts`: the period's alerts by kind and code (the summary paper's alert counts);
- `run_inputs` and `run_quarantine`: the input data quality at compute time;
- `run_prev_cpm`, `run_prev_availability` and `run_trend`: the earlier months the pack compares
  with (the previous month's CPMs and service levels, 12 months of process and SRV RSVP), from
  their runs or, for months never computed here, the published values (engine/history.py).
"""

from __future__ import annotations

import datetime as dt

import pyarrow as pa

from opmetrics.engine import history as earlier
from opmetrics.engine.context import read_context
from opmetrics.engine.store import Store
from opmetrics.measures.availability import previous_period
from opmetrics.measures.records import month_bounds, uk_midnight_utc

TREND_MONTHS = 13  # the pack's monthly trends: this month and the twelve before
TOP_REASONS = 20  # quarantine reasons listed in the pack; the quarantine table keeps every row


def run_context(store: Store, period: str, duplicate_detail: str) -> dict[str, pa.Table]:
    """The context tables of one period, as Arrow tables with their column types (also when
    empty). `duplicate_detail` is the ingest's pattern for a duplicate's row detail, removed so
    the reasons group."""
    first, last = month_bounds(period)
    start, end = uk_midnight_utc(first), uk_midnight_utc(last + dt.timedelta(days=1))
    out = read_context(store, first, last, start, end, duplicate_detail, TOP_REASONS)
    return with_period(out, period)


def with_period(tables: dict[str, pa.Table], period: str) -> dict[str, pa.Table]:
    """Each table with its period, the key `compute` replaces a period's stored rows by."""
    return {
        name: t.append_column("period", pa.array([period] * t.num_rows, pa.string()))
        for name, t in tables.items()
    }


def earlier_figures(store: Store, period: str) -> dict[str, pa.Table]:
    """The earlier months' figures the pack shows beside this one's, each with its source."""
    prev, first = previous_period(period), period
    for _ in range(TREND_MONTHS - 1):
        first = previous_period(first)
    tables = {
        "run_prev_cpm": earlier.cpm_rows(store, "period = ?", [prev]),
        "run_prev_availability": earlier.availability_rows(store, "period = ?", [prev]),
        "run_trend": earlier.rsvp_rows(store, "period >= ? AND period < ?", [first, period]),
    }
    # `period` is the run's own month in every run table; the earlier month is `of_period`.
    return {
        name: t.rename_columns(["of_period" if c == "period" else c for c in t.column_names])
        for name, t in tables.items()
    }
