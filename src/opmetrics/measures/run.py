"""Compute every measure for a period and store the results with their provenance."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa

from opmetrics import __version__
from opmetrics.engine import history as earlier
from opmetrics.engine import pmel, results
from opmetrics.engine.backends import drop_scratch
from opmetrics.engine.store import Store
from opmetrics.ingest.load import DUPLICATE_DETAIL
from opmetrics.measures import models
from opmetrics.measures.availability import compute_availability, previous_period
from opmetrics.measures.benchmarks import compute_benchmarks
from opmetrics.measures.context import earlier_figures, run_context, with_period
from opmetrics.measures.cpm import compute_cpm
from opmetrics.measures.daily import DayCubes
from opmetrics.measures.diagnostics import compute_diagnostics
from opmetrics.measures.diagnostics import counts as diagnostic_counts
from opmetrics.measures.drill import drill_tables
from opmetrics.measures.families import compute_outcomes
from opmetrics.measures.incremental import reduced_cubes, refresh, stored_cubes
from opmetrics.measures.legs import compute_legs
from opmetrics.measures.outcome import Context
from opmetrics.measures.records import (
    INCLUDED_RULE,
    Scope,
    fate_counts,
    month_bounds,
    uk_midnight_utc,
)
from opmetrics.measures.rsvp import compute_modes, compute_rsvp
from opmetrics.methodology import Methodology

# The steps `compute` reports through `on_step`, in order (the CLI sizes its progress bar by them).
STEPS = (
    "Day cubes (new or changed days only)",
    "RSVP per SRV and business process",
    "Outcome measures",
    "Service availability and reliability",
    "Code Performance Measures",
    "Storing results",
)


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
    as_of: dt.datetime
    pmel_version: str
    pmel_applied: str
    days_reduced: int = 0
    days_refolded: int = 0  # ATT1's day folds redone (see `incremental.refresh`)
    # JSON: each exclusion rule (records.inclusion_rule) and how many requests it excluded
    requests_excluded: str | None = None

    def exclusions(self) -> dict[str, int]:
        """The requests of the period each exclusion rule left out (empty for runs before 2027.1)."""
        return json.loads(self.requests_excluded) if self.requests_excluded else {}


# RunInfo's fields that say how a run went on this machine, not what its figures rest on: two
# runs over the same inputs and methodology differ in them (a resumed run finds days done).
PER_RUN = ("computed_at", "days_reduced", "days_refolded")


def store_results(store: Store, period: str, run_id: str, tables: dict[str, pa.Table]) -> None:
    """Replace the period's rows of each result table with `tables`, labelled with the run id
    (inside the caller's transaction). Results computed on Spark are stored the same way."""
    # Every table checked against its declaration before any is written.
    declared = {name: models.conform(name, t) for name, t in tables.items()}
    for name, t in declared.items():
        results.write_period(
            store, name, period, t.append_column("run_id", pa.array([run_id] * t.num_rows, pa.string()))
        )


def default_as_of(store: Store, period: str, tz: str = "Europe/London") -> dt.datetime:
    """Report time: the end of the data (latest request received), or now if that is later
    than now, but never before the end of the period. Decides which SLAs have elapsed."""
    latest = results.latest_received(store)
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None, microsecond=0)
    period_end = uk_midnight_utc(month_bounds(period)[1] + dt.timedelta(days=1), tz)
    at = min(latest, now) if latest else now
    return max(at, period_end)


def input_rows(store: Store) -> dict[str, int]:
    return {t: store.count(t) for t in store.contract.tables}


def history(store: Store, period: str) -> dict[tuple[str, str, str], dict[str, str]]:
    """CPM statuses of earlier periods (their runs, else published values), for consecutive
    months below target."""
    return history_of(earlier.cpm_rows(store, "period < ?", [period]).to_pylist(), period)


def history_of(rows: Iterable[dict[str, Any]], period: str) -> dict[tuple[str, str, str], dict[str, str]]:
    """Published CPM rows (cpm, key, segment, period, status) of periods before `period`, per
    (cpm, key, segment): the form `compute_cpm` counts months below target from."""
    out: dict[tuple[str, str, str], dict[str, str]] = {}
    for r in rows:
        if r["period"] < period:
            out.setdefault((r["cpm"], r["key"], r["segment"]), {})[r["period"]] = r["status"]
    return out


def previous_availability(store: Store, period: str) -> dict[tuple[str, str, str, str], float]:
    """Last period's availability per (view, subject, region, band), monthly rows only: its
    run's, else the published values."""
    rows = earlier.availability_rows(store, "period = ?", [previous_period(period)]).to_pylist()
    return previous_availability_of(rows, period)


def previous_availability_of(
    rows: Iterable[dict[str, Any]], period: str
) -> dict[tuple[str, str, str, str], float]:
    """Published availability rows of the month before `period`, monthly rows only, per
    (view, subject, region, band)."""
    last = previous_period(period)
    return {
        (r["view"], r["subject"], r["region"], r["band"]): r["pct"]
        for r in rows
        if r["period"] == last and r.get("day") is None
    }


def measure_suite(
    scope: Scope,
    cubes: DayCubes,
    counts: dict[str, int],
    history: dict[tuple[str, str, str], dict[str, str]],
    previous_availability: dict[tuple[str, str, str, str], float],
    on_step: Callable[[int], None] | None = None,
) -> dict[str, pa.Table]:
    """Every measure family for the scope, on whichever Ibis backend the scope holds (DuckDB or
    Spark); every table carries its period."""
    step = on_step or (lambda _i: None)
    step(1)
    rsvp = compute_rsvp(scope, cubes)
    modes = compute_modes(scope, cubes)
    devices = compute_modes(scope, cubes, "device_type")
    # Diagnostics, benchmarks and legs merge their own day cubes. Their results are grouped or
    # explicitly sorted, so DuckDB need not keep insertion order, which lets a month's merge spill.
    with scope.unordered():
        by_party = diagnostic_counts(scope, cubes.diagnostics)
        legs = compute_legs(scope, cubes.legs, *cubes.month_of(scope, "day_legs_ms", cubes.legs_ms))
    step(2)
    outcomes = compute_outcomes(scope, Context(rsvp, counts, cubes.attempts, cubes.outcomes))
    step(3)
    avail = compute_availability(scope, counts, previous_availability)
    step(4)
    cpm = compute_cpm(scope, rsvp, counts, history, avail, cubes)
    # rsvp, cpm, outcomes and availability carry their period already; the rest get it here.
    tables = {
        "rsvp": rsvp,
        "rsvp_modes": modes,
        "rsvp_devices": devices,
        "cpm": cpm,
        "outcomes": outcomes,
        "availability": avail,
    }
    return tables | {
        name: t.append_column("period", pa.array([scope.period] * t.num_rows, pa.string()))
        for name, t in (
            ("diagnostics", compute_diagnostics(by_party)),
            ("benchmarks", compute_benchmarks(by_party, scope.m.league)),
            ("legs", legs),
        )
    }


def compute(
    store: Store,
    m: Methodology,
    period: str,
    on_step: Callable[[str], None] | None = None,
    as_of: dt.datetime | None = None,
    materialise: bool = True,
) -> RunInfo:
    """Compute RSVP, outcome measures and CPMs for `period` (YYYY-MM), replacing that period's
    stored results. `as_of` is the report time (naive UTC); see `default_as_of`.
    `materialise=False` re-evaluates shared intermediates in every measure (same results)."""
    first, last = month_bounds(period)
    step = on_step or (lambda _s: None)
    n_req = results.records_between(store, "service_requests", first, last)
    n_alerts = results.records_between(store, "alerts", first, last)
    if n_req == 0:
        raise ValueError(
            f"no service requests loaded for {period} (UK days {first} to {last}); "
            "run `opmetrics ingest` first"
        )
    register_version = pmel.verify(store)
    scope = Scope(
        con=store.ibis(),
        m=m,
        period=period,
        as_of=as_of or default_as_of(store, period, m.report_timezone),
        exceptions=pmel.active(store),
        materialise=materialise,
        scratch=not store.read_only,
    )
    drop_scratch(store.con)
    counts = input_rows(store)
    applied = ", ".join(e.exception_id for e in scope.exceptions)
    try:
        step(STEPS[0])
        refreshed = refresh(store, scope, f"{register_version}|{applied}")
        cubes = stored_cubes(store)
        tables = measure_suite(
            scope,
            cubes,
            counts,
            history(store, period),
            previous_availability(store, period),
            lambda i: step(STEPS[i]),
        )
        fates = fate_counts(scope, cubes.fates)  # the same rule every measure includes a request by
        tables.update(run_context(store, period, DUPLICATE_DETAIL))  # what the pack shows beside
        tables.update(with_period(earlier_figures(store, period), period))  # earlier months shown
        tables.update(with_period(drill_tables(scope, cubes.drill), period))  # what the dashboard groups
    finally:
        scope.release()
    input_fp = store.input_fingerprint()
    # The same inputs, rules and report time give the same run id, so re-computing changes no
    # byte of the datafiles (issue 6: deterministic output).
    identity = "|".join(
        [m.fingerprint, input_fp, period, scope.as_of.isoformat(), register_version, applied, __version__]
    )
    info = RunInfo(
        run_id=hashlib.sha256(identity.encode()).hexdigest()[:12],
        period=period,
        methodology_version=m.version,
        methodology_fingerprint=m.fingerprint,
        input_fingerprint=input_fp,
        contract_version=store.contract.version,
        opmetrics_version=__version__,
        computed_at=dt.datetime.now(dt.UTC).replace(tzinfo=None, microsecond=0),
        requests_in_period=int(n_req),
        requests_included=fates.get(INCLUDED_RULE, 0),
        alerts_in_period=int(n_alerts),
        as_of=scope.as_of,
        pmel_version=register_version,
        pmel_applied=applied,
        days_reduced=len(refreshed.reduced),
        days_refolded=len(refreshed.refolded),
        requests_excluded=json.dumps({k: v for k, v in fates.items() if k != INCLUDED_RULE}),
    )
    step(STEPS[5])
    with store.transaction():
        store_results(store, period, info.run_id, tables)
        results.write_period(store, "runs", period, pa.Table.from_pylist([info.__dict__]))
    return info


def latest_run(store: Store, period: str) -> RunInfo | None:
    row = results.latest_run(store, period)
    return RunInfo(**row) if row else None


class StaleRunError(ValueError):
    """The stored results no longer rest on the store's inputs (issue 32, item 2)."""


def staleness(store: Store, run: RunInfo) -> list[str]:
    """Why `run` no longer describes the store: its inputs or its exceptions register changed
    since it was computed (e.g. `ingest --corrections` without `compute`). Empty when current."""
    return stale_runs(store, [run]).get(run.period, [])


def stale_runs(store: Store, runs: Iterable[RunInfo]) -> dict[str, list[str]]:
    """`staleness` of several runs, by period (only the stale ones), the store's inputs and
    register fingerprinted once for all of them."""
    inputs, register = store.input_fingerprint(), pmel.verify(store)
    out = {}
    for run in runs:
        why = []
        if inputs != run.input_fingerprint:
            why.append("the input data changed (files loaded or corrected) since it was computed")
        if register != run.pmel_version:
            why.append("the exceptions register (PMEL) changed since it was computed")
        if why:
            out[run.period] = why
    return out


def require_current(store: Store, run: RunInfo) -> None:
    """Refuse to present a run whose inputs have changed: its figures would be published as a
    fresh issue while describing other data."""
    why = staleness(store, run)
    if why:
        raise StaleRunError(
            f"the results for {run.period} (run {run.run_id}) are stale: {'; '.join(why)}. "
            f"Run `opmetrics compute --period {run.period}` first, or pass --compute to do both"
        )


def compute_spark(
    root: str | Path, m: Methodology, period: str, as_of: dt.datetime, spark: Any
) -> dict[str, pa.Table]:
    """Every measure for `period` on Apache Spark, over the Parquet layout written by
    `engine.spark.export_parquet`. The day cubes are reduced for the whole period (Spark holds
    no state between runs). Earlier periods' published CPM statuses and availability come from
    the layout (`_results/`), as `compute` reads them from the store: months below target and
    the previous service level are the same on both engines."""
    from opmetrics.engine import spark as sp

    cpm_rows, availability_rows = sp.published(root)
    con = sp.connect(root, spark)
    scope = Scope(con, m, period, as_of, sp.exceptions(root), materialise=True)
    try:
        return measure_suite(
            scope,
            reduced_cubes(scope),
            sp.input_rows(root),
            history_of(cpm_rows, period),
            previous_availability_of(availability_rows, period),
        )
    finally:
        scope.release()
