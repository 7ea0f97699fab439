"""Stored day cubes, refreshed only for the days whose inputs changed (issue 11).

Each UK day's cubes (see `measures.daily`) are kept in `day_requests`, `day_rtt` and
`day_alerts`, with the fingerprint of everything they were computed from in `day_state`. A
compute works out each day's fingerprint again (one cheap scan of the lineage columns) and
re-reduces only the days whose fingerprint moved: a late file, a corrections file, or a failure
alert that arrived later for one of the day's requests. A change of methodology, exceptions
register or devices extract changes every day's fingerprint and so rebuilds the month.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import hashlib
import inspect
import re
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from opmetrics.engine.store import Store
from opmetrics.measures import legs
from opmetrics.measures.attempts import fold_days
from opmetrics.measures.attribution import pair_srvs, window_days
from opmetrics.measures.daily import DayCubes, alert_cube, daily_rsvp, request_cube, rtt_histogram
from opmetrics.measures.diagnostics import day_counts
from opmetrics.measures.families import cell_builders
from opmetrics.measures.outcome import Folds
from opmetrics.measures.records import Scope, classified_requests, failure_links

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
    **CELL_TABLES,
}
# What each cube is, as part of every day's fingerprint (`model_fingerprints`): the SQL its
# builder compiles to, so that a store reduced by an opmetrics whose cubes differ reduces its
# days again, with no version number for anyone to remember to raise.
MODELS_TABLE = "cube_models"
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
FOLD_STATE = "day_att1_state"
ALL_FOLD_TABLES = (*FOLD_TABLES, FOLD_STATE)
_OPEN_FINGERPRINT = (
    "SELECT report_date, count(*), sum(hash(party_id, device_id, srv, last_at, attempts, smets, _bits)) "
    "FROM day_att1_open WHERE report_date IN (SELECT unnest(?)) GROUP BY 1"
)
_FOLD_STATE = """
CREATE TABLE IF NOT EXISTS day_att1_state (
    report_date DATE PRIMARY KEY,
    fingerprint VARCHAR NOT NULL,
    carried VARCHAR NOT NULL,
    handed_on VARCHAR NOT NULL
)"""

_STATE = """
CREATE TABLE IF NOT EXISTS day_state (
    report_date DATE PRIMARY KEY,
    fingerprint VARCHAR NOT NULL,
    computed_at TIMESTAMP NOT NULL
)"""


def _per_day(store: Store, sql: str, params: list) -> dict[dt.date, str]:
    return {d: f"{n}:{h}" for d, n, h in store.con.execute(sql, params).fetchall()}


def day_fingerprints(store: Store, s: Scope, global_fp: str) -> dict[dt.date, str]:
    """Fingerprint of each day of the period that has requests or alerts.

    Rows are identified by their lineage (file and row), so a corrected or added record changes
    its day's fingerprint; failure alerts are counted on the day of the request they fail.
    """
    first, last = s.first, s.last
    lineage = "count(*), sum(hash(_file_id, _row))"
    req = _per_day(
        store,
        f"SELECT report_date, {lineage} FROM service_requests WHERE report_date BETWEEN ? AND ? GROUP BY 1",
        [first, last],
    )
    al = _per_day(
        store,
        f"SELECT report_date, {lineage} FROM alerts WHERE report_date BETWEEN ? AND ? GROUP BY 1",
        [first, last],
    )
    links = store.ibis().compile(failure_links(s))  # a table of the run's, when materialised
    linked = _per_day(store, f"SELECT report_date, count(*), sum(hash(_alert)) FROM ({links}) GROUP BY 1", [])
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
        paired = _per_day(
            store,
            f"SELECT report_date, {lineage} FROM service_requests WHERE report_date BETWEEN ? AND ? "
            "AND srv IN (SELECT unnest(?)) GROUP BY 1",
            [first - dt.timedelta(days=pad), last + dt.timedelta(days=pad), srvs],
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


def model_fingerprints(store: Store, s: Scope) -> dict[str, str]:
    """Each declared cube (`CUBE_TABLES`) and ATT1's folds, by a hash of what computes it: the
    cube's compiled SQL, the folds' code. Kept in `cube_models` with the code key they were
    compiled under, and compiled again only when that key moves."""
    key = _code_key(s)
    columns = store.con.execute(
        "SELECT string_agg(table_name || '.' || column_name || ' ' || data_type, ',' ORDER BY ALL) "
        "FROM information_schema.columns WHERE table_name IN (SELECT unnest(?))",
        [list(store.contract.tables)],
    ).fetchall()[0][0]
    key = hashlib.sha256(f"{key}|{columns}".encode()).hexdigest()[:16]
    store.con.execute(
        f"CREATE TABLE IF NOT EXISTS {MODELS_TABLE} (name VARCHAR PRIMARY KEY, fingerprint VARCHAR NOT NULL, "
        "code_key VARCHAR NOT NULL)"
    )
    stored = dict(
        store.con.execute(
            f"SELECT name, fingerprint FROM {MODELS_TABLE} WHERE code_key = ?", [key]
        ).fetchall()
    )
    if set(stored) == {*CUBE_TABLES, "att1_folds"}:
        return stored
    fresh = {name: hashlib.sha256(sql.encode()).hexdigest()[:16] for name, sql in compiled_sql(s).items()}
    fresh["att1_folds"] = hashlib.sha256(inspect.getsource(fold_days).encode()).hexdigest()[:16]
    store.con.execute(f"DELETE FROM {MODELS_TABLE}")
    store.con.executemany(
        f"INSERT INTO {MODELS_TABLE} VALUES (?, ?, ?)", [[n, f, key] for n, f in fresh.items()]
    )
    return fresh


def global_fingerprint(store: Store, s: Scope, exceptions_fp: str) -> str:
    """What every day depends on: what the cubes are, the rules, the exceptions applied, the
    devices extract in force."""
    models = hashlib.sha256(repr(sorted(model_fingerprints(store, s).items())).encode()).hexdigest()[:16]
    dev = store.con.execute(
        "SELECT count(*), sum(hash(_file_id, _row)) FROM devices WHERE extracted_at <= ?", [s.as_of]
    ).fetchall()[0]
    return f"cubes {models}|{s.m.fingerprint}|{exceptions_fp}|{dev[0]}:{dev[1]}"


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
    con = store.con
    con.execute(_STATE)
    want = day_fingerprints(store, s, global_fingerprint(store, s, exceptions_fp))
    have = dict(
        con.execute(
            "SELECT report_date, fingerprint FROM day_state WHERE report_date BETWEEN ? AND ?",
            [s.first, s.last],
        ).fetchall()
    )
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
            con.execute("BEGIN TRANSACTION")
            try:
                _replace_days(store, exprs, sub, stale, gone, {d: want[d] for d in stale})
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
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
    con = store.con
    con.execute(_FOLD_STATE)
    for name, columns in FOLD_TABLES.items():
        con.execute(f"CREATE TABLE IF NOT EXISTS {name} ({columns})")
    have = {
        d: (fp, carried, out)
        for d, fp, carried, out in con.execute(
            "SELECT report_date, fingerprint, carried, handed_on FROM day_att1_state "
            "WHERE report_date BETWEEN ? AND ?",
            [s.first, s.last],
        ).fetchall()
    }
    gone = [d for d in have if d not in want]
    if gone:
        for name in ALL_FOLD_TABLES:
            con.execute(f"DELETE FROM {name} WHERE report_date IN (SELECT unnest(?))", [gone])
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
            requests = dict(
                con.execute(
                    "SELECT report_date, count(*) FROM service_requests "
                    "WHERE report_date BETWEEN ? AND ? GROUP BY 1",
                    [s.first, s.last],
                ).fetchall()
            )
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
    con, backend = store.con, store.ibis()
    scope = days_scope(s, span)
    carried = None
    if previous is not None:
        o = backend.table("day_att1_open")
        carried = o.filter(o.report_date == previous)
    try:
        with scope.unordered():
            ended, still_open, by_srv = fold_days(scope, span, carried)
            con.execute("BEGIN TRANSACTION")
            try:
                for name in ALL_FOLD_TABLES:
                    con.execute(f"DELETE FROM {name} WHERE report_date IN (SELECT unnest(?))", [span])
                backend.insert("day_att1", ended)
                backend.insert("day_att1_open", still_open)
                backend.insert("day_att1_srv", by_srv)
                handed = {d: f"{n}:{h}" for d, n, h in con.execute(_OPEN_FINGERPRINT, [span]).fetchall()}
                rows = []
                for d in span:
                    out = handed.get(d, "0:None")
                    rows.append([d, inputs[d], carried_fp, out])
                    carried_fp = out
                con.executemany("INSERT INTO day_att1_state VALUES (?, ?, ?, ?)", rows)
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
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
    con, backend = store.con, store.ibis()
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None, microsecond=0)

    def replace(name: str, day: str, expr: ir.Table) -> None:
        if store.has_table(name) and backend.table(name).columns != expr.columns:
            # A cube whose columns changed (a newer opmetrics: its compiled SQL moved the model
            # fingerprints, so every day is stale and reduced again) is written anew.
            con.execute(f"DROP TABLE {name}")
        if not store.has_table(name):
            # Through Ibis, not compiled SQL: an expression may read in-memory tables (the
            # rules per combination), which Ibis registers as it runs it.
            backend.create_table(name, schema=expr.schema())
        with _month_total_moved(store, name, sub.period, stale, gone):
            con.execute(f"DELETE FROM {name} WHERE {day} IN (SELECT unnest(?))", [stale + gone])
            if stale:
                backend.insert(name, expr)

    for name, expr in exprs.items():
        replace(name, "report_date", expr)
    # The daily rows are assembled from the cubes as just stored.
    replace(DAILY_TABLE, "day", daily_rsvp(sub, stored_cubes(store)))
    con.execute("DELETE FROM day_state WHERE report_date IN (SELECT unnest(?))", [stale + gone])
    state = [[d, fp, now] for d, fp in fingerprints.items()]
    con.executemany("INSERT INTO day_state VALUES (?, ?, ?)", state)


_MONTH_TABLES = [month for month, _ in MONTH_TOTALS.values()]


@contextlib.contextmanager
def _month_total_moved(
    store: Store, name: str, period: str, stale: list[dt.date], gone: list[dt.date]
) -> Iterator[None]:
    """Around replacing days of day cube `name`: its month total (`MONTH_TOTALS`), if it has
    one, moved by the change, the days' old counts out and their new ones in; a value whose
    count falls to 0 goes. Only the values the days hold are touched (rewriting the month's
    rows cost as much as merging its days). One MERGE of old and new counts together: the old
    ones are kept aside, negated, before the days are replaced."""
    if name not in MONTH_TOTALS:
        yield
        return
    month, keys = MONTH_TOTALS[name]
    con, cols = store.con, ", ".join(keys)
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE _old_counts AS SELECT {cols}, -n AS n FROM {name} "
        "WHERE report_date IN (SELECT unnest(?))",
        [stale + gone],
    )
    yield
    if not store.has_table(month):
        con.execute(f"CREATE TABLE {month} AS SELECT ''::VARCHAR AS period, {cols}, n FROM {name} LIMIT 0")
    same = " AND ".join(f"m.{k} IS NOT DISTINCT FROM d.{k}" for k in keys)
    con.execute(
        f"""MERGE INTO {month} m USING (
            SELECT {cols}, sum(n)::BIGINT AS n FROM (
                SELECT {cols}, n FROM _old_counts
                UNION ALL SELECT {cols}, n FROM {name} WHERE report_date IN (SELECT unnest(?))
            ) GROUP BY ALL HAVING sum(n) <> 0
        ) d ON m.period = ? AND {same}
        WHEN MATCHED AND m.n + d.n = 0 THEN DELETE
        WHEN MATCHED THEN UPDATE SET n = m.n + d.n
        WHEN NOT MATCHED THEN INSERT VALUES (?, {", ".join(f"d.{k}" for k in keys)}, d.n)""",
        [stale, period, period],
    )
    con.execute("DROP TABLE _old_counts")


def clear(store: Store) -> None:
    """Forget every stored cube: the next compute reduces every day again."""
    for name in [*CUBE_TABLES, DAILY_TABLE, *_MONTH_TABLES, *ALL_FOLD_TABLES]:
        store.con.execute(f"DROP TABLE IF EXISTS {name}")
    store.con.execute(_STATE)
    store.con.execute("DELETE FROM day_state")


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
    )
