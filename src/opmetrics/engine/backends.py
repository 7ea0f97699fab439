"""The execution engines behind one interface. The measures are Ibis expressions and run on any
Ibis backend unchanged; what differs between engines is only how a shared intermediate is kept
for the run (a table, or a checkpointed DataFrame), how it is dropped, and how an engine is told that
row order does not matter. `records.Scope` asks its backend for these and never branches on
the engine's name."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable, Iterator
from typing import Any, Protocol

import ibis

# Name prefix of the cached tables a DuckDB run keeps in the database file (see `drop_scratch`).
SCRATCH = "_om_scratch_"


class Backend(Protocol):
    name: str
    # Whether a query that reads a value back costs next to nothing (an in-process engine), so
    # that a measure may check the data first to choose the cheaper of two equal plans.
    cheap_checks: bool

    def keep(self, key: str, build: Callable[[], ibis.Table], scratch: bool) -> tuple[ibis.Table, str]:
        """`build()` evaluated once and kept for the run: the table to read, and its handle."""
        ...

    def drop(self, table: ibis.Table, handle: str, scratch: bool) -> None:
        """Free what `keep` made."""
        ...

    def unordered(self) -> contextlib.AbstractContextManager[None]:
        """A block whose queries need not keep row order."""
        ...


class DuckDBBackend:
    """Kept intermediates are tables: TEMP, or (`scratch`) ordinary tables of the store, which
    DuckDB compresses as it writes them (docs/performance.md, Design choices measured)."""

    name = "duckdb"
    cheap_checks = True

    def __init__(self, con: Any):
        self.con = con

    def keep(self, key: str, build: Callable[[], ibis.Table], scratch: bool) -> tuple[ibis.Table, str]:
        handle = f"{SCRATCH if scratch else '_om_'}{key}_{uuid.uuid4().hex[:8]}"
        with self.unordered():  # a table's rows have no order to keep
            return self.con.create_table(handle, build(), temp=not scratch), handle

    def drop(self, table: ibis.Table, handle: str, scratch: bool) -> None:
        self.con.drop_table(handle, database=None if scratch else "temp", force=True)

    @contextlib.contextmanager
    def unordered(self) -> Iterator[None]:
        """DuckDB need not keep insertion order through its joins, which lets them spill."""
        self.con.raw_sql("SET preserve_insertion_order = false")
        try:
            yield
        finally:
            self.con.raw_sql("RESET preserve_insertion_order")


class SparkBackend:
    """Kept intermediates are DataFrames checkpointed in the executors' storage, registered as
    temporary views. A cached DataFrame would keep its whole lineage, and Spark analyses the
    lineage of every view a query reads before it swaps in the cached data: measures built on
    measures then analyse plans that grow with each level, and with the party-resend chains
    collapsed (`counting.party_retries_count_separately: false`) that ran the driver out of heap
    on three records. A checkpoint's plan is the data alone."""

    name = "pyspark"
    cheap_checks = False

    def __init__(self, con: Any):
        self.con = con
        self._frames: dict[str, Any] = {}

    @staticmethod
    def _session() -> Any:
        """The session the Ibis connection runs on (the active one is per thread: else the default)."""
        from pyspark.sql import SparkSession

        return SparkSession.getActiveSession() or SparkSession.builder.getOrCreate()

    def keep(self, key: str, build: Callable[[], ibis.Table], scratch: bool) -> tuple[ibis.Table, str]:
        expr = build()
        # Ibis registers in-memory tables (the TRT table) only when it executes a query, and the
        # SQL below needs them registered first: an empty query does that through the public API.
        expr.limit(0).to_pyarrow()
        frame = self._session().sql(str(self.con.compile(expr))).localCheckpoint(eager=True)
        handle = f"_om_{key}_{uuid.uuid4().hex[:8]}"
        frame.createOrReplaceTempView(handle)
        self._frames[handle] = frame
        return self.con.table(handle), handle

    def drop(self, table: ibis.Table, handle: str, scratch: bool) -> None:
        self._session().catalog.dropTempView(handle)
        frame = self._frames.pop(handle, None)
        if frame is not None:
            frame.unpersist()

    def unordered(self) -> contextlib.AbstractContextManager[None]:
        return contextlib.nullcontext()


def backend_of(con: Any) -> Backend:
    """The backend for an Ibis connection."""
    name = getattr(con, "name", "")
    if name == "duckdb":
        return DuckDBBackend(con)
    if name == "pyspark":
        return SparkBackend(con)
    raise ValueError(f"no opmetrics backend for the Ibis backend {name!r} (DuckDB and PySpark are supported)")


def drop_scratch(con: Any) -> int:
    """Drop scratch tables left by a run that did not finish (killed, or out of disk); `con` is
    the store's DuckDB connection."""
    names = [
        r[0]
        for r in con.execute(
            "SELECT table_name FROM duckdb_tables() WHERE NOT temporary AND starts_with(table_name, ?) "
            "AND database_name = current_database()",
            [SCRATCH],
        ).fetchall()
    ]
    for n in names:
        con.execute(f'DROP TABLE IF EXISTS "{n}"')
    return len(names)
