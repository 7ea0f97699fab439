"""Load input files into the store: whole file in one transaction, bad rows to quarantine.

A file is identified by its sha256, so loading it again is a no-op. A first pass over the file
finds the rows in error (DuckDB reads a Parquet file itself; a CSV file is first copied as text
from Arrow batches); a second writes every other row, typed, into its input table; duplicate
keys (within the file, or against rows already loaded) are then found among the rows written
and moved to the quarantine with the rows in error, and the transaction commits. Any failure
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
from opmetrics.ingest.validate import BLANK, lit, native_ok, normalise, q, typed_sql, validation_sql
from opmetrics.methodology.contract import Table

# DuckDB's memory limit while a file loads (its writes and the duplicate check spill beyond
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


def _supersede(store: Store, table: Table, file_id: int) -> None:
    """Move the records a corrections file replaces into `superseded`, keeping where each came
    from and which file and row replaced it."""
    con = store.con
    target = q(table.name)
    key_eq = _keys_match(table, "ok", "x")
    new = _keys_of_file(table, file_id)
    key_text = " || '|' || ".join(f"CAST(x.{q(k)} AS VARCHAR)" for k in table.key)
    record = ", ".join(f"{q(f.name)} := x.{q(f.name)}" for f in table.fields)
    con.execute(f"""
        INSERT INTO superseded
        SELECT {lit(table.name)}, {key_text}, x._file_id, x._row,
               to_json(struct_pack({record})),
               {file_id}, ok._row
        FROM {target} x JOIN {new} ok ON {key_eq}
        WHERE x._file_id <> {file_id}
    """)
    con.execute(
        f"DELETE FROM {target} x WHERE x._file_id <> {file_id} "
        f"AND EXISTS (SELECT 1 FROM {new} ok WHERE {key_eq})"
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


def _parquet_schema(path: Path, table: Table) -> tuple[frozenset[str], list[str], int]:
    """Check a Parquet file's header (its footer only); return its native columns, all its
    column names and its number of rows."""
    try:
        meta = pq.ParquetFile(path)
        schema = meta.schema_arrow
    except Exception as e:  # pyarrow raises several types for a damaged file
        raise IngestError(f"{path}: not a readable Parquet file ({e})") from None
    _check_columns(path, table, schema.names)
    native = native_columns(table, schema)
    for f in table.fields:
        if f.name in schema.names and f.name not in native:
            t = schema.field(f.name).type
            if pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_fixed_size_binary(t):
                raise IngestError(f"{path}: column {f.name!r} holds bytes, not text")
    return native, schema.names, meta.metadata.num_rows


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
            cols.append(f"{_trimmed(f'CAST({q(f.name)} AS VARCHAR)')} AS {q(f.name)}")
    return (
        f"(SELECT {', '.join(cols)}, CAST(file_row_number AS BIGINT) + 1 AS _row "
        f"FROM read_parquet({lit(str(path))}, file_row_number = true))"
    )


_BLANK_SQL = " || ".join(f"chr({ord(c)})" for c in BLANK)
_BLANK_CODES = ", ".join(str(ord(c)) for c in BLANK)


def _trimmed(text: str) -> str:
    """SQL: `text` with blanks trimmed from both ends, and missing if nothing is left.

    Trimmed only where its first or last character is a blank: a value that needs no trimming
    is kept as it is, six times faster than `trim` with a character set over every value
    (docs/performance.md, "Ingest beside its floor")."""
    ends = f"ord({text}[1]) IN ({_BLANK_CODES}) OR ord({text}[-1]) IN ({_BLANK_CODES})"
    trimmed = f"nullif(trim({text}, {_BLANK_SQL}), '')"
    return f"CASE WHEN {text} = '' THEN NULL WHEN {ends} THEN {trimmed} ELSE {text} END"


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


def _keys_of_file(table: Table, file_id: int) -> str:
    """SQL: the key and row of each record the file with `file_id` put in its input table."""
    key_cols = ", ".join(q(k) for k in table.key)
    return f"(SELECT {key_cols}, _row FROM {q(table.name)} WHERE _file_id = {file_id})"


def _keys_match(table: Table, a: str, b: str) -> str:
    """SQL: rows `a` and `b` have the same key."""
    return " AND ".join(f"{a}.{q(k)} = {b}.{q(k)}" for k in table.key)


def _stage_csv(
    con: duckdb.DuckDBPyConnection,
    table: Table,
    batches: Iterator[pa.Table],
    on_rows: Callable[[int], None] | None,
) -> int:
    """Copy a CSV file's rows, as trimmed text with their row numbers, into the table `_source`
    in one streamed INSERT (the two passes read it twice); returns the rows read.

    One stream, not a view per batch: inside the file's transaction DuckDB keeps every dropped
    view (and the Arrow batch it holds) alive until commit, so memory grew with the file.
    """
    text = ", ".join(f"{q(f.name)} VARCHAR" for f in table.fields)
    con.execute(f"CREATE OR REPLACE TABLE _source ({text}, _row BIGINT)")
    first = next(batches, None)
    if first is None:
        return 0
    first = normalise(first)
    read = 0
    failure: list[BaseException] = []

    def stream() -> Iterator[pa.RecordBatch]:
        nonlocal read
        try:
            for t in itertools.chain([first], (normalise(b) for b in batches)):
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
        con.execute("INSERT INTO _source BY NAME SELECT * FROM _batches")
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

    with store.memory_limited(INGEST_MEMORY_LIMIT), store.transaction():
        return _load_in_transaction(store, path, table, digest, on_rows, corrections)


def _load_in_transaction(
    store: Store,
    path: Path,
    table: Table,
    digest: str,
    on_rows: Callable[[int], None] | None,
    corrections: bool = False,
) -> LoadResult:
    """Two passes over the file and one write of its rows (docs/performance.md, "Ingest beside
    its floor"): the first finds the rows in error, the second writes every other row, typed,
    straight into the input table; duplicate keys are then found among the rows written and
    moved out to the quarantine with the others."""
    con = store.con
    file_id = int(con.execute("SELECT nextval('file_id_seq')").fetchall()[0][0])
    bad_csv: list[_BadCsvRow] = []
    target = q(table.name)
    if path.name.lower().endswith(".parquet"):
        native, names, rows_read = _parquet_schema(path, table)
        source = _parquet_source(path, table, native, names)
        try:
            _write_rows(store, table, source, native, file_id)
        except (duckdb.OutOfMemoryException, duckdb.InterruptException):
            raise
        except duckdb.Error as e:  # DuckDB gives a damaged page several types, some only `Error`
            if "Invalid string encoding" in str(e):
                column = _invalid_text_column(path, names)
                raise IngestError(f"{path}: column {column!r} is not valid UTF-8 text") from None
            raise IngestError(f"{path}: Parquet data cannot be read ({e})") from None
        if on_rows:
            on_rows(rows_read)
    else:
        rows_read = _stage_csv(con, table, _csv_batches(path, table, bad_csv), on_rows) + len(bad_csv)
        _write_rows(store, table, "_source", frozenset(), file_id)

    _key_verdicts(con, table, file_id, corrections)
    con.execute(
        "INSERT INTO quarantine SELECT ?, ?, ?, _row, _err[1].field, _err[1].value, _err[1].reason, "
        "array_to_string(list_transform(_err, lambda e: e.field || ': ' || e.reason), '; '), _raw "
        "FROM (SELECT * FROM _bad UNION ALL SELECT _row, _err, NULL FROM _verdict) ORDER BY _row",
        [file_id, table.name, str(path)],
    )
    if con.execute("SELECT count(*) FROM _verdict").fetchall()[0][0]:
        con.execute(
            f"DELETE FROM {target} WHERE _file_id = {file_id} AND _row IN (SELECT _row FROM _verdict)"
        )
    if corrections:
        _supersede(store, table, file_id)
    if bad_csv:
        con.executemany(
            "INSERT INTO quarantine VALUES (?, ?, ?, ?, NULL, NULL, ?, ?, ?)",
            [[file_id, table.name, str(path), b.row, b.reason, b.reason, b.text] for b in bad_csv],
        )

    def count(sql: str) -> int:
        return int(con.execute(sql).fetchall()[0][0])

    accepted = count(f"SELECT count(*) FROM {target} WHERE _file_id = {file_id}")
    quarantined = count(f"SELECT count(*) FROM quarantine WHERE file_id = {file_id}")
    if accepted + quarantined != rows_read:  # every row read is stored or quarantined, once
        raise IngestError(
            f"{path}: {rows_read} rows read but {accepted} accepted and {quarantined} quarantined; "
            "nothing from the file was stored"
        )
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
    con.execute("DROP TABLE IF EXISTS _source; DROP TABLE _bad; DROP TABLE _verdict")
    return LoadResult(path, table.name, "loaded", rows_read, accepted, quarantined, file_id, reasons)


def _write_rows(store: Store, table: Table, source: str, native: frozenset[str], file_id: int) -> None:
    """The file's two passes: its rows in error into `_bad` (with their errors and the row as
    read), then every other row, typed, into the input table.

    Writing the rows is most of a load's cost (as much as reading and checking them): they are
    written once, where a staging table wrote them twice. `_bad` is a table in the database, not
    a TEMP one, so a file of nothing but bad rows spills to disk; it is dropped before commit.
    """
    con = store.con
    con.execute(
        f"CREATE OR REPLACE TABLE _bad AS SELECT _row, _err, _raw "
        f"FROM ({validation_sql(table, source, native)}) WHERE len(_err) > 0"
    )
    cols = ", ".join(q(f.name) for f in table.fields)
    tz = lit(store.contract.report_timezone)
    day = f"CAST(timezone({tz}, CAST({q(table.time_field)} AS TIMESTAMPTZ)) AS DATE)"
    con.execute(
        f"INSERT INTO {q(table.name)} SELECT {cols}, {day}, {file_id}, _row "
        f"FROM ({typed_sql(table, source, native)}) WHERE _row NOT IN (SELECT _row FROM _bad)"
    )


def _key_verdicts(con: duckdb.DuckDBPyConnection, table: Table, file_id: int, corrections: bool) -> None:
    """`_verdict`: the rows just written whose key breaks the rules, with the reason.

    A key repeated in the file keeps its first row; later ones are duplicates. A key already
    loaded from another file is refused (a corrections file is the way to change a record), and
    a corrections row must replace a loaded record. Only key columns are read. Distinct key
    hashes are counted first, and keys are grouped and compared in full only where a hash
    repeats: this step's time at a national day fell from 24.4 s to 10.1 s (docs/performance.md).
    """
    target = q(table.name)
    key_cols = ", ".join(q(k) for k in table.key)
    # DuckDB's `hash` of a text gives the same value for ids that differ in two digits
    # (A-97700000093673, A-97700900093678: 17 % of a national day's alert ids share a hash);
    # hashing each text key reversed as well keeps repeats of the hash to repeats of the key.
    texts = [f"reverse({q(f.name)})" for f in table.fields if f.name in table.key and f.type == "string"]
    key_hash = f"hash({', '.join([key_cols, *texts])})"
    key_desc = ", ".join(table.key)
    k0 = table.key[0]
    key_on = _keys_match(table, "k", "t")
    dup = f"{{'field': {lit(k0)}, 'value': CAST(k.{q(k0)} AS VARCHAR), 'reason': 'duplicate {key_desc}: "
    new = _keys_of_file(table, file_id)
    old = f"(SELECT {key_cols}, _row, _file_id FROM {target} WHERE _file_id <> {file_id})"
    repeated = f"""(SELECT * FROM {new} WHERE {key_hash} IN (
        SELECT {key_hash} FROM {new} GROUP BY ALL HAVING count(*) > 1))"""
    verdicts = []
    # Usually no key repeats: counting distinct hashes says so in one pass, and the grouping
    # that names each repeat and its first row is only run when one does.
    if con.execute(f"SELECT count(*) - count(DISTINCT {key_hash}) FROM {new}").fetchall()[0][0]:
        verdicts.append(
            f"""SELECT k._row, [{dup}same as row ' || t._first || ' of this file'}}] AS _err
            FROM {repeated} k JOIN (
                SELECT {key_cols}, min(_row) AS _first FROM {repeated} GROUP BY ALL HAVING count(*) > 1
            ) t ON {key_on} AND k._row > t._first"""
        )
    if corrections:
        nothing = (
            f"{{'field': {lit(k0)}, 'value': CAST(k.{q(k0)} AS VARCHAR), "
            f"'reason': 'correction for a record never loaded (no {key_desc} to replace); "
            "load it as new data'}"
        )
        verdicts.append(f"SELECT k._row, [{nothing}] AS _err FROM {new} k ANTI JOIN {old} t ON {key_on}")
    else:
        verdicts.append(
            f"""SELECT k._row, [{dup}already loaded from ' || lf.path || ' row ' || t._row || '; '
                      'to change it, load a corrections file'}}] AS _err
            FROM {new} k JOIN {old} t ON {key_on}
            JOIN loaded_files lf ON lf.file_id = t._file_id"""
        )
    # A repeat within the file is reported as such even when its key is also already loaded.
    con.execute(f"""
        CREATE OR REPLACE TABLE _verdict AS
        SELECT _row, first(_err ORDER BY _why) AS _err FROM (
            {" UNION ALL ".join(f"SELECT *, {i} AS _why FROM ({v})" for i, v in enumerate(verdicts))}
        ) GROUP BY _row
    """)
