"""The audit log: who viewed or downloaded what, and who changed data, rules, exceptions,
commentary or users. Append-only JSON lines next to the database, hash-chained so that an edited,
removed or reordered entry is detected by `verify`.

It is a file rather than a table because the web app opens the database read-only, and several
processes (the dashboard, the CLI, `watch`) append at once; an exclusive lock serialises them.
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


def _last_line(fh: Any) -> bytes:
    fh.seek(0, os.SEEK_END)
    end = fh.tell()
    if end == 0:
        return b""
    back = min(end, 1 << 16)
    fh.seek(end - back)
    tail = fh.read(back).rstrip(b"\n")
    return tail.rsplit(b"\n", 1)[-1]


class AuditLog:
    def __init__(self, path: Path):
        self.path = Path(path)

    def record(self, actor: str, action: str, target: str, via: str = "cli", **detail: Any) -> dict[str, Any]:
        """Append one entry, chained to the one before it; returns the entry."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a+b") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                last = _last_line(fh)
                prev = json.loads(last) if last else None
                entry: dict[str, Any] = {
                    "seq": (prev["seq"] + 1) if prev else 1,
                    "at": dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds"),
                    "actor": actor,
                    "via": via,
                    "action": action,
                    "target": target,
                    "detail": detail,
                    "prev": prev["hash"] if prev else GENESIS,
                }
                entry["hash"] = _digest(entry)
                fh.seek(0, os.SEEK_END)
                fh.write((json.dumps(entry, default=str) + "\n").encode())
                fh.flush()
                os.fsync(fh.fileno())
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)
        return entry

    def entries(self) -> Iterator[dict[str, Any]]:
        if not self.path.exists():
            return
        with self.path.open(encoding="utf-8") as fh:
            for line in fh:
                if line.strip():
                    yield json.loads(line)

    def verify(self) -> list[str]:
        """Breaks in the chain: an entry changed, removed, inserted or out of order."""
        problems: list[str] = []
        prev_hash, prev_seq = GENESIS, 0
        if not self.path.exists():
            return problems
        with self.path.open(encoding="utf-8") as fh:
            for n, line in enumerate(fh, 1):
                try:
                    e = json.loads(line)
                except json.JSONDecodeError:
                    problems.append(f"line {n}: not JSON")
                    continue
                if e.get("hash") != _digest(e):
                    problems.append(f"line {n} (seq {e.get('seq')}): contents do not match its hash")
                if e.get("prev") != prev_hash:
                    problems.append(f"line {n} (seq {e.get('seq')}): does not follow the entry before it")
                if e.get("seq") != prev_seq + 1:
                    problems.append(f"line {n}: sequence {e.get('seq')} after {prev_seq}")
                prev_hash, prev_seq = e.get("hash", ""), e.get("seq", prev_seq)
        return problems
