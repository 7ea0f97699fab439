"""Stored day cubes, refreshed only for the days whose inputs changed (issue 11).

Each UK day's cubes (see `measures.daily`) are kept in `day_requests`, `day_rtt` and
`day_alerts`, with the fingerprint of everything they were computed from in `day_state`. A
compute works out each day's fingerprint again (one cheap scan of the lineage columns) and
re-reduces only the days whose fingerprint moved: a late file, a corrections file, or a failure
alert that arrived later for one of the day's requests. A change of methodology, exceptions
register or devices extract changes every day's fingerprint and so rebuilds the month.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import inspect
import json
import os
import re
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from opmetrics.engine.cubes import DAY_STATE, FOLD_STATE, DayStore
from opmetrics.engine.store import Store
from opmetrics.measures import drill, legs
from opmetrics.measures.attempts import fold_days
from opmetrics.measures.attribution import pair_srvs, window_days
from opmetrics.measures.daily import DayCubes, alert_cube, daily_rsvp, request_cube, rtt_histogram
from opmetrics.measures.diagnostics import day_counts
from opmetrics.measures.families import cell_builders
from opmetrics.measures.outcome import Folds
from opmetrics.measures.records import Scope, classified_requests, failure_links, fate_cube

if TYPE_CHECKING:
    import ibis.expr.types as ir

# The outcome measures' day cells (`outcome.day_cells`), e.g. day_cos, day_topups.
CELL_TABLES = cell_builders()
CUBE_TABLES = {
    "day_requests": request_cube,
    "day_rtt": rtt_histogram,
    "day_alerts": alert_cube,
    "day_diagnostics": day_counts,
    "day_legs": legs.day_sums,
    "day_legs_ms": legs.day_histogram,
    "day_fates": fate_cube,
    "day_drill": drill.drill_cube,
    "day_hourly": drill.hourly_cube,
    **CELL_TABLES,
}
# What each cube is, as part of every day's fingerprint (`model_fingerprints`): the SQL its
# builder compiles to, so that a store reduced by an opmetrics whose cubes differ reduces its
# days again, with no version number for anyone to remember to raise.
# A fixed scope to compile the builders in: one day of a month no data has, so the SQL depends
# on the builders, the methodology and the input tables' columns only.
_CANON_PERIOD, _CANON_DAY = "2000-01", dt.date(2000, 1, 1)
# Ibis names each in-memory table (e.g. the TRT rules) afresh per compilation; its content comes
# from the methodology, which the day fingerprints hold already.
_MEMTABLE = re.compile(r"ibis_\w+?_memtable_[a-z0-9]+")
# Ibis lists the columns a projection drops in set order, which varies from one process to the next.
_EXCLUDE = re.compile(r"EXCLUDE \(([^)]*)\)")


def _canonical(sql: str) -> str:
    """Compiled SQL with what varies between compilations of the same expression made alike."""
    sql = _MEMTABLE.sub("memtable", sql)
    return _EXCLUDE.sub(lambda m: "EXCLUDE (" + ", ".join(sorted(m.group(1).split(", "))) + ")", sql)


# Derived from the cubes of the same day: RSVP's daily rows (so a month-end run only merges).
DAILY_TABLE = "day_rsvp"
# Histograms whose month is also kept merged, per period (`_month_total_moved`): a count per
# whole millisecond repeats most values day after day, so the month's merged rows are several
# times fewer than its days' rows, and month-end medians read those. Keys, besides the count n.
MONTH_TOTALS = {
    "day_rtt": ("month_rtt", ["scope", "key", "segment", "smets", "rtt_ms"]),
    "day_legs_ms": ("month_legs_ms", ["process_id", "breakdown", "key", "leg", "ms"]),
}

# ATT1's chains of resends, folded day by day (`attempts.fold_days`): the chains that ended on
# each day, per process and bucket; those still open at its end; and what each day was folded
# from (its inputs' fingerprint and that of the chains carried in) and handed on.
FOLD_TABLES = {
    "day_att1": "report_date DATE, process_id VARCHAR, b VARCHAR, n BIGINT",
    "day_att1_open": (
        "report_date DATE, party_id VARCHAR, device_id VARCHAR, srv VARCHAR, last_at TIMESTAMP, "
        "attempts BIGINT, smets BIGINT, _bits BIGINT"
    ),
    "day_att1_srv": "report_date DATE, srv VARCHAR, b VARCHAR, n BIGINT",
}
# Consecutive days fold together while their requests add up to at most this many (a day with
# more folds alone). Chaining grows faster than its rows, so neither a whole month at once nor
# one day at a time is quickest (docs/performance.md, Design choices measured).
FOLD_SPAN_REQUESTS = 4_000_000
# The fold tables and the table of what each day was folded from: written and cleared together.
ALL_FOLD_TABLES = (*FOLD_TABLES, FOLD_STATE)


def day_fingerprints(store: Store, s: Scope, global_fp: str) -> dict[dt.date, str]:
    """Fingerprint of each day of the period that has requests or alerts.

    Rows are identified by their lineage (file and row), so a corrected or added record changes
    its day's fingerprint; failure alerts are counted on the day of the request they fail.
    """
    first, last, days_store = s.first, s.last, DayStore(store)
    req = days_store.lineage("service_requests", first, last)
    al = days_store.lineage("alerts", first, last)
    linked = days_store.linked(
        store.ibis().compile(failure_links(s))
    )  # a table of the run's, when materialised
    days = sorted(set(req) | set(al))
    parts = {d: f"{global_fp}|{req.get(d, '-')}|{al.get(d, '-')}|{linked.get(d, '-')}" for d in days}
    if not s.m.counting.party_retries_count_separately:
        # A chain of resends can cross midnight: every day depends on the whole month.
        whole = "|".join(parts[d] for d in days)
        parts = {d: whole for d in days}
    elif pad := window_days(s):
        # A timed pair (security SRVs within the 6.17 TRT) can cross midnight: a day depends on
        # its neighbours' requests of the pairs' SRVs, as far as the window reaches.
        srvs = pair_srvs(s)
        paired = days_store.lineage(
            "service_requests", first - dt.timedelta(days=pad), last + dt.timedelta(days=pad), srvs
        )
        near = {d: [d + dt.timedelta(days=k) for k in range(-pad, pad + 1) if k] for d in days}
        parts = {d: parts[d] + "|" + "|".join(paired.get(x, "-") for x in near[d]) for d in days}
    return {d: hashlib.sha256(p.encode()).hexdigest()[:16] for d, p in parts.items()}


def _code_key(s: Scope) -> str:
    """What the compiled cubes can depend on besides the input columns: the measure code, the
    methodology and the versions of Ibis and DuckDB. While it holds, the stored model
    fingerprints are reused instead of compiling every builder again (seconds)."""
    import duckdb
    import ibis

    from opmetrics import measures

    code = hashlib.sha256()
    for path in sorted(Path(measures.__file__).parent.glob("*.py")):
        code.update(path.read_bytes())
    return f"{code.hexdigest()[:16]}|{s.m.fingerprint}|ibis {ibis.__version__}|duckdb {duckdb.__version__}"


def compiled_sql(s: Scope) -> dict[str, str]:
    """Every cube's SQL, compiled in a fixed scope, memory tables named alike."""
    import ibis

    canon = Scope(s.con, s.m, _CANON_PERIOD, dt.datetime(2000, 2, 1), [], days=(_CANON_DAY,))
    return {name: _canonical(ibis.to_sql(build(canon))) for name, build in CUBE_TABLES.items()}


# What a day's fingerprint covers of the inputs: its own requests and alerts (their lineage) and
# the devices extract in force. A cube that read any other table (incidents, say) would not be
# reduced again when that table changed: every cube must read these only (`cube_inputs`).
DAY_INPUTS = frozenset({"service_requests", "alerts", "devices"})
_TABLE_REF = re.compile(r'\b(?:FROM|JOIN)\s+"?([A-Za-z_]\w*)"?')
_CTE_NAME = re.compile(r'"?([A-Za-z_]\w*)"?\s+AS\s+\(')


def cube_inputs(s: Scope) -> dict[str, set[str]]:
    """The stored tables each cube reads, from its compiled SQL (the methodology's in-memory
    tables aside): what it depends on, derived from what computes it."""
    out = {}
    for name, sql in compiled_sql(s).items():
        out[name] = set(_TABLE_REF.findall(sql)) - set(_CTE_NAME.findall(sql)) - {"memtable"}
    return out


# Fingerprints compiled in this process, by key: a second store computed under the same code
# (a test suite's many small stores, a what-if's two scratch stores) compiles nothing again.
_COMPILED: dict[str, dict[str, str]] = {}


def model_fingerprints(store: Store, s: Scope) -> dict[str, str]:
    """Each declared cube (`CUBE_TABLES`) and ATT1's folds, by a hash of what computes it: the
    cube's compiled SQL, the folds' code. Kept in `cube_models` with the code key they were
    compiled under, and compiled again only when that key moves."""
    days_store = DayStore(store)
    key = hashlib.sha256(f"{_code_key(s)}|{days_store.input_columns()}".encode()).hexdigest()[:16]
    models = {*CUBE_TABLES, "att1_folds"}
    stored = days_store.models(key)
    if set(stored) == models:
        return stored
    fresh = _COMPILED.get(key) or _cached_models(key)
    if set(fresh) != models:  # not compiled in this process, nor by another under this key
        fresh = {name: hashlib.sha256(sql.encode()).hexdigest()[:16] for name, sql in compiled_sql(s).items()}
        fresh["att1_folds"] = hashlib.sha256(inspect.getsource(fold_days).encode()).hexdigest()[:16]
        _save_cached_models(key, fresh)
    _COMPILED[key] = fresh
    days_store.save_models(key, fresh)
    return dict(fresh)


def models_cache_dir() -> Path:
    """Where model fingerprints compiled by any process are kept, by code key: a new store (a
    demo, a test's, a CLI call's) then compiles nothing (about 6 s). `OPMETRICS_CACHE_DIR`,
    else the user's cache directory."""
    root = os.environ.get("OPMETRICS_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "opmetrics"
    )
    return Path(root) / "cube_models"


def _cache_file(key: str) -> Path:
    return models_cache_dir() / f"{hashlib.sha256(key.encode()).hexdigest()[:32]}.json"


def _cached_models(key: str) -> dict[str, str]:
    """The fingerprints kept under `key`, or none (missing, unreadable, or kept under another key)."""
    try:
        got = json.loads(_cache_file(key).read_text("utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(got, dict) or got.get("key") != key or not isinstance(got.get("models"), dict):
        return {}
    return {str(k): str(v) for k, v in got["models"].items()}


def _save_cached_models(key: str, fingerprints: dict[str, str]) -> None:
    """Keep the fingerprints for other processes; a cache that cannot be written is no error."""
    path = _cache_file(key)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"key": key, "models": fingerprints}, sort_keys=True), "utf-8")
        tmp.replace(path)
    except OSError:
        pass


def global_fingerprint(store: Store, s: Scope, exceptions_fp: str) -> str:
    """What every day depends on: what the cubes are, the rules, the exceptions applied, the
    devices extract in force."""
    models = hashlib.sha256(repr(sorted(model_fingerprints(store, s).items())).encode()).hexdigest()[:16]
    devices = DayStore(store).devices_in_force(s.as_of)
    return f"cubes {models}|{s.m.fingerprint}|{exceptions_fp}|{devices}"


class Refreshed(NamedTuple):
    """What a refresh redid: the days whose cubes were reduced again, and the days whose ATT1
    fold was redone (a changed day, and each day after it whose carried chains changed)."""

    reduced: list[dt.date]
    refolded: list[dt.date]


def refresh(store: Store, s: Scope, exceptions_fp: str) -> Refreshed:
    """Bring the stored cubes of the period's days up to date, then ATT1's day folds
    (`_refresh_folds`).

    The days are reduced in a scope of their own (`days_scope`) even when every day of the
    period is, as on a first compute: no classified copy of the records is written, since the
    measures that follow read the cubes and cells, not the records, and writing the copy for
    the cubes and folds to share cost more than it saved."""
    days_store = DayStore(store)
    want = day_fingerprints(store, s, global_fingerprint(store, s, exceptions_fp))
    have = days_store.day_state(s.first, s.last)
    stale = sorted(d for d, fp in want.items() if have.get(d) != fp)
    gone = sorted(d for d in have if d not in want)
    complete = all(store.has_table(n) for n in [*CUBE_TABLES, DAILY_TABLE, *_MONTH_TABLES, *ALL_FOLD_TABLES])
    if complete and not stale and not gone:
        # A fold may have been left undone (an interrupted run).
        return Refreshed([], _refresh_folds(store, s, want))
    if not complete:
        # A store from an older opmetrics (or a half-set): start the cubes afresh for every period.
        clear(store)
        stale, gone = sorted(want), []
    sub = days_scope(s, stale)
    try:
        # Building the expressions materialises the shared intermediates, outside the transaction
        # that replaces the days' cubes. A cube's rows have no order, so DuckDB need not keep
        # one through the joins, which lets them spill.
        with sub.unordered():
            exprs = {name: build(sub) for name, build in CUBE_TABLES.items()}
            with store.transaction():
                _replace_days(store, exprs, sub, stale, gone, {d: want[d] for d in stale})
    finally:
        sub.release()
    return Refreshed(stale, _refresh_folds(store, s, want))


def days_scope(s: Scope, days: list[dt.date]) -> Scope:
    """A scope of some of the period's days whose requests are classified as each cube groups
    them, with no classified copy written: each cube then reads only the columns it uses. At
    0.3 of a national day, writing the copy took 4.9 s and the cubes' two passes over it 5.6 s;
    classifying as they group, the two passes take 3.5 s."""
    sub = dataclasses.replace(s, days=tuple(days), _cache={}, _tables={})
    sub.keep("failure_links", failure_links(s))  # the period's, as the fingerprints read them
    sub.keep("classified_requests", classified_requests(dataclasses.replace(sub, materialise=False)))
    return sub


def _refresh_folds(store: Store, s: Scope, want: dict[dt.date, str]) -> list[dt.date]:
    """Fold ATT1's chains of resends day by day, from the first day whose inputs or carried
    chains changed; return the days folded.

    A day's fold is current while its inputs' fingerprint and the fingerprint of the chains
    carried into it are those it was folded with: a late or corrected day folds again, and so
    does each day after it until the chains it hands on are the same as before. Consecutive
    days whose inputs changed fold together, up to FOLD_SPAN_REQUESTS requests at a time."""
    days_store = DayStore(store)
    days_store.ensure_tables(FOLD_TABLES)
    have = days_store.fold_state(s.first, s.last)
    gone = [d for d in have if d not in want]
    if gone:
        days_store.delete_days(ALL_FOLD_TABLES, gone)
    days = sorted(want)
    requests: dict[dt.date, int] | None = None  # per day, counted once a day needs folding
    folded: list[dt.date] = []
    carried_fp, previous = "", None  # a period's first day carries no chain
    i = 0
    while i < len(days):
        if have.get(days[i], ("", "", ""))[:2] == (want[days[i]], carried_fp):
            carried_fp, previous = have[days[i]][2], days[i]
            i += 1
            continue
        if requests is None:
            requests = days_store.requests_per_day(s.first, s.last)
        j, rows = i + 1, requests.get(days[i], 0)
        while j < len(days) and have.get(days[j], ("",))[0] != want[days[j]]:
            more = requests.get(days[j], 0)  # a day without requests never starts a new span
            if more and rows + more > FOLD_SPAN_REQUESTS:
                break
            rows, j = rows + more, j + 1
        span = days[i:j]
        carried_fp = _fold(store, s, span, previous, {d: want[d] for d in span}, carried_fp)
        folded += span
        previous, i = span[-1], j
    return folded


def _fold(
    store: Store,
    s: Scope,
    span: list[dt.date],
    previous: dt.date | None,
    inputs: dict[dt.date, str],
    carried_fp: str,
) -> str:
    """Fold `span` (consecutive days) on the chains open at the end of `previous`, replacing
    their stored folds; return the fingerprint of the chains the span's last day hands on."""
    backend, days_store = store.ibis(), DayStore(store)
    scope = days_scope(s, span)
    carried = None
    if previous is not None:
        o = backend.table("day_att1_open")
        carried = o.filter(o.report_date == previous)
    try:
        with scope.unordered():
            ended, still_open, by_srv = fold_days(scope, span, carried)
            with store.transaction():
                days_store.delete_days(ALL_FOLD_TABLES, span)
                days_store.insert("day_att1", ended)
                days_store.insert("day_att1_open", still_open)
                days_store.insert("day_att1_srv", by_srv)
                carried_fp = days_store.record_folds(span, inputs, carried_fp)
    finally:
        scope.release()
    return carried_fp


def _replace_days(
    store: Store,
    exprs: dict[str, ir.Table],
    sub: Scope,
    stale: list[dt.date],
    gone: list[dt.date],
    fingerprints: dict[dt.date, str],
) -> None:
    """Within the caller's transaction: the stale and vanished days' cubes, daily RSVP rows and
    state rows out, the stale days' new ones in."""
    days_store = DayStore(store)

    def replace(name: str, day: str, expr: ir.Table) -> None:
        month_total = None
        if name in MONTH_TOTALS:
            month, keys = MONTH_TOTALS[name]
            month_total = (month, keys, sub.period)
        days_store.replace_days(name, day, expr, stale, gone, month_total)

    for name, expr in exprs.items():
        replace(name, "report_date", expr)
    # The daily rows are assembled from the cubes as just stored.
    replace(DAILY_TABLE, "day", daily_rsvp(sub, stored_cubes(store)))
    days_store.set_day_state(stale + gone, fingerprints)


_MONTH_TABLES = [month for month, _ in MONTH_TOTALS.values()]


def clear(store: Store) -> None:
    """Forget every stored cube: the next compute reduces every day again."""
    days_store = DayStore(store)
    days_store.drop([*CUBE_TABLES, DAILY_TABLE, *_MONTH_TABLES, *ALL_FOLD_TABLES, DAY_STATE])
    days_store.ensure(DAY_STATE)


def stored_cubes(store: Store) -> DayCubes:
    """The stored cubes as Ibis tables (call `refresh` first)."""
    b = store.ibis()
    daily = b.table(DAILY_TABLE) if store.has_table(DAILY_TABLE) else None
    return DayCubes(
        b.table("day_requests"),
        b.table("day_rtt"),
        b.table("day_alerts"),
        daily,
        b.table("day_diagnostics"),
        b.table("day_legs"),
        b.table("day_legs_ms"),
        _stored_folds(store),
        {name: b.table(name) for name in CELL_TABLES},
        {name: b.table(month) for name, (month, _) in MONTH_TOTALS.items() if store.has_table(month)},
        b.table("day_fates"),
        {name: b.table(name) for name in ("day_drill", "day_hourly")},
    )


def _stored_folds(store: Store) -> Folds | None:
    if not all(store.has_table(n) for n in ALL_FOLD_TABLES):
        return None  # the cubes are being written, before the first fold
    b = store.ibis()
    return Folds(b.table("day_att1"), b.table("day_att1_open"), b.table(FOLD_STATE), b.table("day_att1_srv"))


def reduced_cubes(s: Scope) -> DayCubes:
    """Every cube of the scope's days, reduced now and kept for the run (Spark, which holds no
    state between runs)."""
    c = {name: s.cached(name, partial(build, s)) for name, build in CUBE_TABLES.items()}
    return DayCubes(
        c["day_requests"],
        c["day_rtt"],
        c["day_alerts"],
        None,
        c["day_diagnostics"],
        c["day_legs"],
        c["day_legs_ms"],
        None,
        {name: c[name] for name in CELL_TABLES},
        {},
        c["day_fates"],
    )
