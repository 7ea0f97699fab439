"""Shared helpers: build contract-shaped rows by hand and load them into a fresh store."""

from __future__ import annotations

import os

# CLI tables are read by the tests: give Rich the same width whether or not the runner has a
# terminal (pytest-xdist workers have none and would wrap at 80 columns). Set before the CLI's
# console is created.
os.environ["COLUMNS"] = "200"

import csv  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import pytest  # noqa: E402

from opmetrics import methodology  # noqa: E402
from opmetrics.engine.store import Store  # noqa: E402
from opmetrics.ingest.load import load_file  # noqa: E402
from opmetrics.methodology.contract import load_contract  # noqa: E402

ORIGINATOR = "90-B3-D5-1F-30-01-00-0A"
DEVICE = "00-DB-00-00-00-00-00-01"


def bench_module(name: str):
    """A script from bench/ imported as a module (the tests run its harness with small sizes)."""
    import importlib.util
    import sys

    path = Path(__file__).resolve().parents[1] / "bench" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod  # dataclasses look their module up by name
    spec.loader.exec_module(mod)
    return mod


def overridden(row: dict[str, Any], kw: dict[str, Any]) -> dict[str, Any]:
    """A default CSV row with overrides applied as CSV text (None becomes an empty field)."""
    row.update({k: ("" if v is None else str(v)) for k, v in kw.items()})
    return row


def rid(n: int) -> str:
    return f"{ORIGINATOR}:{DEVICE}:{n}"


def sr(n: int, **kw: Any) -> dict[str, Any]:
    """A valid service_requests row (2.2 top-up, North, answered I0) with overrides."""
    row = {
        "request_id": rid(n),
        "party_id": "SUP-A",
        "user_role": "IS",
        "srv": "2.2",
        "mode": "on-demand",
        "critical": "false",
        "device_id": DEVICE,
        "device_type": "ESME",
        "smets": "2",
        "region": "North",
        "received_at": "2026-10-05T10:00:00.000Z",
        "responded_at": "2026-10-05T10:00:02.000Z",
        "response_code": "I0",
        "report_status": "2",
        "dsp_attempts": "1",
        "quarantine_released_at": "",
    }
    return overridden(row, kw)


def alert(aid: str, **kw: Any) -> dict[str, Any]:
    row = {
        "alert_id": aid,
        "alert_code": "8F35",
        "kind": "device",
        "device_id": DEVICE,
        "device_type": "ESME",
        "smets": "2",
        "region": "North",
        "party_id": "SUP-A",
        "request_id": "",
        "raised_at": "2026-10-05T12:00:00.000Z",
        "delivered_at": "2026-10-05T12:00:01.000Z",
        "suppressed": "false",
    }
    return overridden(row, kw)


def write_csv(path: Path, rows: list[dict[str, Any]], table: str | None = None) -> Path:
    fields = list(rows[0]) if rows else load_contract().table(table or "service_requests").field_names
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=fields)
        w.writeheader()
        w.writerows(rows)
    return path


@pytest.fixture
def store(tmp_path: Path):
    s = Store(tmp_path / "test.duckdb")
    yield s
    s.close()


@pytest.fixture(scope="session")
def meth() -> methodology.Methodology:
    return methodology.load()


# Each published methodology version, for tests that pin figures under both readings.
VERSIONS = {
    "2026.4": Path(methodology.__file__).parent / "opmetrics-2026.4.yaml",
    "2027.1": methodology.default_path(),
}


@pytest.fixture(scope="session")
def meths() -> dict[str, methodology.Methodology]:
    return {v: methodology.load(p) for v, p in VERSIONS.items()}


def load_rows(store: Store, tmp: Path, table: str, rows: list[dict[str, Any]], name: str = "in"):
    return load_file(store, write_csv(tmp / f"{name}-{table}.csv", rows, table), table)
