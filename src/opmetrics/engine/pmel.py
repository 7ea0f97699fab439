"""The Performance Measurement Exceptions List (PMEL): an append-only register of exceptions.

OPSG rejects any exception referenced in a report but not on the register (after
001 l.3069 "Performance Measurement Exceptions List").
So a computation applies only entries on this register, every excluded record names the entry
that excluded it, and the register cannot be edited: an entry is withdrawn by appending a
withdrawal. Each entry carries a SHA-256 chained to the previous one, so tampering shows.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import yaml

from opmetrics.engine.store import Store

TABLES = ("service_requests", "alerts")

_DDL = """
CREATE TABLE IF NOT EXISTS pmel (
    entry_no BIGINT PRIMARY KEY,
    exception_id VARCHAR NOT NULL,
    action VARCHAR NOT NULL,
    recorded_at TIMESTAMP NOT NULL,
    recorded_by VARCHAR NOT NULL,
    approved_by VARCHAR,
    reason VARCHAR NOT NULL,
    applies_to VARCHAR,
    window_start TIMESTAMP,
    window_end TIMESTAMP,
    region VARCHAR,
    party_id VARCHAR,
    srv VARCHAR,
    device_id VARCHAR,
    request_ids VARCHAR[],
    chain_sha256 VARCHAR NOT NULL
)
"""

_FIELDS = (
    "exception_id",
    "action",
    "recorded_at",
    "recorded_by",
    "approved_by",
    "reason",
    "applies_to",
    "window_start",
    "window_end",
    "region",
    "party_id",
    "srv",
    "device_id",
    "request_ids",
)


class PmelError(ValueError):
    """An exception entry that cannot be added, or a register that fails verification."""


@dataclass(frozen=True)
class PmelException:
    """An active exception: which records of which input table it takes out of measurement."""

    exception_id: str
    reason: str
    applies_to: str
    recorded_by: str
    approved_by: str | None = None
    window_start: dt.datetime | None = None
    window_end: dt.datetime | None = None
    region: str | None = None
    party_id: str | None = None
    srv: str | None = None
    device_id: str | None = None
    request_ids: list[str] = field(default_factory=list)

    @property
    def rule(self) -> str:
        return f"excluded: {self.exception_id} on the PMEL ({self.reason})"


def _ensure(store: Store) -> None:
    store.con.execute(_DDL)


def _digest(prev: str, entry: dict[str, Any]) -> str:
    body = json.dumps({k: entry.get(k) for k in _FIELDS}, default=str, sort_keys=True)
    return hashlib.sha256((prev + "\n" + body).encode()).hexdigest()


def _entries(store: Store) -> list[dict[str, Any]]:
    if store.read_only:
        try:
            return store.rows("SELECT * FROM pmel ORDER BY entry_no")
        except duckdb.CatalogException:
            return []  # no register yet: nothing excluded
    _ensure(store)
    return store.rows("SELECT * FROM pmel ORDER BY entry_no")


def _append(store: Store, entry: dict[str, Any]) -> dict[str, Any]:
    rows = _entries(store)
    prev = rows[-1]["chain_sha256"] if rows else ""
    entry = {k: entry.get(k) for k in _FIELDS}
    entry["recorded_at"] = entry["recorded_at"] or dt.datetime.now(dt.UTC).replace(tzinfo=None, microsecond=0)
    entry["entry_no"] = len(rows) + 1
    entry["chain_sha256"] = _digest(prev, entry)
    cols = ["entry_no", *_FIELDS, "chain_sha256"]
    store.con.execute(
        f"INSERT INTO pmel ({', '.join(cols)}) VALUES ({', '.join('?' for _ in cols)})",
        [entry[c] for c in cols],
    )
    return entry


def _time(value: Any, what: str) -> dt.datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, dt.datetime):
        t = value
    else:
        try:
            t = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        except ValueError:
            raise PmelError(f"{what}: not an ISO 8601 time: {value!r}") from None
    if t.tzinfo is not None:
        t = t.astimezone(dt.UTC).replace(tzinfo=None)
    return t


def add(store: Store, **entry: Any) -> dict[str, Any]:
    """Append an exception; it must name a reason, who recorded it and what it covers."""
    eid = str(entry.get("exception_id") or "").strip()
    if not eid:
        raise PmelError("exception_id is required")
    for need in ("reason", "recorded_by"):
        if not str(entry.get(need) or "").strip():
            raise PmelError(f"{eid}: {need} is required")
    if entry.get("applies_to") not in TABLES:
        raise PmelError(f"{eid}: applies_to must be one of {list(TABLES)}, got {entry.get('applies_to')!r}")
    entry["window_start"] = _time(entry.get("window_start"), f"{eid}: window_start")
    entry["window_end"] = _time(entry.get("window_end"), f"{eid}: window_end")
    if entry["window_start"] and entry["window_end"] and entry["window_end"] <= entry["window_start"]:
        raise PmelError(f"{eid}: window_end must be after window_start")
    selectors = ("window_start", "region", "party_id", "srv", "device_id", "request_ids")
    if not any(entry.get(k) for k in selectors):
        raise PmelError(
            f"{eid}: an exception must be scoped (a time window, region, party, SRV, device or requests)"
        )
    if any(r["exception_id"] == eid for r in _entries(store)):
        raise PmelError(
            f"{eid}: already on the register; the register is append-only (withdraw and add anew)"
        )
    entry["request_ids"] = list(entry.get("request_ids") or []) or None
    return _append(store, {**entry, "exception_id": eid, "action": "add"})


def withdraw(store: Store, exception_id: str, reason: str, recorded_by: str) -> dict[str, Any]:
    rows = [r for r in _entries(store) if r["exception_id"] == exception_id]
    if not rows:
        raise PmelError(f"{exception_id}: not on the register")
    if any(r["action"] == "withdraw" for r in rows):
        raise PmelError(f"{exception_id}: already withdrawn")
    return _append(
        store,
        {"exception_id": exception_id, "action": "withdraw", "reason": reason, "recorded_by": recorded_by},
    )


def import_file(store: Store, path: Path) -> list[dict[str, Any]]:
    """Append every entry of a YAML list (`exceptions: [...]`) not yet on the register."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
        raise PmelError(f"{path}: cannot read exceptions file: {e}") from None
    items = data.get("exceptions") if isinstance(data, dict) else None
    if not isinstance(items, list):
        raise PmelError(f"{path}: expected a top-level `exceptions:` list")
    known = {r["exception_id"] for r in _entries(store)}
    added = []
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise PmelError(f"{path}: exceptions[{i}] is not a mapping")
        if item.get("exception_id") in known:
            continue
        try:
            added.append(add(store, **item))
        except (PmelError, TypeError) as e:
            raise PmelError(f"{path}: exceptions[{i}]: {e}") from None
    return added


def verify(store: Store) -> str:
    """Recompute the hash chain; return the head hash (the register version) or raise."""
    prev = ""
    for r in _entries(store):
        if _digest(prev, r) != r["chain_sha256"]:
            raise PmelError(
                f"PMEL entry {r['entry_no']} ({r['exception_id']}) was altered after it was recorded"
            )
        prev = r["chain_sha256"]
    return prev or "empty"


def active(store: Store, table: str | None = None) -> list[PmelException]:
    """Exceptions added and not withdrawn, optionally for one input table."""
    rows = _entries(store)
    withdrawn = {r["exception_id"] for r in rows if r["action"] == "withdraw"}
    out = []
    for r in rows:
        if r["action"] != "add" or r["exception_id"] in withdrawn:
            continue
        if table and r["applies_to"] != table:
            continue
        out.append(
            PmelException(
                **{k: r[k] for k in PmelException.__dataclass_fields__ if k != "request_ids"},
                request_ids=list(r["request_ids"] or []),
            )
        )
    return out


def listing(store: Store) -> list[dict[str, Any]]:
    return _entries(store)
