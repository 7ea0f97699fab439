"""Row validation as SQL generated from the data contract.

Each field gets a typed expression and a list of error conditions; each cross-field check is a
predicate over the typed row. DuckDB evaluates them over a whole batch at once, so validation
stays fast at national volumes while still naming the row, field, value and reason.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from opmetrics.methodology.contract import Field, Table

# Blank (spaces, tabs, line breaks) is empty: a required field of only whitespace is missing.
BLANK = " \t\n\x0b\x0c\r"


def normalise(batch: pa.Table, native: frozenset[str] = frozenset()) -> pa.Table:
    """Trim blanks from both ends of every text column and make an empty value missing.

    Done in Arrow before DuckDB sees the batch: several times faster than SQL `trim` with a
    character set. ASCII trimming never splits a UTF-8 character (continuation bytes are >= 0x80).
    """
    cols = []
    for name, col in zip(batch.column_names, batch.columns, strict=True):
        if name not in native and name != "_row" and pa.types.is_string(col.type):
            col = pc.ascii_trim(col, BLANK)
            col = pc.if_else(pc.equal(pc.binary_length(col), 0), pa.scalar(None, pa.string()), col)
        cols.append(col)
    return pa.Table.from_arrays(cols, names=batch.column_names)


_TRUE = "('true','t','1','yes','y')"
_FALSE = "('false','f','0','no','n')"


def q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


NUMBER = r"[+-]?([0-9]{1,15}(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]{1,3})?"


def lit(value: object) -> str:
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    return str(value)


def typed_expr(f: Field, native: bool = False) -> str:
    """SQL turning the trimmed raw string into the contract type (NULL when it cannot).

    `native`: the column already has the contract type (a typed Parquet column), so only the
    timestamp needs normalising to naive UTC at millisecond precision."""
    raw = q(f.name)
    if native:
        if f.type == "timestamp":
            # Naive UTC at millisecond precision, from the instant's microseconds since the epoch
            # floored to the millisecond: the same value as truncating a TIMESTAMPTZ cast, for a
            # naive or a zoned column of any unit, without a time-zone library call per value
            # (docs/performance.md, "Ingest beside its floor"). An infinite time becomes missing.
            zoned = f"CAST({raw} AS TIMESTAMPTZ)"  # free for a zoned column, the usual kind
            us = f"epoch_us({zoned})"
            floor_ms = f"{us} - (({us} % 1000) + 1000) % 1000"
            return f"CASE WHEN isfinite({zoned}) THEN make_timestamp({floor_ms}) END"
        return f"CAST({raw} AS BIGINT)" if f.type == "integer" else raw
    if f.type == "string":
        return raw
    if f.type == "integer":
        return f"CASE WHEN regexp_full_match({raw}, '[+-]?[0-9]{{1,18}}') THEN CAST({raw} AS BIGINT) END"
    if f.type == "number":  # a plain decimal: no 'nan', 'inf' or thousands separators
        return f"CASE WHEN regexp_full_match({raw}, {lit(NUMBER)}) THEN CAST({raw} AS DOUBLE) END"
    if f.type == "boolean":
        return f"CASE WHEN lower({raw}) IN {_TRUE} THEN true WHEN lower({raw}) IN {_FALSE} THEN false END"
    # timestamp: offsets honoured (TIMESTAMPTZ, session zone UTC), stored as naive UTC, ms precision;
    # DuckDB reads 'infinity' as a timestamp, which no record time can be
    ts = f"TRY_CAST({raw} AS TIMESTAMPTZ)"
    return f"CASE WHEN isfinite({ts}) THEN CAST(date_trunc('millisecond', {ts}) AS TIMESTAMP) END"


def _err(field: str, value_sql: str, reason: str) -> str:
    return f"{{'field': {lit(field)}, 'value': CAST({value_sql} AS VARCHAR), 'reason': {lit(reason)}}}"


def field_errors(f: Field, native: bool = False) -> list[tuple[str, str]]:
    """(condition, error struct) pairs, in priority order: the field is in error where the
    condition is true."""
    raw, typed = q(f.name), f"({typed_expr(f, native)})"
    out = []
    if f.required:
        out.append((f"{raw} IS NULL", _err(f.name, raw, "missing required value")))
    if f.type != "string" and not native:
        reason = {
            "integer": "not an integer",
            "number": "not a number",
            "boolean": "not a boolean (true/false)",
            "timestamp": "not an ISO 8601 timestamp",
        }[f.type]
        out.append((f"{raw} IS NOT NULL AND {typed} IS NULL", _err(f.name, raw, reason)))
    if f.enum is not None:
        allowed = ", ".join(lit(v) for v in f.enum)
        shown = ", ".join(str(v) for v in f.enum)
        out.append((f"{typed} NOT IN ({allowed})", _err(f.name, raw, f"not one of: {shown}")))
    if f.pattern is not None:
        out.append(
            (
                f"NOT regexp_full_match({raw}, {lit(f.pattern)})",
                _err(f.name, raw, "does not have the expected format"),
            )
        )
    if f.min is not None:
        out.append((f"{typed} < {f.min}", _err(f.name, raw, f"less than {f.min}")))
    if f.max is not None:
        out.append((f"{typed} > {f.max}", _err(f.name, raw, f"greater than {f.max}")))
    return out


def _error_list(pairs: list[tuple[str, str]]) -> str:
    """The list of error structs whose condition holds; the list is only built for rows where
    one does (most rows are clean, and building it is the costly part)."""
    if not pairs:
        return "[]"
    whens = ", ".join(f"CASE WHEN {c} THEN {e} END" for c, e in pairs)
    any_error = " OR ".join(f"({c})" for c, _ in pairs)
    return f"CASE WHEN {any_error} THEN list_filter([{whens}], lambda e: e IS NOT NULL) ELSE [] END"


def native_ok(f: Field) -> bool:
    """Whether a column of this field may arrive already typed (skipping the text round trip)."""
    return f.type in ("integer", "boolean", "timestamp") and f.pattern is None


def typed_sql(table: Table, source: str, native: frozenset[str] = frozenset()) -> str:
    """SELECT over `source` giving `_row` and each field in its contract type, as
    `validation_sql` types them (for the rows it finds no error in)."""
    return f"SELECT _row, {_typed_columns(table, native)} FROM {source}"


def _typed_columns(table: Table, native: frozenset[str]) -> str:
    return ", ".join(f"{typed_expr(f, f.name in native)} AS {q(f.name)}" for f in table.fields)


def validation_sql(table: Table, source: str, native: frozenset[str] = frozenset()) -> str:
    """SELECT over `source` (VARCHAR columns plus _row, passed through `normalise`) giving typed
    columns, _raw and _err.

    Columns named in `native` arrive already in their contract type (typed Parquet): they skip
    trimming and parsing but get the same required, enum and range checks.
    `_raw` (the row as JSON, for the quarantine) is only built for rows that have an error.
    """
    norm = ", ".join(q(f.name) for f in table.fields)
    typed = _typed_columns(table, native)
    ferrs = _error_list([e for f in table.fields for e in field_errors(f, f.name in native)])
    raw_struct = "{" + ", ".join(f"{lit(f.name)}: n.{q(f.name)}" for f in table.fields) + "}"
    check_list = _error_list(
        [(f"({c.sql}) IS FALSE", _err(c.field, q(c.field), c.reason)) for c in table.checks]
    )
    return f"""
WITH n AS (SELECT _row, {norm} FROM {source}),
t AS (
    SELECT _row, {typed}, {raw_struct} AS _n, {ferrs} AS _ferr
    FROM n
)
SELECT * EXCLUDE (_n), CASE WHEN len(_err) > 0 THEN to_json(_n) END AS _raw
FROM (SELECT t.* EXCLUDE (_ferr), list_concat(_ferr, {check_list}) AS _err FROM t)
"""
