"""The embedded database: one DuckDB file holding inputs, quarantine, lineage and results.

Measures never talk SQL to this directly: they get an Ibis backend from `Store.ibis()`, so a
Spark (or other) backend can later stand behind the same measure definitions.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import threading
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import duckdb
import ibis

from opmetrics.methodology.contract import LINEAGE_COLUMNS, Contract, load_contract

DEFAULT_DB = "opmetrics.duckdb"

_BOOKKEEPING = """
CREATE SEQUENCE IF NOT EXISTS file_id_seq START 1;
CREATE TABLE IF NOT EXISTS loaded_files (
    file_id BIGINT PRIMARY KEY,
    table_name VARCHAR NOT NULL,
    path VARCHAR NOT NULL,
    sha256 VARCHAR NOT NULL,
    bytes BIGINT NOT NULL,
    rows_read BIGINT NOT NULL,
    rows_accepted BIGINT NOT NULL,
    rows_quarantined BIGINT NOT NULL,
    contract_version VARCHAR NOT NULL,
    loaded_at TIMESTAMP NOT NULL,
    UNIQUE (table_name, sha256)
);
CREATE TABLE IF NOT EXISTS superseded (
    table_name VARCHAR NOT NULL,
    record_key VARCHAR NOT NULL,
    old_file_id BIGINT NOT NULL,
    old_row BIGINT,
    old_record JSON NOT NULL,
    new_file_id BIGINT NOT NULL,
    new_row BIGINT
);
CREATE TABLE IF NOT EXISTS quarantine (
    file_id BIGINT NOT NULL,
    table_name VARCHAR NOT NULL,
    path VARCHAR NOT NULL,
    row_number BIGINT,
    field VARCHAR,
    value VARCHAR,
    reason VARCHAR NOT NULL,
    all_reasons VARCHAR NOT NULL,
    raw VARCHAR
);
"""


_UNITS = {"KiB": 2**10, "MiB": 2**20, "GiB": 2**30, "TiB": 2**40, "KB": 1e3, "MB": 1e6, "GB": 1e9, "TB": 1e12}


class Store:
    """A DuckDB database file with the contract's tables created on open."""

    def __init__(
        self, path: str | Path = DEFAULT_DB, contract: Contract | None = None, read_only: bool = False
    ):
        self.path = Path(path)
        self.contract = contract or load_contract()
        self.read_only = read_only
        self.memory_limit = os.environ.get("OPMETRICS_MEMORY_LIMIT", "2GB")
        self._limit = self.memory_limit  # the limit in force (`memory_limited` lowers it for a while)
        if read_only:
            # An in-memory database with the file attached read-only: readers (the web app) can
            # still make temporary tables, and never lock out a writer's next run.
            if not self.path.exists():
                raise FileNotFoundError(
                    f"{self.path}: no such database; run `opmetrics demo` or `ingest` first"
                )
            self._base = duckdb.connect()
            self._base.execute(f"ATTACH '{self.path.as_posix()}' AS om (READ_ONLY)")
            self._local = threading.local()
        else:
            self._base = duckdb.connect(str(self.path))
            self._base.execute("SET TimeZone = 'UTC'")
            # Bounded memory: DuckDB spills to disk beyond this (issue 11; docs/scaling.md).
            self._base.execute(f"SET memory_limit = '{self.memory_limit}'")
            self._create_schema()
        self._ibis: Any = None

    @property
    def con(self) -> duckdb.DuckDBPyConnection:
        """The connection to use on this thread. A read-only store is shared by the web app's
        worker threads, and a DuckDB connection is not safe across threads: each thread gets
        its own cursor (a connection to the same database, with its own `USE` and time zone)."""
        if not self.read_only:
            return self._base
        cur = getattr(self._local, "con", None)
        if cur is None:
            cur = self._base.cursor()
            cur.execute("USE om")
            cur.execute("SET TimeZone = 'UTC'")
            self._local.con = cur
        return cur

    @classmethod
    def overlay(cls, inputs: str | Path, work: str | Path, contract: Contract | None = None) -> Store:
        """A writable store in `work` that reads another database's inputs without touching it:
        the input tables, the load bookkeeping and the exceptions register of `inputs` are
        read-only views; cubes, scratch tables and results are written to `work` alone (a
        what-if computation beside the published results)."""
        src = Path(inputs)
        if not src.exists():
            raise FileNotFoundError(f"{src}: no such database")
        st = cls.__new__(cls)
        st.path, st.contract, st.read_only = Path(work), contract or load_contract(), False
        st.memory_limit = os.environ.get("OPMETRICS_MEMORY_LIMIT", "2GB")
        st._limit = st.memory_limit
        st._base = duckdb.connect(str(st.path))
        st._base.execute("SET TimeZone = 'UTC'")
        st._base.execute(f"SET memory_limit = '{st.memory_limit}'")
        st._base.execute(f"ATTACH '{src.resolve().as_posix()}' AS inputs (READ_ONLY)")
        have = {
            r[0]
            for r in st.con.execute(
                "SELECT table_name FROM duckdb_tables() WHERE database_name = 'inputs'"
            ).fetchall()
        }
        shared = [*st.contract.tables, "loaded_files", "superseded", "quarantine", "pmel"]
        for name in shared:
            if name in have:
                st.con.execute(f'CREATE OR REPLACE VIEW "{name}" AS SELECT * FROM inputs."{name}"')
        st._ibis = None
        return st

    def _create_schema(self) -> None:
        self.con.execute(_BOOKKEEPING)
        for table in self.contract.tables.values():
            cols = [f'"{f.name}" {f.sql_type}' for f in table.fields]
            cols += [f'"{n}" {t}' for n, (t, _) in LINEAGE_COLUMNS.items()]
            self.con.execute(f'CREATE TABLE IF NOT EXISTS "{table.name}" ({", ".join(cols)})')

    def ibis(self) -> Any:
        """An Ibis backend over this database (shares the connection)."""
        if self._ibis is None:
            self._ibis = ibis.duckdb.from_connection(self.con)
        return self._ibis

    def quiet(self) -> None:
        """No progress bar from DuckDB on the terminal (a scratch computation inside a command)."""
        self.con.execute("SET enable_progress_bar = false")

    def _limit_bytes(self) -> float:
        text = self.con.execute("SELECT current_setting('memory_limit')").fetchall()[0][0]
        number, _, unit = str(text).partition(" ")
        return float(number) * _UNITS.get(unit.strip(), 1)

    @contextlib.contextmanager
    def memory_limited(self, limit: str) -> Iterator[None]:
        """A block under DuckDB memory limit `limit`, or under the limit already in force if that
        is lower (a load inside a DUIS ingest keeps the ingest's lower limit). The limit in force
        before is restored afterwards, also on error."""
        before = self._limit
        was = self._limit_bytes()
        self.con.execute(f"SET memory_limit = '{limit}'")
        if self._limit_bytes() > was:
            self.con.execute(f"SET memory_limit = '{before}'")
            limit = before
        self._limit = limit
        try:
            yield
        finally:
            self.con.execute(f"SET memory_limit = '{before}'")
            self._limit = before

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """A block whose writes all land, or none do."""
        self.con.execute("BEGIN TRANSACTION")
        try:
            yield
            self.con.execute("COMMIT")
        except BaseException:
            self.con.execute("ROLLBACK")
            raise

    def has_table(self, name: str) -> bool:
        return bool(
            self.con.execute(
                "SELECT count(*) FROM information_schema.tables "
                "WHERE table_name = ? AND table_catalog = current_database()",
                [name],
            ).fetchall()[0][0]
        )

    def count(self, table: str) -> int:
        return int(self.con.execute(f'SELECT count(*) FROM "{table}"').fetchall()[0][0])

    def input_fingerprint(self) -> str:
        """sha256 over every loaded file's hash: changes whenever the input data changes."""
        rows = self.con.execute(
            "SELECT table_name, sha256, rows_accepted FROM loaded_files ORDER BY table_name, sha256"
        ).fetchall()
        h = hashlib.sha256()
        for r in rows:
            h.update("|".join(map(str, r)).encode())
            h.update(b"\n")
        return h.hexdigest()

    def rows(self, sql: str, params: Sequence[Any] | Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        """Run a query and return its rows as dicts keyed by column name (parameters by position,
        or by name as `$name`)."""
        cur = self.con.execute(sql, params or [])
        cols = [d[0] for d in cur.description]
        return [dict(zip(cols, r, strict=True)) for r in cur.fetchall()]

    def close(self) -> None:
        self._base.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
