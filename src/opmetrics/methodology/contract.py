"""The data contract as typed objects, plus the documents generated from it.

`contract.yaml` is the single source of truth: validation, the database schema, the
simulator's output and docs/data-contract.md all derive from it.
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, model_validator

FieldType = Literal["string", "integer", "number", "boolean", "timestamp"]

DUCKDB_TYPES: dict[str, str] = {
    "string": "VARCHAR",
    "integer": "BIGINT",
    "number": "DOUBLE",
    "boolean": "BOOLEAN",
    "timestamp": "TIMESTAMP",
}


class Field(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    type: FieldType
    required: bool
    description: str
    enum: list[str | int] | None = None
    pattern: str | None = None
    min: int | None = None
    max: int | None = None
    # The contract version that added the field: files written to an earlier version may leave
    # the column out, and it reads as empty (only for fields that are not required).
    since: str | None = None

    @model_validator(mode="after")
    def _since_only_optional(self) -> Field:
        if self.since and self.required:
            raise ValueError(f"field {self.name!r}: a field added later (since) cannot be required")
        return self

    @property
    def sql_type(self) -> str:
        return DUCKDB_TYPES[self.type]


class Check(BaseModel):
    """A cross-field rule, written in DuckDB SQL over the typed row."""

    model_config = ConfigDict(extra="forbid")

    name: str
    field: str
    sql: str
    reason: str


class Table(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = ""
    description: str
    key: list[str]
    time_field: str
    fields: list[Field]
    checks: list[Check] = []

    @model_validator(mode="after")
    def _known_fields(self) -> Table:
        names = set(self.field_names)
        for col in [*self.key, self.time_field, *(c.field for c in self.checks)]:
            if col not in names:
                raise ValueError(f"table {self.name!r}: {col!r} is not one of its fields")
        for f in self.fields:
            if f.name in self.key and not f.required:  # duplicate checks match keys by equality
                raise ValueError(f"table {self.name!r}: key field {f.name!r} must be required")
        return self

    @property
    def field_names(self) -> list[str]:
        return [f.name for f in self.fields]

    @property
    def may_be_absent(self) -> set[str]:
        """Columns an older file may leave out (see Field.since)."""
        return {f.name for f in self.fields if f.since}

    def field(self, name: str) -> Field:
        return next(f for f in self.fields if f.name == name)


class Contract(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: str
    timestamps: str
    report_timezone: str
    tables: dict[str, Table]

    @model_validator(mode="before")
    @classmethod
    def _name_tables(cls, data: Any) -> Any:
        for name, table in data.get("tables", {}).items():
            table.setdefault("name", name)
        return data

    def table(self, name: str) -> Table:
        try:
            return self.tables[name]
        except KeyError:
            known = ", ".join(self.tables)
            raise KeyError(f"unknown table {name!r}; the contract has: {known}") from None


# Columns the store adds to every table: where each row came from and its UK reporting day.
LINEAGE_COLUMNS = {
    "report_date": (
        "DATE",
        "Derived on load: the UK local (Europe/London) calendar day of the table's time field; "
        "daily figures and the reporting month use it.",
    ),
    "_file_id": ("BIGINT", "Derived on load: the loaded file this row came from (see `loaded_files`)."),
    "_row": ("BIGINT", "Derived on load: the 1-based data row number in that file."),
}


@cache
def load_contract() -> Contract:
    text = resources.files("opmetrics.methodology").joinpath("contract.yaml").read_text("utf-8")
    return Contract.model_validate(yaml.safe_load(text))


def json_schema(table: Table) -> dict[str, Any]:
    """JSON Schema (draft 2020-12) of one row, for producers validating before they send."""
    props: dict[str, Any] = {}
    for f in table.fields:
        base: dict[str, Any]
        if f.type == "timestamp":
            base = {"type": "string", "format": "date-time"}
        else:
            base = {"type": "string" if f.type == "string" else f.type}
        if f.enum is not None:
            base["enum"] = f.enum
        if f.pattern is not None:
            base["pattern"] = f.pattern
        if f.min is not None:
            base["minimum"] = f.min
        if f.max is not None:
            base["maximum"] = f.max
        base["description"] = f.description
        if not f.required:
            base = {"anyOf": [base, {"type": "null"}], "description": f.description}
        props[f.name] = base
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"https://opmetrics.org/contract/{load_contract().version}/{table.name}.json",
        "title": table.name,
        "description": table.description,
        "type": "object",
        "properties": props,
        "required": [f.name for f in table.fields],
        "additionalProperties": False,
    }


def markdown(contract: Contract | None = None) -> str:
    """docs/data-contract.md, generated so that doc and validation cannot drift apart."""
    c = contract or load_contract()
    out = [
        "# Data contract",
        "",
        f"Contract version **{c.version}**. Generated from `src/opmetrics/methodology/contract.yaml` "
        "by `opmetrics contract docs`; do not edit by hand.",
        "",
        "Inputs are CSV (UTF-8, header row, comma separated, empty field = null) or Parquet, one "
        "table per file. A file's table is given with `--table` or taken from the file name or "
        "its folder (e.g. `service_requests/2026-10-01.parquet`). Every column below must be "
        "present, except those marked *since* a contract version, which files written to an "
        "earlier version may leave out (they read as empty); unknown columns make the whole "
        "file fail. **Corrections** to records already loaded come as a corrections file "
        "(`opmetrics ingest --corrections`): each row replaces the record with its key, and the "
        "old record is kept in the `superseded` table.",
        "",
        f"**Timestamps.** {c.timestamps}",
        "",
        "**Booleans** are `true`/`false` (also `1`/`0`, `t`/`f`, `yes`/`no`, any case).",
        "",
        "**Bad rows** are not loaded: each goes to the `quarantine` table with its file, row, "
        "field, value and reason. **Duplicate keys** (within a file or with rows already loaded) "
        "are quarantined too, so nothing is counted twice. Loading the same file again does "
        "nothing. A file that cannot be read at all fails as a whole and loads nothing.",
        "",
    ]
    for t in c.tables.values():
        out += [
            f"## `{t.name}`",
            "",
            t.description,
            "",
            f"Key: `{', '.join(t.key)}`. Reporting day from: `{t.time_field}`.",
            "",
            "| field | type | required | allowed values | meaning |",
            "|---|---|---|---|---|",
        ]
        for f in t.fields:
            allowed = []
            if f.enum is not None:
                allowed.append(", ".join(f"`{v}`" for v in f.enum))
            if f.pattern is not None:
                escaped = f.pattern.replace("|", r"\|")
                allowed.append(f"pattern `{escaped}`")
            if f.min is not None or f.max is not None:
                allowed.append(f"{f.min} to {f.max}")
            out.append(
                f"| `{f.name}` | {f.type} | {'yes' if f.required else 'no'} | "
                f"{'; '.join(allowed)} | {f.description}{f' (since {f.since})' if f.since else ''} |"
            )
        if t.checks:
            out += ["", "Row checks:", ""]
            out += [f"- `{k.name}` (field `{k.field}`): {k.reason} is rejected." for k in t.checks]
        out.append("")
    out += ["## Columns added on load", "", "| column | type | meaning |", "|---|---|---|"]
    out += [f"| `{n}` | {t} | {d} |" for n, (t, d) in LINEAGE_COLUMNS.items()]
    out.append("")
    return "\n".join(out)
