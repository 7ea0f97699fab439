"""Load input files into the store: whole file in one transaction, bad rows to quarantine.

A file is identified by its sha256, so loading it again is a no-op. Rows are validated into a
staging table (DuckDB reads a Parquet file itself; a CSV file comes in Arrow batches);
duplicates (within the file, or against rows already loaded) are found in one pass at the end;
then accepted rows and quarantine records are written and the transaction commits. Any failure
rolls back the whole file.

A *corrections* file is the one way to change a record already loaded: each of its rows must
match a loaded record by key; the old record moves to `superseded` (with the file and row that
replaced it) and the new one takes its place. Nothing is changed in place without that trace.
"""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import hashlib
import io
import itertools
import os
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from opmetrics.engine.store import Store
from opmetrics.ingest.validate import BLANK, lit, native_ok, normalise, q, validation_sql
from opmetrics.methodology.contract import Table

# DuckDB's memory limit while a file loads (its staged rows and duplicate check spill beyond
# it): lower than the store's, at the same speed (docs/performance.md, Design choices measured).
INGEST_MEMORY_LIMIT = os.environ.get("OPMETRICS_INGEST_MEMORY_LIMIT", "1GB")
SUFFIXES = (".csv", ".csv.gz", ".parquet")
# The part of a duplicate-key reason that names the other row; stripped when summarising.
DUPLICATE_DETAIL = ": (same as|already loaded).*$"


class IngestError(Exception):
    """A file that cannot be loaded at all; nothing from it was stored."""


@dataclass
class LoadResult:
    path: Path
    table: str
    status: str  # "loaded" or "already loaded"
    rows_read: int = 0
    accepted: int = 0
    quarantined: int = 0
    file_id: int | None = None
    reasons: Counter[str] = field(default_factory=Counter)


def table_for(path: Path, tables: list[str]) -> str | None:
    """The contract table a file belongs to, from its name or any parent folder name."""
    for part in [path.name, *(p.name for p in path.parents)]:
        for t in sorted(tables, key=len, reverse=True):
            if part.startswith(t):
                return t
    return None


def find_files(paths: list[Path], suffixes: tuple[str, ...] = SUFFIXES) -> list[Path]:
    """The files named, and those under the folders named, that end in one of `suffixes` in any
    case (`.XML` as `.xml`: DCC's test tooling writes upper case)."""
    out: list[Path] = []
    for p in paths:
        try:
            if p.is_dir():
                out += sorted(f for f in p.rglob("*") if f.is_file() and f.name.lower().endswith(suffixes))
            elif p.exists():
                out.append(p)
            else:
                raise IngestError(f"{p}: no such file or directory")
        except OSError as e:  # e.g. a name too long for the file system, or no permission
            raise IngestError(f"{p}: cannot be read ({e.strerror})") from None
    return out


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _check_columns(path: Path, table: Table, columns: list[str]) -> None:
    expected = table.field_names
    missing = [c for c in expected if c not in columns and c not in table.may_be_absent]
    unknown = [c for c in columns if c not in expected]
    dupes = sorted({c for c in columns if columns.count(c) > 1})
    problems = []
    if missing:
        problems.append(f"missing column(s) {missing}")
    if unknown:
        problems.append(f"unknown column(s) {unknown}")
    if dupes:
        problems.append(f"repeated column(s) {dupes}")
    if problems:
        raise IngestError(f"{path}: header does not match the '{table.name}' contract: {'; '.join(problems)}")


@dataclass
class _BadCsvRow:
    row: int
    text: str
    reason: str


def _csv_error(path: Path, e: Exception) -> IngestError:
    msg = str(e)
    if "UTF8" in msg.upper():
        return IngestError(f"{path}: not valid UTF-8 ({msg})")
    return IngestError(f"{path}: cannot parse CSV ({msg})")


def _csv_batches(path: Path, table: Table, bad: list[_BadCsvRow]) -> Iterator[pa.Table]:
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    try:
        with opener(path, "rb") as fh:
            first = fh.readline()
        header_line = first.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise IngestError(f"{path}: header is not valid UTF-8") from None
    except OSError as e:
        raise IngestError(f"{path}: cannot read ({e})") from None
    if not header_line.strip():
        raise IngestError(f"{path}: empty file, expected a header row")
    header = next(csv.reader(io.StringIO(header_line)))
    _check_columns(path, table, header)
    ncols = len(header)

    def on_invalid(row: pacsv.InvalidRow) -> str:
        bad.append(
            _BadCsvRow(
                row.number - 1,
                row.text,
                f"wrong number of fields: expected {ncols}, got {row.actual_columns}",
            )
        )
        return "skip"

    try:
        reader = pacsv.open_csv(
            path,
            read_options=pacsv.ReadOptions(use_threads=False, block_size=32 << 20),
            parse_options=pacsv.ParseOptions(invalid_row_handler=on_invalid, newlines_in_values=False),
            convert_options=pacsv.ConvertOptions(
                column_types={c: pa.string() for c in header},
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
            ),
        )
    except pa.ArrowInvalid as e:
        raise _csv_error(path, e) from None
    next_row, seen_bad = 1, 0
    while True:
        try:
            batch = reader.read_next_batch()
        except StopIteration:
            return
        except pa.ArrowInvalid as e:
            raise _csv_error(path, e) from None
        # Row numbers: data rows in order, skipping the ones the handler took out.
        skipped = {b.row for b in bad[seen_bad:]}
        seen_bad = len(bad)
        n = batch.num_rows
        cand = np.arange(next_row, next_row + n + len(skipped) + 1, dtype=np.int64)
        if skipped:
            cand = cand[~np.isin(cand, np.fromiter(skipped, dtype=np.int64))]
        rows = cand[:n]
        if n:
            next_row = int(rows[-1]) + 1
        yield _with_absent(pa.Table.from_batches([batch]), table).append_column("_row", pa.array(rows))


def _supersede(store: Store, table: Table, file_id: int, key_eq: str, key_cols: str) -> None:
    """Move the records a corrections file replaces into `superseded`, keeping where each came
    from and which file and row replaced it."""
    con = store.con
    key_text = " || '|' || ".join(f"CAST(x.{q(k)} AS VARCHAR)" for k in table.key)
    record = ", ".join(f"{q(f.name)} := x.{q(f.name)}" for f in table.fields)
    con.execute(f"""
        INSERT INTO superseded
        SELECT {lit(table.name)}, {key_text}, x._file_id, x._row,
               to_json(struct_pack({record})),
               {file_id}, ok._row
        FROM {q(table.name)} x JOIN (SELECT {key_cols}, _row FROM _stage WHERE len(_err) = 0) ok
          ON {key_eq}
    """)
    con.execute(
        f"DELETE FROM {q(table.name)} x WHERE EXISTS "
        f"(SELECT 1 FROM _stage ok WHERE len(ok._err) = 0 AND {key_eq})"
    )


def _with_absent(batch: pa.Table, table: Table) -> pa.Table:
    """Add the optional columns an older file leaves out, as empty, in contract order."""
    missing = [c for c in table.field_names if c not in batch.column_names]
    for c in missing:
        batch = batch.append_column(c, pa.nulls(batch.num_rows, pa.string()))
    return batch.select(table.field_names) if missing else batch


_NATIVE = {
    # unsigned 64-bit values may not fit BIGINT: those go the text way and get checked
    "integer": lambda t: pa.types.is_signed_integer(t) or t in (pa.uint8(), pa.uint16(), pa.uint32()),
    "boolean": pa.types.is_boolean,
    "timestamp": pa.types.is_timestamp,
}


def native_columns(table: Table, schema: pa.Schema) -> frozenset[str]:
    """Parquet columns already in their contract type: loaded as they are, not via text."""
    out = set()
    for f in table.fields:
        if f.name in schema.names and native_ok(f) and _NATIVE[f.type](schema.field(f.name).type):
            out.add(f.name)
    return frozenset(out)


def _parquet_schema(path: Path, table: Table) -> tuple[frozenset[str], list[str]]:
    """Check a Parquet file's header (its footer only); return its native columns and all its
    column names."""
    try:
        schema = pq.ParquetFile(path).schema_arrow
    except Exception as e:  # pyarrow raises several types for a damaged file
        raise IngestError(f"{path}: not a readable Parquet file ({e})") from None
    _check_columns(path, table, schema.names)
    native = native_columns(table, schema)
    for f in table.fields:
        if f.name in schema.names and f.name not in native:
            t = schema.field(f.name).type
            if pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_fixed_size_binary(t):
                raise IngestError(f"{path}: column {f.name!r} holds bytes, not text")
    return native, schema.names


def _parquet_source(path: Path, table: Table, native: frozenset[str], names: list[str]) -> str:
    """SQL reading the file as the text (or native) columns `validation_sql` expects.

    DuckDB reads the Parquet itself, in parallel and with no Arrow batches held in Python (they
    grew with the file). Text is trimmed of blanks and an empty value made missing, as
    `normalise` does for CSV; DuckDB refuses invalid UTF-8 as it reads.
    """
    cols = []
    for f in table.fields:
        if f.name not in names:
            cols.append(f"CAST(NULL AS VARCHAR) AS {q(f.name)}")
        elif f.name in native:
            cols.append(q(f.name))
        else:
            cols.append(f"nullif(trim(CAST({q(f.name)} AS VARCHAR), {_BLANK_SQL}), '') AS {q(f.name)}")
    return (
        f"(SELECT {', '.join(cols)}, CAST(file_row_number AS BIGINT) + 1 AS _row "
        f"FROM read_parquet({lit(str(path))}, file_row_number = true))"
    )


_BLANK_SQL = " || ".join(f"chr({ord(c)})" for c in BLANK)


def _stage_parquet(
    con: duckdb.DuckDBPyConnection, path: Path, table: Table, native: frozenset[str], names: list[str]
) -> int:
    """Validate the whole file into `_stage` in one INSERT; returns the rows read."""
    try:
        source = _parquet_source(path, table, native, names)
        con.execute(f"INSERT INTO _stage BY NAME {validation_sql(table, source, native)}")
    except (duckdb.OutOfMemoryException, duckdb.InterruptException):
        raise
    except duckdb.Error as e:  # DuckDB gives a damaged page several types, some only `Error`
        if "Invalid string encoding" in str(e):
            column = _invalid_text_column(path, names)
            raise IngestError(f"{path}: column {column!r} is not valid UTF-8 text") from None
        raise IngestError(f"{path}: Parquet data cannot be read ({e})") from None
    return int(con.execute("SELECT count(*) FROM _stage").fetchall()[0][0])


def _invalid_text_column(path: Path, names: list[str]) -> str | None:
    """The first column DuckDB cannot read as UTF-8 (only called once reading has failed);
    read on a connection of its own, because the file's transaction has been aborted."""
    scan = duckdb.connect()
    try:
        for name in names:
            try:
                scan.execute(f"SELECT min({q(name)}) FROM read_parquet({lit(str(path))})")
            except duckdb.Error:
                return name
    finally:
        scan.close()
    return None


def _keys_match(table: Table, a: str, b: str) -> str:
    """SQL: rows `a` and `b` have the same key."""
    return " AND ".join(f"{a}.{q(k)} = {b}.{q(k)}" for k in table.key)


def _stage_rows(
    con: duckdb.DuckDBPyConnection,
    table: Table,
    batches: Iterator[pa.Table],
    native: frozenset[str],
    on_rows: Callable[[int], None] | None,
) -> int:
    """Validate every batch into `_stage` in one streamed INSERT; returns the rows read.

    One stream, not a view per batch: inside the file's transaction DuckDB keeps every dropped
    view (and the Arrow batch it holds) alive until commit, so memory grew with the file.
    """
    first = next(batches, None)
    if first is None:
        return 0
    first = normalise(first, native)
    read = 0
    failure: list[BaseException] = []

    def stream() -> Iterator[pa.RecordBatch]:
        nonlocal read
        try:
            for t in itertools.chain([first], (normalise(b, native) for b in batches)):
                read += t.num_rows
                if on_rows:
                    on_rows(t.num_rows)
                yield from t.to_batches()
        except BaseException as e:  # DuckDB would only see the message; keep the error itself
            failure.append(e)
            raise

    reader = pa.RecordBatchReader.from_batches(first.schema, stream())
    con.register("_batches", reader)
    try:
        con.execute(f"INSERT INTO _stage BY NAME {validation_sql(table, '_batches', native)}")
    except duckdb.Error:  # the file's rollback drops the view too
        if failure:
            raise failure[0] from None
        raise
    con.unregister("_batches")
    return read


def load_file(
    store: Store,
    path: Path,
    table_name: str | None = None,
    on_rows: Callable[[int], None] | None = None,
    corrections: bool = False,
) -> LoadResult:
    """Validate and load one file atomically; see the module docstring for the guarantees."""
    contract = store.contract
    name = table_name or table_for(path, list(contract.tables))
    if name is None:
        raise IngestError(
            f"{path}: cannot tell which table this is; name the file or folder after one of "
            f"{list(contract.tables)} or pass --table"
        )
    table = contract.table(name)
    if not path.name.lower().endswith(SUFFIXES):
        raise IngestError(f"{path}: unsupported file type; expected one of {SUFFIXES}")
    digest = sha256_of(path)
    con = store.con
    prior = con.execute(
        "SELECT file_id, rows_read, rows_accepted, rows_quarantined FROM loaded_files "
        "WHERE table_name = ? AND sha256 = ?",
        [name, digest],
    ).fetchone()
    if prior:
        return LoadResult(path, name, "already loaded", prior[1], 0, 0, prior[0])

    con.execute(f"SET memory_limit = '{INGEST_MEMORY_LIMIT}'")
    con.execute("BEGIN TRANSACTION")
    try:
        result = _load_in_transaction(store, path, table, digest, on_rows, corrections)
        con.execute("COMMIT")
        return result
    except BaseException:
        con.execute("ROLLBACK")
        raise
    finally:
        con.execute(f"SET memory_limit = '{store.memory_limit}'")


def _load_in_transaction(
    store: Store,
    path: Path,
    table: Table,
    digest: str,
    on_rows: Callable[[int], None] | None,
    corrections: bool = False,
) -> LoadResult:
    con = store.con
    file_id = int(con.execute("SELECT nextval('file_id_seq')").fetchall()[0][0])
    bad_csv: list[_BadCsvRow] = []
    is_parquet = path.name.lower().endswith(".parquet")
    native: frozenset[str] = frozenset()
    names: list[str] = []
    if is_parquet:
        native, names = _parquet_schema(path, table)
    cols = ", ".join(q(f.name) for f in table.fields)
    # A table in the database, not a TEMP one: its row groups go to disk as they fill, so
    # staging a 50M-row file needs no more memory than a small one (it is dropped before commit).
    con.execute(
        f"CREATE OR REPLACE TABLE _stage AS SELECT {cols}, "
        "CAST(NULL AS BIGINT) AS _row, CAST(NULL AS VARCHAR) AS _raw, "
        "CAST([] AS STRUCT(field VARCHAR, value VARCHAR, reason VARCHAR)[]) AS _err "
        f"FROM {q(table.name)} LIMIT 0"
    )
    if is_parquet:
        rows_read = _stage_parquet(con, path, table, native, names)
        if on_rows:
            on_rows(rows_read)
    else:
        batches = _csv_batches(path, table, bad_csv)
        rows_read = _stage_rows(con, table, batches, native, on_rows) + len(bad_csv)

    # Duplicate keys: a second row in this file, or a row already in the table.
    key_eq = _keys_match(table, "ok", "x")
    key_cols = ", ".join(q(k) for k in table.key)
    key_desc = ", ".join(table.key)
    k0 = table.key[0]
    dup = f"{{'field': {lit(k0)}, 'value': CAST(k.{q(k0)} AS VARCHAR), 'reason': 'duplicate {key_desc}: "
    nothing = (
        f"{{'field': {lit(k0)}, 'value': CAST(k.{q(k0)} AS VARCHAR), "
        f"'reason': 'correction for a record never loaded (no {key_desc} to replace); load it as new data'}}"
    )
    # Only the key columns take part, and only duplicated keys are kept, so the check stays
    # small and spillable on a 50M-row file (a window over whole rows was not).
    key_on = _keys_match(table, "k", "t")
    keyed = f"SELECT {key_cols}, _row FROM _stage WHERE len(_err) = 0"
    verdicts = [
        f"""SELECT k._row, [{dup}same as row ' || t._first || ' of this file'}}] AS _err
        FROM ({keyed}) k JOIN (
            SELECT {key_cols}, min(_row) AS _first FROM ({keyed}) GROUP BY ALL HAVING count(*) > 1
        ) t ON {key_on} AND k._row > t._first"""
    ]
    if corrections:
        verdicts.append(
            f"SELECT k._row, [{nothing}] AS _err FROM ({keyed}) k ANTI JOIN {q(table.name)} t ON {key_on}"
        )
    else:
        verdicts.append(
            f"""SELECT k._row, [{dup}already loaded from ' || lf.path || ' row ' || t._row || '; '
                      'to change it, load a corrections file'}}] AS _err
            FROM ({keyed}) k JOIN {q(table.name)} t ON {key_on}
            JOIN loaded_files lf ON lf.file_id = t._file_id"""
        )
    # A repeat within the file is reported as such even when its key is also already loaded.
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE _verdict AS
        SELECT _row, first(_err ORDER BY _why) AS _err FROM (
            {" UNION ALL ".join(f"SELECT *, {i} AS _why FROM ({v})" for i, v in enumerate(verdicts))}
        ) GROUP BY _row
    """)
    con.execute("UPDATE _stage SET _err = v._err FROM _verdict v WHERE _stage._row = v._row")
    if corrections:
        _supersede(store, table, file_id, key_eq, key_cols)
    tz = lit(store.contract.report_timezone)
    time_col = q(table.time_field)
    con.execute(
        f"INSERT INTO {q(table.name)} SELECT {cols}, "
        f"CAST(timezone({tz}, CAST({time_col} AS TIMESTAMPTZ)) AS DATE), {file_id}, _row "
        "FROM _stage WHERE len(_err) = 0"
    )
    con.execute(
        "INSERT INTO quarantine SELECT ?, ?, ?, _row, _err[1].field, _err[1].value, _err[1].reason, "
        "array_to_string(list_transform(_err, lambda e: e.field || ': ' || e.reason), '; '), _raw "
        "FROM _stage WHERE len(_err) > 0",
        [file_id, table.name, str(path)],
    )
    if bad_csv:
        con.executemany(
            "INSERT INTO quarantine VALUES (?, ?, ?, ?, NULL, NULL, ?, ?, ?)",
            [[file_id, table.name, str(path), b.row, b.reason, b.reason, b.text] for b in bad_csv],
        )
    accepted = int(con.execute("SELECT count(*) FROM _stage WHERE len(_err) = 0").fetchall()[0][0])
    quarantined = rows_read - accepted
    reasons = Counter(
        dict(
            con.execute(
                "SELECT coalesce(field || ': ', '') || "
                f"regexp_replace(reason, {lit(DUPLICATE_DETAIL)}, ''), "
                "count(*) FROM quarantine WHERE file_id = ? GROUP BY ALL",
                [file_id],
            ).fetchall()
        )
    )
    con.execute(
        "INSERT INTO loaded_files VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            file_id,
            table.name,
            str(path),
            digest,
            path.stat().st_size,
            rows_read,
            accepted,
            quarantined,
            store.contract.version,
            dt.datetime.now(dt.UTC).replace(tzinfo=None),
        ],
    )
    con.execute("DROP TABLE _stage; DROP TABLE _verdict")
    return LoadResult(path, table.name, "loaded", rows_read, accepted, quarantined, file_id, reasons)
