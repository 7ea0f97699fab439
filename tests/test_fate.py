"""One definition of a request's fate (issue 31 item 9): the run summary, the RSVP figures,
monitoring, the dashboard's drill-down and the party-side RTT report count the same requests
of a simulated month the same way, and the run summary's "included" count agrees with SQL
written here from the methodology's lists (not through opmetrics' rules)."""

from __future__ import annotations

import datetime as dt

import pytest
from typer.testing import CliRunner

from opmetrics.cli import app
from opmetrics.engine.store import Store
from opmetrics.measures.party_rtt import party_rtt_report
from opmetrics.measures.records import uk_midnight_utc
from opmetrics.measures.run import latest_run
from opmetrics.methodology import load as load_methodology
from opmetrics.monitor.engine import Monitor, Rule, load_rules
from opmetrics.serve.auth import User
from opmetrics.serve.data import DataService

PERIOD = "2026-10"
PARTY = "SUP-A"
runner = CliRunner()


@pytest.fixture(scope="module")
def month(tmp_path_factory):
    from opmetrics.ingest.duis_pairing import load_party_logs
    from opmetrics.simulate.duis import write_duis_logs

    base = tmp_path_factory.mktemp("fate")
    db = base / "om.duckdb"
    for args in (
        ["simulate", "--scale", "tiny", "--out", str(base / "data")],
        ["ingest", str(base / "data"), "--db", str(db)],
        ["compute", "--period", PERIOD, "--db", str(db)],
    ):
        res = runner.invoke(app, args)
        assert res.exit_code == 0, res.output
    write_duis_logs(base / "data", base / "party", party=PARTY)
    m = load_methodology()
    with Store(db) as store:
        load_party_logs(store, m, sorted((base / "party").rglob("*.jsonl.gz")), PARTY)
        yield store, m


def _included_sql(m) -> tuple[str, dict]:
    """Inclusion as the methodology's lists state it: a counted report status, a response code
    not outside DCC control (the PMEL register is empty in the simulated month)."""
    return (
        "report_status IN (SELECT unnest($inc)) AND coalesce(response_code, '') NOT IN "
        "(SELECT unnest($outside)) AND report_date BETWEEN DATE '2026-10-01' AND DATE '2026-10-31'",
        {"inc": m.report_status.included, "outside": m.codes("failure_outside")},
    )


def test_run_summary_counts_what_the_rsvp_figures_count(month):
    store, m = month
    run = latest_run(store, PERIOD)
    where, params = _included_sql(m)
    sql = f"SELECT count(*) FROM service_requests WHERE {where}"
    by_sql = store.con.execute(sql, params).fetchall()[0][0]
    assert run.requests_included == by_sql > 1000
    # Every request of the period is either included or excluded by exactly one named rule.
    excluded = run.exclusions()
    assert excluded and all(k.startswith("excluded: ") for k in excluded)
    assert run.requests_included + sum(excluded.values()) == run.requests_in_period
    status_1 = store.con.execute(
        "SELECT count(*) FROM service_requests WHERE report_status = 1 "
        "AND report_date BETWEEN DATE '2026-10-01' AND DATE '2026-10-31'"
    ).fetchall()[0][0]
    key = 'excluded: report status 1 not in reporting (001 l.598 "Included in Reporting")'
    assert excluded.get(key, 0) == status_1
    # The RSVP figures per SRV add up to the same requests (dsp retries count once).
    srvs = [r[0] for r in store.con.execute("SELECT DISTINCT key FROM rsvp WHERE scope = 'srv'").fetchall()]
    rsvp = store.con.execute(
        "SELECT sum(volume) FROM rsvp WHERE scope = 'srv' AND rate = 'month' AND segment = 'All'"
    ).fetchall()[0][0]
    of_srvs = store.con.execute(
        f"SELECT count(*) FROM service_requests WHERE {where} AND srv IN (SELECT unnest($srvs))",
        {**params, "srvs": srvs},
    ).fetchall()[0][0]
    assert rsvp == of_srvs


def test_monitoring_over_the_month_counts_what_the_report_counts(month):
    store, m = month
    mon = Monitor(store, m, load_rules())
    rule = Rule(
        id="whole-month",
        kind="threshold",
        description="-",
        measure="volume",
        group_by=[],
        window=1,
        open_below=0,  # never opens: the test reads only the counts the rule groups
        severity="minor",
    )
    start = uk_midnight_utc(dt.date(2026, 10, 1))
    end = uk_midnight_utc(dt.date(2026, 11, 1))
    later = end + dt.timedelta(days=30)  # every outcome known
    (got,) = mon._grouped(rule, start, later, end)
    # The SRVs that RSVP reports: a national monitoring window also sees the others.
    srvs = [r[0] for r in store.con.execute("SELECT DISTINCT key FROM rsvp WHERE scope = 'srv'").fetchall()]
    rule_srv = Rule(
        id="per-srv",
        kind="threshold",
        description="-",
        measure="volume",
        group_by=["srv"],
        window=1,
        open_below=0,
        severity="minor",
    )
    per_srv = {r["srv"]: r for r in mon._grouped(rule_srv, start, later, end)}
    assert sum(r["volume"] for r in per_srv.values()) == got["volume"]
    want = store.con.execute(
        "SELECT sum(volume), sum(failures), sum(payload_failures) FROM rsvp_modes "
        "WHERE scope = 'srv' AND segment = 'All' AND mode = 'on-demand'"
    ).fetchall()[0]
    seen = [per_srv[s] for s in srvs if s in per_srv]
    assert (
        sum(r["volume"] for r in seen),
        sum(r["rsvp_failures"] for r in seen),
        sum(r["payload_failures"] for r in seen),
    ) == want
    assert want[0] > 1000 and want[2] > 0


def test_drill_down_and_party_rtt_count_what_the_report_counts(month):
    store, m = month
    data = DataService(store, m)
    dcc = User("analyst", "dcc", None)
    for process in ("prepayment", "meter_reads"):
        rsvp = store.con.execute(
            "SELECT volume, failures FROM rsvp WHERE scope = 'process' AND key = ? AND rate = 'month' "
            "AND segment = 'All'",
            [process],
        ).fetchall()[0]
        rows = data.drill(PERIOD, dcc, process, "region", {})
        assert (sum(r["volume"] for r in rows), sum(r["failures"] for r in rows)) == rsvp
    # The party's own log, matched at the DCC: its included requests per SRV (every mode) are
    # the drill's, and the on-demand ones' mean RTT is the drill's (RTT counts on-demand only).
    party = party_rtt_report(store, m, PARTY, PERIOD)
    drilled = data.drill(PERIOD, dcc, "prepayment", "srv", {"party": PARTY})
    assert drilled
    for r in drilled:
        rows = [p for p in party if p["srv"] == r["key"]]
        assert sum(p["dcc_included"] for p in rows) == r["volume"], r["key"]
        (on_demand,) = [p for p in rows if p["mode"] == "on-demand"]
        assert on_demand["dcc_mean_s"] == pytest.approx(r["rtt_mean_s"])
