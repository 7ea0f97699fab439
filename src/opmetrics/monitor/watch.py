"""`opmetrics watch`: load micro-batches as they arrive and evaluate the rules every minute.

Files dropped into a folder are loaded through the same validation, quarantine and
idempotency as `opmetrics ingest` (a file is named after its table, e.g.
`service_requests-0915.csv`). Lines on standard input (CSV with a header, for
`service_requests`) are gathered into a micro-batch file every few seconds and loaded the same way.
"""

from __future__ import annotations

import datetime as dt
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from opmetrics.engine.store import Store
from opmetrics.ingest.load import IngestError, find_files, load_file
from opmetrics.monitor.engine import Monitor


class StdinBatcher(threading.Thread):
    """Collects CSV lines from standard input into micro-batch files in the drop folder."""

    def __init__(self, drop: Path, every_s: float = 5.0, stream=None):
        super().__init__(daemon=True)
        self.drop, self.every_s, self.stream = drop, every_s, stream or sys.stdin
        self.header: str | None = None
        self.lines: list[str] = []
        self.lock = threading.Lock()
        self.done = False
        self.n = 0

    def run(self) -> None:
        for line in self.stream:
            with self.lock:
                if self.header is None:
                    self.header = line
                elif line.strip():
                    self.lines.append(line)
        self.done = True

    def flush(self) -> Path | None:
        with self.lock:
            if not self.lines or self.header is None:
                return None
            self.n += 1
            path = self.drop / f"service_requests-stdin-{int(time.time())}-{self.n:05d}.csv"
            path.write_text(self.header + "".join(self.lines), encoding="utf-8")
            self.lines = []
            return path


def load_new(store: Store, drop: Path, seen: set[str], report: Callable[[str], None]) -> int:
    """Load files in `drop` not seen before (loading is idempotent anyway)."""
    n = 0
    for path in find_files([drop]):
        if str(path) in seen:
            continue
        seen.add(str(path))
        try:
            res = load_file(store, path)
            n += res.accepted
            report(f"{path.name}: {res.status}, {res.accepted:,} accepted, {res.quarantined:,} quarantined")
        except IngestError as e:
            report(f"[red]{e}[/]")
    return n


def watch(
    store: Store,
    monitor: Monitor,
    drop: Path,
    use_stdin: bool,
    report: Callable[[str], None],
    clock: Callable[[], dt.datetime] | None = None,
    max_cycles: int | None = None,
    interval: float | None = None,
    published: Callable[[], Any] | None = None,
) -> None:
    """Load what lands in `drop` and evaluate the rules, every interval; `published` is called
    after each cycle (the CLI publishes the serving snapshot, so the dashboard's alerts move)."""
    drop.mkdir(parents=True, exist_ok=True)
    batcher = StdinBatcher(drop) if use_stdin else None
    if batcher:
        batcher.start()
    seen: set[str] = set()
    now_fn = clock or (lambda: dt.datetime.now(dt.UTC).replace(tzinfo=None))
    interval = monitor.rules.evaluate_every_seconds if interval is None else interval
    cycles = 0
    while max_cycles is None or cycles < max_cycles:
        if batcher:
            batcher.flush()
        load_new(store, drop, seen, report)
        monitor.evaluate(now_fn())
        if published is not None:
            published()
        cycles += 1
        if batcher and batcher.done and not batcher.lines:
            batcher = None
        if max_cycles is None or cycles < max_cycles:
            time.sleep(interval)
