"""Compute every measure for a period and store the results with their provenance."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import duckdb
import pyarrow as pa

from opmetrics import __version__
from opmetrics.engine.store import Store
from opmetrics.measures.cpm import compute_cpm
from opmetrics.measures.records import month_bounds
from opmetrics.measures.rsvp import compute_rsvp
from opmetrics.methodology import Methodology

RESULT_TABLES = ("rsvp", "cpm")
# The steps `compute` reports through `on_step`, in order (the CLI sizes its progress bar by them).
STEPS = ("RSVP per SRV and business process", "Code Performance Measures", "Storing results")


@dataclass
class RunInfo:
    run_id: str
    period: str
    methodology_version: str
    methodology_fingerprint: str
    input_fingerprint: str
    contract_version: str
    opmetrics_version: str
    computed_at: dt.datetime
    requests_in_period: int
    requests_included: int
    alerts_in_period: int


def _store_period(store: Store, name: str, period: str, rows: pa.Table) -> None:
    con = store.con
    con.register("_rows", rows)
    try:
        exists = con.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_name = ?", [name]
        ).fetchone()[0]
        if exists:
            con.execute(f'DELETE FROM "{name}" WHERE period = ?', [period])
            con.execute(f'INSERT INTO "{name}" BY NAME SELECT * FROM _rows')
        else:
            con.execute(f'CREATE TABLE "{name}" AS SELECT * FROM _rows')
    finally:
        con.unregister("_rows")


def compute(
    store: Store,
    m: Methodology,
    period: str,
    on_step: Callable[[str], None] | None = None,
) -> RunInfo:
    """Compute RSVP and CPMs for `period` (YYYY-MM), replacing that period's stored results."""
    first, last = month_bounds(period)
    step = on_step or (lambda _s: None)
    con = store.con
    n_req, n_incl = con.execute(
        "SELECT count(*), count(*) FILTER (WHERE report_status IN ?) FROM service_requests "
        "WHERE report_date BETWEEN ? AND ?",
        [m.report_status.included, first, last],
    ).fetchone()
    n_alerts = con.execute(
        "SELECT count(*) FROM alerts WHERE report_date BETWEEN ? AND ?", [first, last]
    ).fetchone()[0]
    if n_req == 0:
        raise ValueError(
            f"no service requests loaded for {period} (UK days {first} to {last}); "
            "run `opmetrics ingest` first"
        )
    ib = store.ibis()
    step(STEPS[0])
    rsvp = compute_rsvp(ib, m, period)
    step(STEPS[1])
    cpm = compute_cpm(ib, m, period, rsvp)
    info = RunInfo(
        run_id=uuid.uuid4().hex[:12],
        period=period,
        methodology_version=m.version,
        methodology_fingerprint=m.fingerprint,
        input_fingerprint=store.input_fingerprint(),
        contract_version=store.contract.version,
        opmetrics_version=__version__,
        computed_at=dt.datetime.now(dt.UTC).replace(tzinfo=None, microsecond=0),
        requests_in_period=int(n_req),
        requests_included=int(n_incl),
        alerts_in_period=int(n_alerts),
    )
    step(STEPS[2])
    con.execute("BEGIN TRANSACTION")
    try:
        _store_period(
            store,
            "rsvp",
            period,
            rsvp.append_column("run_id", pa.array([info.run_id] * rsvp.num_rows, pa.string())),
        )
        _store_period(
            store,
            "cpm",
            period,
            cpm.append_column("run_id", pa.array([info.run_id] * cpm.num_rows, pa.string())),
        )
        _store_period(store, "runs", period, pa.Table.from_pylist([info.__dict__]))
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    return info


def latest_run(store: Store, period: str) -> RunInfo | None:
    try:
        rows = store.rows("SELECT * FROM runs WHERE period = ? ORDER BY computed_at DESC LIMIT 1", [period])
    except duckdb.CatalogException:  # nothing computed yet: no runs table
        return None
    return RunInfo(**rows[0]) if rows else None
