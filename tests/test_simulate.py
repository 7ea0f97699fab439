"""The synthetic estate: reproducible, contract-valid, chunked, and showing its injected faults."""

from __future__ import annotations

import json

import duckdb
import pyarrow.parquet as pq
import pytest

from opmetrics.engine.store import Store
from opmetrics.ingest.load import find_files, load_file
from opmetrics.simulate import generator
from opmetrics.simulate.generator import simulate_month


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    out = tmp_path_factory.mktemp("sim")
    man = simulate_month("2026-10", out, "tiny", seed=7)
    return out, man


def test_same_seed_same_data_other_seed_other_data(tiny, tmp_path):
    out, _ = tiny
    simulate_month("2026-10", tmp_path / "again", "tiny", seed=7)
    simulate_month("2026-10", tmp_path / "other", "tiny", seed=8)
    day = "service_requests/2026-10-03.parquet"
    a = pq.read_table(out / day)
    assert a.equals(pq.read_table(tmp_path / "again" / day))
    assert not a.equals(pq.read_table(tmp_path / "other" / day))


def test_output_is_valid_under_the_contract(tiny, tmp_path):
    out, man = tiny
    with Store(tmp_path / "db.duckdb") as store:
        results = [load_file(store, f) for f in find_files([out])]
        assert sum(r.quarantined for r in results) == 0
        assert store.count("service_requests") == man["rows"]["service_requests"]
        assert store.count("alerts") == man["rows"]["alerts"]
        assert store.count("incidents") == man["rows"]["incidents"]
    assert json.loads((out / "manifest.json").read_text())["days"] == 31


def test_wan_outage_and_planned_maintenance_are_visible(tiny):
    out, _ = tiny
    con = duckdb.connect()
    con.execute("SET TimeZone='Europe/London'")
    rate = dict(
        con.execute(f"""
        SELECT received_at::TIMESTAMPTZ BETWEEN TIMESTAMPTZ '2026-10-12 14:05:00'
                                            AND TIMESTAMPTZ '2026-10-12 15:40:00' AS in_outage,
               avg(CASE WHEN response_code IN ('E20','E21') THEN 1 ELSE 0 END)
        FROM read_parquet('{out}/service_requests/*.parquet') WHERE region = 'North'
        GROUP BY 1""").fetchall()
    )
    assert rate[True] > 0.4 and rate[False] < 0.03
    # DSP Core failover on the 26th, 07:50-08:37 UK time: every region fails.
    dsp = dict(
        con.execute(f"""
        SELECT received_at::TIMESTAMPTZ BETWEEN TIMESTAMPTZ '2026-10-26 07:50:00'
                                            AND TIMESTAMPTZ '2026-10-26 08:37:00' AS in_outage,
               avg(CASE WHEN response_code IN ('E20','E21') THEN 1 ELSE 0 END)
        FROM read_parquet('{out}/service_requests/*.parquet') WHERE region = 'South'
        GROUP BY 1""").fetchall()
    )
    assert dsp[True] > 0.6 and dsp[False] < 0.05
    outages = con.execute(
        f"SELECT planned, region, incident_id, subsystem FROM read_parquet('{out}/outages/*.parquet')"
    ).fetchall()
    # Two DSP Core Sunday windows and a shared DCC Gateway Network one: 7 h, over the 6 h allowance.
    assert sorted(o[3] for o in outages if o[0]) == ["DCC Gateway Network", "DSP Core", "DSP Core"]
    linked = [o for o in outages if not o[0] and o[2] is not None and o[1] == "North"]  # the WAN outage
    assert linked[0][3] == "CSP North WAN"
    assert any(o[3] == "DSP Core" and not o[0] and o[1] is None for o in outages)
    cat = con.execute(
        f"SELECT category FROM read_parquet('{out}/incidents/*.parquet') WHERE incident_id = '{linked[0][2]}'"
    ).fetchone()[0]
    assert cat == 2


def test_failures_have_linked_failure_alerts(tiny):
    out, _ = tiny
    con = duckdb.connect()
    n_fail, n_linked = con.execute(f"""
        SELECT count(*), count(a.request_id)
        FROM read_parquet('{out}/service_requests/*.parquet') s
        LEFT JOIN (SELECT request_id FROM read_parquet('{out}/alerts/*.parquet')
                   WHERE alert_code IN ('N12','N13')) a USING (request_id)
        WHERE s.response_code IN ('E20','E21')""").fetchone()
    assert n_fail > 0 and n_fail == n_linked


def test_chunked_generation_keeps_ids_unique(tmp_path, monkeypatch):
    monkeypatch.setattr(generator, "CHUNK_ROWS", 700)
    man = simulate_month("2026-02", tmp_path, "tiny", seed=1)
    con = duckdb.connect()
    n, distinct = con.execute(
        f"SELECT count(*), count(DISTINCT request_id) FROM read_parquet('{tmp_path}/service_requests/*')"
    ).fetchone()
    assert n == distinct == man["rows"]["service_requests"]
    assert man["days"] == 28
    groups = pq.ParquetFile(tmp_path / "service_requests" / "2026-02-02.parquet").num_row_groups
    assert groups >= 2


def test_a_month_s_last_days_alone_are_those_days_of_the_whole_month(tiny, tmp_path):
    """The end-to-end benchmark simulates only the month's last two days (`from_day`)."""
    out, _ = tiny
    man = simulate_month("2026-10", tmp_path, "tiny", seed=7, days=2, from_day=30)
    assert man["days"] == 2
    assert sorted(p.name for p in (tmp_path / "service_requests").iterdir()) == [
        "2026-10-30.parquet",
        "2026-10-31.parquet",
    ]
    for day in ("2026-10-30", "2026-10-31"):
        for table in ("service_requests", "alerts"):
            f = f"{table}/{day}.parquet"
            assert pq.read_table(tmp_path / f).equals(pq.read_table(out / f))
    with pytest.raises(ValueError, match="days must be between 1 and 2"):
        simulate_month("2026-10", tmp_path / "x", "tiny", days=3, from_day=30)
    with pytest.raises(ValueError, match="from_day must be between 1 and 31"):
        simulate_month("2026-10", tmp_path / "x", "tiny", from_day=32)


def test_bad_month_and_scale_are_refused(tmp_path):
    with pytest.raises(ValueError, match="2026-10"):
        simulate_month("October", tmp_path)
    with pytest.raises(ValueError, match="unknown scale"):
        simulate_month("2026-10", tmp_path, "huge")


def test_registrations_and_forecasts_follow_the_requests(tiny):
    """CoS registrations: one per device that got a 6.23, from its first 6.23's party, effective
    a day later, plus a third as many non-enrolled; forecasts within the stated factor of what
    each party sent. Expectations are worked out here, row by row, from the request files."""
    import datetime as dt
    from collections import Counter

    out, _ = tiny
    sent: Counter[str] = Counter()
    first: dict[str, dict] = {}
    for f in sorted((out / "service_requests").glob("*.parquet")):
        for r in pq.read_table(f, columns=["device_id", "party_id", "srv", "received_at"]).to_pylist():
            sent[r["party_id"]] += 1
            if r["srv"] == "6.23" and (
                r["device_id"] not in first or r["received_at"] < first[r["device_id"]]["received_at"]
            ):
                first[r["device_id"]] = r
    regs = pq.read_table(out / "registration_changes" / "registration_changes-2026-10.parquet").to_pylist()
    enrolled = {r["device_id"]: r for r in regs if r["dcc_enrolled"]}
    assert len(first) > 0 and enrolled.keys() == first.keys()
    assert len(regs) - len(enrolled) == len(first) // 3
    for dev, r in first.items():
        assert enrolled[dev]["gaining_party_id"] == r["party_id"]
        assert enrolled[dev]["effective_at"] == r["received_at"] + dt.timedelta(days=1)
    forecasts = {r["party_id"]: r["requests"] for r in pq.read_table(out / "forecasts").to_pylist()}
    assert "SUP-J" not in forecasts and forecasts["SUP-G"] == round(sent["SUP-G"] * 0.7)
    for party, n in forecasts.items():
        if party != "SUP-G":
            assert 0.95 * sent[party] - 1 <= n <= 1.06 * sent[party] + 1, party


def test_device_extract_batches_carry_each_install(tmp_path):
    """The extract is drawn batch by batch; the month's installs (after the pre-month devices)
    keep their own times and outcomes across batch edges, older devices were commissioned an
    hour after install, before the month."""
    import datetime as dt

    import numpy as np
    import pyarrow as pa

    from opmetrics.simulate import scenarios
    from opmetrics.simulate.estate import Estate
    from opmetrics.simulate.generator import _day_starts

    estate = Estate(500, np.random.default_rng(1))
    starts = _day_starts(2026, 10)
    scenarios.plan_installs(estate, starts, 20, np.random.default_rng(2))
    n_new = len(estate.type) - estate.n
    assert n_new > 50
    extract = pa.concat_tables(
        scenarios.devices_batches(estate, starts[-1], starts[0], np.random.default_rng(3), batch=97)
    ).to_pylist()
    assert len(extract) == estate.n + n_new
    ms = lambda t: None if t is None else round(t.timestamp() * 1000)  # noqa: E731
    for i, row in enumerate(extract[estate.n :]):
        assert ms(row["installed_at"]) == estate.installed_ms[i]
        want_comm = estate.commissioned_ms[i] if estate.commissioned_ms[i] >= 0 else None
        assert ms(row["commissioned_at"]) == want_comm
        status = (
            "commissioned"
            if want_comm is not None
            else "install_and_leave"
            if estate.install_leave[i]
            else "installed_not_commissioned"
        )
        assert row["status"] == status
    month_start = starts[0].astimezone(dt.UTC)
    for row in extract[: estate.n]:
        assert row["installed_at"] < month_start and row["status"] == "commissioned"
        assert row["commissioned_at"] - row["installed_at"] == dt.timedelta(hours=1)


def test_consecutive_months_load_into_one_store_side_by_side(tmp_path):
    """`simulate --months 2` across a year end: every id of the second month is new (the day
    of the month, or no month at all, made them collide), so both load with nothing refused;
    the party register is written once."""
    from typer.testing import CliRunner

    from opmetrics.cli import app

    runner = CliRunner()
    out, db = tmp_path / "data", tmp_path / "om.duckdb"
    res = runner.invoke(
        app, ["simulate", "--month", "2026-12", "--months", "2", "--scale", "tiny", "--out", str(out)]
    )
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in (out / "parties").iterdir()) == ["parties-2026-12.parquet"]
    res = runner.invoke(app, ["ingest", str(out), "--db", str(db)], env={"COLUMNS": "200"})
    assert res.exit_code == 0 and " 0 quarantined, 0 file(s) failed" in res.output, res.output
    with Store(db) as store:
        by_month = dict(
            store.con.execute(
                "SELECT strftime(report_date, '%Y-%m'), count(*) FROM service_requests GROUP BY ALL"
            ).fetchall()
        )
        assert set(by_month) >= {"2026-12", "2027-01"} and min(by_month.values()) > 10_000
        ids = store.con.execute(
            "SELECT count(*), count(DISTINCT request_id) FROM service_requests"
        ).fetchall()
        assert ids[0][0] == ids[0][1]
