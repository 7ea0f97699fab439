"""RSVP (Rate, Speed, Volume, Payload) per SRV and per business process
(001 l.3576 "Full Review - Generic Outcome based Measure - RSVP").

Rate: monthly and daily. Speed: RTT mean, median (exact), min, max and % within TRT.
Volume: requests included by the methodology. Payload: failures by the payload rule.
Split SMETS2 North / Central / South, SMETS1, plus SMETS2 and All totals.

The figures are assembled from the per-day cubes (`measures.daily`), so a month costs one pass
over its records and a late day re-reduces only that day.
"""

from __future__ import annotations

import pyarrow as pa

from opmetrics.measures.daily import DayCubes, assemble_modes, assemble_rsvp, day_cubes
from opmetrics.measures.records import Scope


def compute_rsvp(s: Scope, cubes: DayCubes | None = None) -> pa.Table:
    """The RSVP table; `cubes` defaults to reducing the period's records now."""
    tbl = assemble_rsvp(s, cubes or day_cubes(s)).to_pyarrow()
    return tbl.append_column("period", pa.array([s.period] * tbl.num_rows, pa.string()))


def compute_modes(s: Scope, cubes: DayCubes | None = None, by: str = "mode") -> pa.Table:
    """RSVP's month per mode of operation, or per device type (`daily.assemble_modes`)."""
    tbl = assemble_modes(s, cubes or day_cubes(s), by).to_pyarrow()
    return tbl.append_column("period", pa.array([s.period] * tbl.num_rows, pa.string()))
