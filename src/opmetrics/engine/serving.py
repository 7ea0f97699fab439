"""The serving snapshot: what the web app reads, published by writers, so `serve` and
`ingest`, `compute`, `watch` or `users add` can run at the same time.

DuckDB lets one process write a database file or several read it, never both at once. The
dashboard therefore never opens the store itself. Each writing command, when it has committed,
copies the tables the dashboard shows (stored results of every run, the run register, the
league and session secrets, users, monitoring alerts, and the load and exceptions bookkeeping
that says whether a run is stale) into a new small database beside the store, then points
`CURRENT` at it with an atomic rename. `serve` looks at `CURRENT` before each request and
swaps to a newer snapshot when there is one; requests already running finish on the old one.

Layout, for `opmetrics.duckdb`: `opmetrics.serving/CURRENT` and `opmetrics.serving/<n>.duckdb`.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

from opmetrics.engine.store import Store

# Every table the web app reads (serve/data.py, serve/auth.py, report/anonymise.py's secrets and
# party labels, measures/run.py's stale check). A table a writer has not made yet is skipped.
SERVED_TABLES = (
    "runs",
    "cpm",
    "rsvp",
    "outcomes",
    "legs",
    "benchmarks",
    "diagnostics",
    "availability",
    "run_incidents",
    "run_drill",
    "run_hourly",
    "run_parties",
    "monitor_alerts",
    "users",
    "report_secrets",
    "loaded_files",
    "pmel",
)
KEEP = 3  # snapshots kept: the current one and two a server may still be finishing requests on


def serving_dir(db: str | Path) -> Path:
    db = Path(db)
    return db.with_name(db.stem + ".serving")


def publish(store: Store) -> Path:
    """Copy the served tables of a writable store into a new snapshot and make it current.
    Called by every writing command after it commits; returns the snapshot's path."""
    if store.read_only:
        raise ValueError("a read-only store cannot publish a serving snapshot")
    folder = serving_dir(store.path)
    folder.mkdir(exist_ok=True)
    name = f"{time.time_ns()}.duckdb"
    work = folder / f".{name}.tmp"
    con = store.con
    have = {
        r[0]
        for r in con.execute(
            "SELECT table_name FROM duckdb_tables() WHERE database_name = current_database()"
        ).fetchall()
    }
    con.execute(f"ATTACH '{work.as_posix()}' AS serving_snapshot")
    try:
        for table in SERVED_TABLES:
            if table in have:
                con.execute(f'CREATE TABLE serving_snapshot."{table}" AS SELECT * FROM "{table}"')
    finally:
        con.execute("DETACH serving_snapshot")
    os.replace(work, folder / name)
    pointer = folder / ".CURRENT.tmp"
    pointer.write_text(name + "\n", encoding="utf-8")
    os.replace(pointer, folder / "CURRENT")
    for old in sorted(folder.glob("*.duckdb"), key=lambda p: int(p.stem))[:-KEEP]:
        old.unlink(missing_ok=True)  # a server still reading it keeps its open file
    return folder / name


def current(db: str | Path) -> Path | None:
    """The snapshot `CURRENT` names, or None when no writer has published yet."""
    pointer = serving_dir(db) / "CURRENT"
    try:
        name = pointer.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    path = pointer.parent / name
    return path if path.exists() else None


class Snapshots:
    """The newest published snapshot of a store, opened read-only, swapped when a writer
    publishes a newer one. `store()` is cheap (one stat of `CURRENT`) and safe from any thread."""

    def __init__(self, db: str | Path):
        self.db = Path(db)
        self._lock = threading.Lock()
        self._stamp: tuple[int, int] | None = None
        self._store: Store | None = None
        self._retired: list[Store] = []
        self.generation = 0  # bumped at each swap: whoever caches what it read can tell
        if self.store() is None:
            raise FileNotFoundError(f"{self.db}: no serving snapshot; run a writing command first")

    def _pointer_stamp(self) -> tuple[int, int] | None:
        try:
            st = (serving_dir(self.db) / "CURRENT").stat()
        except FileNotFoundError:
            return None
        return st.st_mtime_ns, st.st_ino

    def store(self) -> Store | None:
        stamp = self._pointer_stamp()
        if stamp == self._stamp and self._store is not None:
            return self._store
        with self._lock:
            if stamp != self._stamp or self._store is None:
                path = current(self.db)
                if path is not None:
                    fresh = Store(path, read_only=True)
                    if self._store is not None:
                        self._retired.append(self._store)
                    # Requests that started on an old snapshot may still be reading it: close
                    # it two swaps later, not now.
                    while len(self._retired) > 2:
                        self._retired.pop(0).close()
                    self._store, self._stamp = fresh, stamp
                    self.generation += 1
        return self._store

    def close(self) -> None:
        for s in [*self._retired, *([self._store] if self._store else [])]:
            s.close()
