"""Reliability (issue 10): runs killed with SIGKILL resume to the same database and pack as an
uninterrupted run; the harness's own checks see a lost, doubled or half-loaded row."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import duckdb
from conftest import load_rows, sr

BENCH = Path(__file__).resolve().parents[1] / "bench"


def _crash_module():
    spec = importlib.util.spec_from_file_location("crash", BENCH / "crash.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    sys.modules["crash"] = mod
    spec.loader.exec_module(mod)
    return mod


crash = _crash_module()


def test_killed_runs_resume_to_the_same_database_and_pack(tmp_path):
    # Three kill points spread over ingest, compute and report of two simulated days (the
    # 50-point run is `bench/crash.py`; its result is in docs/reliability.md).
    res = crash.harness(points=3, days=2, work=tmp_path, seed=11)
    assert res["tables"] >= 20 and res["pack_files"] >= 20
    assert res["killed"] >= 2, res
    bad = [t for t in res["trials"] if t["problems_after_kill"] or t["differences"]]
    assert not bad, bad


def test_the_harness_sees_lost_doubled_and_half_loaded_rows(store, tmp_path):
    load_rows(store, tmp_path, "service_requests", [sr(1), sr(2), sr(3), sr(3)])  # one duplicate
    store.close()
    db = tmp_path / "test.duckdb"
    pack = tmp_path / "pack"
    pack.mkdir()
    (pack / "figures.json").write_text("{}")
    clean = crash.snapshot(db, pack)
    assert crash.consistency(db) == ([], 1)
    assert clean["table service_requests"].startswith("3 rows")
    assert clean["table quarantine"].startswith("1 rows")

    con = duckdb.connect(str(db))
    con.execute("INSERT INTO service_requests SELECT * FROM service_requests WHERE request_id LIKE '%:1'")
    con.close()
    doubled = crash.snapshot(db, pack)
    assert doubled["table service_requests"] != clean["table service_requests"]
    problems, _ = crash.consistency(db)
    assert problems == ["file 1 (service_requests): 4/3 rows, 1/1 quarantined"]

    con = duckdb.connect(str(db))
    con.execute("DELETE FROM service_requests WHERE request_id LIKE '%:1' OR request_id LIKE '%:2'")
    con.close()
    assert crash.consistency(db)[0] == ["file 1 (service_requests): 1/3 rows, 1/1 quarantined"]
    (pack / "figures.json").write_text('{"changed": 1}')
    assert crash.snapshot(db, pack)["pack figures.json"] != clean["pack figures.json"]
