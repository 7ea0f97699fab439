"""Shared helpers: build contract-shaped rows by hand and load them into a fresh store."""

from __future__ import annotations

import os

# CLI tables are read by the tests: give Rich the same width whether or not the runner has a
# terminal (pytest-xdist workers have none and would wrap at 80 columns). Set before the CLI's
# console is created.
os.environ["COLUMNS"] = "200"
# Cube model fingerprints compiled by one test process are reused by the others (workers, CLI
# subprocesses) through this run's own cache, never the user's (incremental.models_cache_dir).
if "OPMETRICS_CACHE_DIR" not in os.environ:
    import tempfile

    os.environ["OPMETRICS_CACHE_DIR"] = tempfile.mkdtemp(prefix="opmetrics-test-cache-")

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


def memory_limit(con: Any) -> str:
    """DuckDB's memory limit in force on `con`, as DuckDB shows it."""
    return con.execute("SELECT current_setting('memory_limit')").fetchall()[0][0]


def limit_watch(store: Store, lower: str, monkeypatch: pytest.MonkeyPatch) -> tuple[str, str, list[str]]:
    """(the store's own limit, how DuckDB shows `lower`, the limits each file load ran under):
    `lower` is set and read once, then the store's own limit is restored; every
    `load._load_in_transaction` call from then on records the limit in force."""
    from opmetrics.ingest import load

    own = memory_limit(store.con)
    store.con.execute(f"SET memory_limit = '{lower}'")
    shown = memory_limit(store.con)
    store.con.execute(f"SET memory_limit = '{store.memory_limit}'")
    assert own == memory_limit(store.con) != shown
    seen: list[str] = []
    real = load._load_in_transaction
    monkeypatch.setattr(
        load, "_load_in_transaction", lambda st, *a: seen.append(memory_limit(st.con)) or real(st, *a)
    )
    return own, shown, seen


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


# --- One suite, two engines -------------------------------------------------------------------
# A test that asks for `compute_with` (or a fixture that takes `engine`) runs once on DuckDB and
# once on Spark. On Spark, the month is computed by `compute_spark` over the store's Parquet
# layout and its result tables replace DuckDB's in the store under the same run id, so every
# assertion reads Spark's figures. OPMETRICS_SPARK=all runs every such test on Spark; the default
# (subset) only those marked `spark_ci`, which CI can afford; off runs none.
SPARK_RUNS = os.environ.get("OPMETRICS_SPARK", "subset")
SPARK_ON_DEMAND = "on Spark on demand: OPMETRICS_SPARK=all"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "spark_ci: also run on Spark in the default (CI) run")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "engine" in metafunc.fixturenames:
        metafunc.parametrize("engine", ["duckdb", "spark"], scope="module")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        callspec = getattr(item, "callspec", None)
        if callspec is None or callspec.params.get("engine") != "spark":
            continue
        if SPARK_RUNS == "off" or (SPARK_RUNS != "all" and item.get_closest_marker("spark_ci") is None):
            item.add_marker(pytest.mark.skip(reason=SPARK_ON_DEMAND))


@pytest.fixture(scope="session")
def spark_session():
    import shutil

    if shutil.which("java") is None:
        pytest.skip("Spark needs a Java runtime")
    from opmetrics.engine.spark import session

    spark = session("local[2]", **{"spark.sql.shuffle.partitions": "2"})
    yield spark
    spark.stop()


def compute_on(engine: str, store: Store, m: methodology.Methodology, period: str, as_of=None, spark=None):
    """`compute` on DuckDB; on Spark, the same month's result tables from `compute_spark`."""
    import datetime as dt
    import tempfile

    from opmetrics.engine.spark import export_parquet
    from opmetrics.measures.run import compute, compute_spark, store_results

    info = compute(store, m, period, as_of=as_of)
    if engine == "duckdb":
        return info
    assert isinstance(info.as_of, dt.datetime)
    with tempfile.TemporaryDirectory(prefix="spark-layout-") as layout:
        export_parquet(store, layout)
        got = compute_spark(layout, m, period, info.as_of, spark)
    store.con.execute("BEGIN TRANSACTION")
    store_results(store, period, info.run_id, got)
    store.con.execute("COMMIT")
    return info


@pytest.fixture
def compute_with(engine: str, request: pytest.FixtureRequest):
    """`compute(store, m, period, as_of=...)` on the test's engine."""
    spark = request.getfixturevalue("spark_session") if engine == "spark" else None

    def run(store: Store, m: methodology.Methodology, period: str, as_of=None):
        return compute_on(engine, store, m, period, as_of, spark)

    return run
