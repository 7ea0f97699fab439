"""End to end through the CLI: demo at tiny scale, the pack's figures, explain, errors, help."""

from __future__ import annotations

import csv

import duckdb
import pytest
from typer.testing import CliRunner

from opmetrics.cli import app

runner = CliRunner()


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    res = runner.invoke(app, ["demo", "--out", str(out), "--scale", "tiny"])
    assert res.exit_code == 0, res.output
    return out, res.output


def test_demo_writes_report_and_one_datafile_per_process(demo):
    out, output = demo
    page = out / "report" / "index.html"
    assert page.exists() and "Open the report" in output
    html = page.read_text()
    assert "Methodology <b>2027.1</b>" in html and "input fingerprint" in html
    names = {p.stem for p in (out / "report" / "datafiles").glob("*.csv")}
    assert {"prepayment", "install_commission", "meter_reads", "billing", "cpm"} <= names
    # 11 processes, modes, device types, CPM table, outcomes, availability, league, legs, OPR
    assert len(names) == 19
    assert all((out / "report" / "datafiles" / f"{n}.xlsx").exists() for n in names)
    assert (out / "report" / "pmr-2026-10.pdf").stat().st_size > 100_000
    assert "commentary outstanding" in html and "during the CSP North WAN outage on the 12th" in html
    assert html.count("<svg") >= 10
    assert "24 quarantined" in output.replace(",", "")


def test_every_status_a_run_stores_is_in_the_one_vocabulary(demo):
    """Measures, pack and API name statuses through methodology.status.Status: every status
    in every stored result table of the demo's run is one of its members (a status typed as a
    bare string elsewhere, with a different spelling, would show here)."""
    from opmetrics.methodology.status import Status

    out, _ = demo
    with duckdb.connect(str(out / "opmetrics.duckdb"), read_only=True) as con:
        tables = [r[0] for r in con.execute(
            "SELECT table_name FROM duckdb_columns() WHERE column_name = 'status' "
            "AND schema_name = 'main' AND table_name IN ('cpm', 'outcomes', 'availability')"
        ).fetchall()]  # fmt: skip
        seen = {s for t in tables for (s,) in con.execute(f'SELECT DISTINCT status FROM "{t}"').fetchall()}
    assert len(tables) == 3 and {"target met", "No Events", "ok"} <= seen
    assert seen - {None} <= {s.value for s in Status}, seen - {s.value for s in Status}


def test_datafile_matches_database_and_recomputes_from_counts(demo):
    out, _ = demo
    with (out / "report" / "datafiles" / "prepayment.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    north = next(
        r for r in rows if r["rate"] == "month" and r["level"] == "process" and r["segment"] == "North"
    )
    con = duckdb.connect(str(out / "opmetrics.duckdb"), read_only=True)
    vol, fails, within, denom = con.execute(
        "SELECT volume, failures, within_trt, trt_denominator FROM rsvp WHERE scope='process' "
        "AND key='prepayment' AND rate='month' AND segment='North'"
    ).fetchone()
    assert int(north["volume"]) == vol and int(north["failures"]) == fails
    run = con.execute("SELECT methodology_version, input_fingerprint, run_id FROM runs").fetchone()
    assert (north["methodology_version"], north["input_fingerprint"], north["run_id"]) == run
    assert float(north["within_trt_pct"]) == pytest.approx(100 * within / denom, rel=1e-5)
    # Independent count straight from the stored requests (prepayment SRVs, North, included).
    direct = con.execute(
        "SELECT count(*) FROM service_requests WHERE srv IN ('1.6','2.1','2.2') AND region='North' "
        "AND report_status NOT IN (1,5,9,10,11,12,13,14,17,20,21,24,30,31,36,37) "
        "AND coalesce(response_code, '') NOT IN ('E4', 'E8') "
        "AND report_date BETWEEN DATE '2026-10-01' AND DATE '2026-10-31'"
    ).fetchone()[0]
    assert direct == vol


def test_explain_shows_rules_for_a_request(demo):
    out, _ = demo
    con = duckdb.connect(str(out / "opmetrics.duckdb"), read_only=True)
    rid = con.execute("SELECT request_id FROM service_requests WHERE response_code='E21' LIMIT 1").fetchone()[
        0
    ]
    con.close()
    res = runner.invoke(app, ["explain", rid, "--db", str(out / "opmetrics.duckdb")])
    assert res.exit_code == 0, res.output
    # 2027.1: an E21 reached the User, so RSVP counts no failure; it is a payload failure, and an
    # outcome failure. 001 l.105 "success of an SRV would be if Users received a response".
    assert '"failed": false' in res.output and '"payload_failure": true' in res.output
    assert '"outcome_failed": true' in res.output and "response code E21" in res.output
    assert "row" in res.output and '"methodology": "2027.1"' in res.output


def test_ingest_reports_a_broken_file_and_exits_nonzero(tmp_path):
    bad = tmp_path / "service_requests.csv"
    bad.write_text("what,ever\n1,2\n")
    res = runner.invoke(app, ["ingest", str(bad), "--db", str(tmp_path / "x.duckdb")])
    assert res.exit_code == 1
    text = " ".join(res.output.split())  # Rich wraps to the terminal width
    assert "header does not match" in text and "nothing loaded" in text


def test_compute_without_data_is_a_clear_error(tmp_path):
    res = runner.invoke(app, ["compute", "--period", "2026-10", "--db", str(tmp_path / "e.duckdb")])
    assert res.exit_code == 1 and "no service requests loaded for 2026-10" in " ".join(res.output.split())


@pytest.mark.parametrize(
    "cmd",
    [
        [],
        ["simulate"],
        ["ingest"],
        ["compute"],
        ["report"],
        ["demo"],
        ["explain"],
        ["contract", "docs"],
        ["check-methodology"],
    ],
)
def test_every_command_has_help(cmd):
    res = runner.invoke(app, [*cmd, "--help"])
    assert res.exit_code == 0 and "Usage" in res.output and len(res.output) > 200


def test_exceptions_cli_appends_and_lists(tmp_path):
    f = tmp_path / "pmel.yaml"
    f.write_text(
        "exceptions:\n"
        "  - {exception_id: PMEL-7, reason: CSP North planned test, recorded_by: ops, approved_by: panel,\n"
        "     applies_to: service_requests, region: North, window_start: '2026-10-05T10:00:00Z',\n"
        "     window_end: '2026-10-05T11:00:00Z'}\n"
    )
    db = str(tmp_path / "x.duckdb")
    res = runner.invoke(app, ["exceptions", "add", str(f), "--db", db])
    assert res.exit_code == 0 and "PMEL-7" in res.output, res.output
    again = runner.invoke(app, ["exceptions", "add", str(f), "--db", db])
    assert "none new" in again.output
    listing = runner.invoke(app, ["exceptions", "list", "--db", db])
    assert listing.exit_code == 0 and "PMEL-7" in listing.output and "add" in listing.output
    bad = runner.invoke(app, ["exceptions", "withdraw", "PMEL-9", "--reason", "x", "--by", "y", "--db", db])
    assert bad.exit_code == 1 and "not on the register" in bad.output


READ_COMMANDS = [["users", "list"], ["exceptions", "list"], ["quarantine"], ["explain", "R-1"]]


def test_read_commands_create_nothing_and_change_nothing(tmp_path):
    """The commands that only look open the store read-only: a missing database is refused by
    name and no file appears (the fuzzer's `--db party` once left one in the checkout); an
    existing one is left byte for byte as it was."""
    import hashlib

    for cmd in READ_COMMANDS:
        missing = tmp_path / "absent.duckdb"
        res = runner.invoke(app, [*cmd, "--db", str(missing)])
        assert res.exit_code == 1 and "no such database" in " ".join(res.output.split()), (cmd, res.output)
        assert list(tmp_path.iterdir()) == [], cmd
    db = tmp_path / "x.duckdb"
    f = tmp_path / "pmel.yaml"
    f.write_text(
        "exceptions:\n"
        "  - {exception_id: PMEL-7, reason: test, recorded_by: ops, approved_by: panel,\n"
        "     applies_to: service_requests, region: North, window_start: '2026-10-05T10:00:00Z',\n"
        "     window_end: '2026-10-05T11:00:00Z'}\n"
    )
    assert runner.invoke(app, ["exceptions", "add", str(f), "--db", str(db)]).exit_code == 0
    before = hashlib.sha256(db.read_bytes()).hexdigest()
    for cmd in READ_COMMANDS[:3]:
        res = runner.invoke(app, [*cmd, "--db", str(db)])
        assert res.exit_code == 0, (cmd, res.output)
    assert hashlib.sha256(db.read_bytes()).hexdigest() == before
    assert not db.with_name("x.duckdb.wal").exists()


def test_materialised_intermediates_give_the_same_figures(demo, tmp_path):
    """The per-run temporary tables are an optimisation only: computing with every measure
    re-evaluating its inputs must store exactly the same rows."""
    import shutil

    from opmetrics.engine.store import Store
    from opmetrics.measures.run import compute, latest_run
    from opmetrics.methodology import load as load_methodology

    out, _ = demo
    db = tmp_path / "copy.duckdb"
    shutil.copy(out / "opmetrics.duckdb", db)
    m = load_methodology()
    tables = ("rsvp", "outcomes", "cpm")

    def snapshot(store: Store) -> dict[str, list[tuple]]:
        return {
            t: sorted(map(repr, store.con.execute(f"SELECT * EXCLUDE (run_id) FROM {t}").fetchall()))
            for t in tables
        }

    with Store(db) as store:
        before = latest_run(store, "2026-10")
        assert before is not None
        compute(store, m, "2026-10", as_of=before.as_of, materialise=True)
        fast = snapshot(store)
        compute(store, m, "2026-10", as_of=before.as_of, materialise=False)
        slow = snapshot(store)
        leftover = store.con.execute(
            "SELECT count(*) FROM duckdb_tables() WHERE table_name LIKE '_om_%'"
        ).fetchall()[0][0]
    assert all(len(fast[t]) > 10 for t in tables)
    assert fast == slow
    assert leftover == 0


def test_spark_compute_names_a_bad_layout_and_a_bad_report_time(tmp_path):
    # Both are checked before any Spark session starts (no Java needed).
    res = runner.invoke(app, ["spark-compute", str(tmp_path), "--period", "2026-10"])
    assert res.exit_code == 1 and "not a Parquet layout" in " ".join(res.output.split())
    (tmp_path / "_inputs.json").write_text("{}")
    res = runner.invoke(app, ["spark-compute", str(tmp_path), "--period", "2026-10", "--as-of", "soon"])
    text = " ".join(res.output.split())
    assert res.exit_code == 1 and "--as-of must be an ISO 8601 time" in text and "'soon'" in text
    res = runner.invoke(app, ["watch", "--db", str(tmp_path / "w.duckdb"), "--replay-from", "yesterday"])
    assert res.exit_code == 1 and "--replay-from must be an ISO 8601 time" in " ".join(res.output.split())
