"""The audit log: who viewed or downloaded what, and who changed data, rules, exceptions,
commentary or users. Append-only JSON lines next to the database, hash-chained so that an edited,
removed or reordered entry is detected by `verify`.

It is a file rather than a table because the web app never opens the database (it reads a
serving snapshot), and several processes (the dashboard, the CLI, `watch`) append at once; an
exclusive lock serialises them.
Entries never hold passwords, tokens or session cookies: callers pass names and ids only.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import getpass
import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ACTOR_ENV = "OPMETRICS_ACTOR"
GENESIS = "0" * 64
MAX_TEXT = 1024  # characters kept of any one field (a URL, a query): entries stay small
MAX_SCAN = 16 << 20  # bytes read back, at most, to find the last whole entry


def audit_path(db: Path) -> Path:
    """`opmetrics.duckdb` -> `opmetrics.audit.jsonl`, beside it."""
    return db.with_name(db.stem + ".audit.jsonl")


def cli_actor() -> str:
    """Who runs a command: $OPMETRICS_ACTOR (set by a scheduler or wrapper), else the OS user."""
    if os.environ.get(ACTOR_ENV):
        return os.environ[ACTOR_ENV]
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid {os.getuid()}"


def _digest(entry: dict[str, Any]) -> str:
    body = json.dumps({k: v for k, v in entry.items() if k != "hash"}, sort_keys=True, default=str)
    return hashlib.sha256(body.encode()).hexdigest()


def _bounded(value: Any) -> Any:
    """A field as it is logged: text cut to MAX_TEXT characters (saying how much was cut),
    containers bounded the same way, so no request can write an entry of unbounded size."""
    if isinstance(value, str):
        return value if len(value) <= MAX_TEXT else f"{value[:MAX_TEXT]}…(+{len(value) - MAX_TEXT:,} chars)"
    if isinstance(value, dict):
        return {_bounded(str(k)): _bounded(v) for k, v in list(value.items())[:50]}
    if isinstance(value, list | tuple):
        return [_bounded(v) for v in list(value)[:50]]
    return value if value is None or isinstance(value, bool | int | float) else _bounded(str(value))


def _last_entry(fh: Any) -> tuple[dict[str, Any] | None, bool]:
    """The last whole entry of the log (None for an empty one), and whether the file ends in the
    middle of a line. Lines that are not entries (a write cut short) are skipped: the chain goes
    on from the last good entry and `verify` reports the damaged line."""
    fh.seek(0, os.SEEK_END)
    end = fh.tell()
    if end == 0:
        return None, False
    fh.seek(end - 1)
    cut = fh.read(1) != b"\n"
    start = max(0, end - MAX_SCAN)
    pos, tail = end, b""
    while pos > start:
        step = min(1 << 16, pos - start)
        pos -= step
        fh.seek(pos)
        tail = fh.read(step) + tail
        lines = tail.split(b"\n")
        # The first piece may be a partial line unless the read reached the file's start.
        for line in reversed(lines if pos == 0 else lines[1:]):
            try:
                e = json.loads(line)
            except ValueError:
                continue
            if isinstance(e, dict) and "seq" in e and "hash" in e:
                return e, cut
        tail = lines[0] if pos > 0 else b""
    return None, cut


class AuditLog:
    def __init__(self, path: Path):
        self.path = Path(path)

    def record(self, actor: str, action: str, target: str, via: str = "cli", **detail: Any) -> dict[str, Any]:
        """Append one entry, chained to the one before it; returns the entry."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a+b") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                prev, cut = _last_entry(fh)
                entry: dict[str, Any] = {
                    "seq": (prev["seq"] + 1) if prev else 1,
                    "at": dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds"),
                    "actor": _bounded(actor),
                    "via": _bounded(via),
                    "action": _bounded(action),
                    "target": _bounded(target),
                    "detail": _bounded(detail),
                    "prev": prev["hash"] if prev else GENESIS,
                }
                entry["hash"] = _digest(entry)
                fh.seek(0, os.SEEK_END)
                # After a write cut short, start on a new line: the damaged one stays, reported.
                fh.write((("\n" if cut else "") + json.dumps(entry, default=str) + "\n").encode())
                fh.flush()
                os.fsync(fh.fileno())
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)
        return entry

    def entries(self) -> Iterator[dict[str, Any]]:
        """The whole entries, in order (a damaged line is skipped here; `verify` reports it)."""
        if not self.path.exists():
            return
        with self.path.open(encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if line.strip():
                    try:
                        yield json.loads(line)
                    except ValueError:
                        continue

    def verify(self) -> list[str]:
        """Breaks in the chain: an entry changed, removed, inserted or out of order."""
        problems: list[str] = []
        prev_hash, prev_seq = GENESIS, 0
        if not self.path.exists():
            return problems
        with self.path.open(encoding="utf-8", errors="replace") as fh:
            for n, line in enumerate(fh, 1):
                try:
                    e = json.loads(line)
                except ValueError:
                    problems.append(f"line {n}: not a whole entry (a write cut short or an edit)")
                    continue
                if not isinstance(e, dict):
                    problems.append(f"line {n}: not an entry")
                    continue
                if e.get("hash") != _digest(e):
                    problems.append(f"line {n} (seq {e.get('seq')}): contents do not match its hash")
                if e.get("prev") != prev_hash:
                    problems.append(f"line {n} (seq {e.get('seq')}): does not follow the entry before it")
                if e.get("seq") != prev_seq + 1:
                    problems.append(f"line {n}: sequence {e.get('seq')} after {prev_seq}")
                prev_hash, prev_seq = e.get("hash", ""), e.get("seq", prev_seq)
        return problems
