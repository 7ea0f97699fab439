"""Reliability (issue 10): runs killed with SIGKILL resume to the same database and pack as an
uninterrupted run; the harness's own checks see a lost, doubled or half-loaded row."""

from __future__ import annotations

import duckdb
from conftest import bench_module, load_rows, rid, sr, write_csv

from opmetrics.ingest.load import load_file

crash = bench_module("crash")


def test_killed_runs_resume_to_the_same_database_and_pack(tmp_path):
    # Two kill points, one in each half of a run over one simulated day (the 50-point run is
    # `bench/crash.py`; its result is in docs/reliability.md).
    res = crash.harness(points=2, days=1, work=tmp_path, seed=11)
    assert res["tables"] >= 20 and res["pack_files"] >= 20
    assert res["killed"] >= 1, res
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


def test_duplicates_are_reported_not_counted_and_corrections_are_traced(store, tmp_path):
    from typer.testing import CliRunner

    from opmetrics.cli import app

    load_rows(store, tmp_path, "service_requests", [sr(1), sr(2), sr(2)], name="a")
    resend = load_rows(store, tmp_path, "service_requests", [sr(1), sr(3)], name="b")
    assert (resend.accepted, resend.quarantined) == (1, 1)
    fix = write_csv(tmp_path / "fix.csv", [sr(3, response_code="E62"), sr(9)])
    fixed = load_file(store, fix, "service_requests", corrections=True)
    assert (fixed.accepted, fixed.quarantined) == (1, 1)  # request 9 was never loaded
    assert store.count("service_requests") == 3  # 1, 2, 3: none doubled
    assert store.rows("SELECT response_code FROM service_requests WHERE request_id = ?", [rid(3)]) == [
        {"response_code": "E62"}
    ]
    store.close()
    res = CliRunner().invoke(
        app, ["quarantine", "--db", str(tmp_path / "test.duckdb")], env={"COLUMNS": "200"}
    )
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()
    assert any("request_id: duplicate request_id" in ln and " 2 " in ln for ln in lines), res.output
    assert any("correction for a record never loaded" in ln and " 1 " in ln for ln in lines), res.output
    assert "service_requests: 1 record(s) replaced by corrections" in res.output


def test_bad_paths_and_periods_fail_with_a_message_not_a_traceback(tmp_path):
    """Found by fuzzing the CLI: these raised OSError, duckdb.IOException or ValueError."""
    from typer.testing import CliRunner

    from opmetrics.cli import app

    long = str(tmp_path / ("a" * 300))
    cases = [
        (["audit", "--db", long], "cannot read the audit log"),
        (["ingest-duis", long], "cannot be read"),
        (["exceptions", "list", "--db", long], "cannot open the database"),
        (["ingest", str(tmp_path), "--db", "/dev/null"], "not a database file"),
        (["party-rtt", str(tmp_path), "--party", "SUP-A", "--period", "national"], "is not a month"),
    ]
    for args, message in cases:
        res = CliRunner().invoke(app, args, env={"COLUMNS": "300"})
        assert res.exit_code in (1, 2) and not isinstance(res.exception, (OSError, ValueError)), args
        assert message in " ".join(res.output.split()), (args, res.output)
