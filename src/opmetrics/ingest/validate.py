"""Row validation as SQL generated from the data contract.

Each field gets a typed expression and a list of error conditions; each cross-field check is a
predicate over the typed row. DuckDB evaluates them over a whole batch at once, so validation
stays fast at national volumes while still naming the row, field, value and reason.
"""

from __future__ import annotations

from opmetrics.ingest.contract import Field, Table

BLANK = "' ' || chr(9) || chr(10) || chr(11) || chr(12) || chr(13)"
_TRUE = "('true','t','1','yes','y')"
_FALSE = "('false','f','0','no','n')"


def q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def lit(value: object) -> str:
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    return str(value)


def typed_expr(f: Field) -> str:
    """SQL turning the trimmed raw string into the contract type (NULL when it cannot)."""
    raw = q(f.name)
    if f.type == "string":
        return raw
    if f.type == "integer":
        return f"CASE WHEN regexp_full_match({raw}, '[+-]?[0-9]{{1,18}}') THEN CAST({raw} AS BIGINT) END"
    if f.type == "boolean":
        return f"CASE WHEN lower({raw}) IN {_TRUE} THEN true WHEN lower({raw}) IN {_FALSE} THEN false END"
    # timestamp: offsets honoured (TIMESTAMPTZ, session zone UTC), stored as naive UTC, ms precision
    return f"CAST(date_trunc('millisecond', TRY_CAST({raw} AS TIMESTAMPTZ)) AS TIMESTAMP)"


def _err(field: str, value_sql: str, reason: str) -> str:
    return f"{{'field': {lit(field)}, 'value': CAST({value_sql} AS VARCHAR), 'reason': {lit(reason)}}}"


def field_errors(f: Field) -> list[str]:
    """CASE expressions, each yielding an error struct or NULL, in priority order."""
    raw, typed = q(f.name), f"({typed_expr(f)})"
    out = []
    if f.required:
        out.append(f"CASE WHEN {raw} IS NULL THEN {_err(f.name, raw, 'missing required value')} END")
    if f.type != "string":
        reason = {
            "integer": "not an integer",
            "boolean": "not a boolean (true/false)",
            "timestamp": "not an ISO 8601 timestamp",
        }[f.type]
        out.append(f"CASE WHEN {raw} IS NOT NULL AND {typed} IS NULL THEN {_err(f.name, raw, reason)} END")
    if f.enum is not None:
        allowed = ", ".join(lit(v) for v in f.enum)
        shown = ", ".join(str(v) for v in f.enum)
        out.append(
            f"CASE WHEN {typed} NOT IN ({allowed}) THEN {_err(f.name, raw, f'not one of: {shown}')} END"
        )
    if f.pattern is not None:
        out.append(
            f"CASE WHEN NOT regexp_full_match({raw}, {lit(f.pattern)}) "
            f"THEN {_err(f.name, raw, 'does not have the expected format')} END"
        )
    if f.min is not None:
        out.append(f"CASE WHEN {typed} < {f.min} THEN {_err(f.name, raw, f'less than {f.min}')} END")
    if f.max is not None:
        out.append(f"CASE WHEN {typed} > {f.max} THEN {_err(f.name, raw, f'greater than {f.max}')} END")
    return out


def validation_sql(table: Table, source: str) -> str:
    """SELECT over `source` (all-VARCHAR columns plus _row) giving typed columns, _raw and _err.

    `_raw` (the row as JSON, for the quarantine) is only built for rows that have an error.
    """
    # Blank (spaces, tabs, line breaks) is empty: a required field of only whitespace is missing.
    norm = ", ".join(f"NULLIF(trim({q(f.name)}, {BLANK}), '') AS {q(f.name)}" for f in table.fields)
    typed = ", ".join(f"{typed_expr(f)} AS {q(f.name)}" for f in table.fields)
    ferrs = [e for f in table.fields for e in field_errors(f)]
    raw_struct = "{" + ", ".join(f"{lit(f.name)}: n.{q(f.name)}" for f in table.fields) + "}"
    checks = [
        f"CASE WHEN ({c.sql}) IS FALSE THEN {_err(c.field, q(c.field), c.reason)} END" for c in table.checks
    ]
    check_list = f"list_filter([{', '.join(checks)}], lambda e: e IS NOT NULL)" if checks else "[]"
    return f"""
WITH n AS (SELECT _row, {norm} FROM {source}),
t AS (
    SELECT _row, {typed}, {raw_struct} AS _n,
           list_filter([{", ".join(ferrs)}], lambda e: e IS NOT NULL) AS _ferr
    FROM n
)
SELECT * EXCLUDE (_n), CASE WHEN len(_err) > 0 THEN to_json(_n) END AS _raw
FROM (SELECT t.* EXCLUDE (_ferr), list_concat(_ferr, {check_list}) AS _err FROM t)
"""
