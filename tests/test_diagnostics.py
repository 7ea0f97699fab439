"""Diagnostics (issue 12): what explains a party's gap to the industry, worked by hand."""

from __future__ import annotations

import pytest

from opmetrics.measures.diagnostics import diagnose
from opmetrics.methodology import load as load_methodology


def rows(party, process, sets):
    """Count rows: sets = [(ch, model, firmware, region, n, ok)]."""
    return [
        {"process_id": process, "party_id": party, "region": region, "ch_variant": ch,
         "manufacturer": "M", "model": model, "firmware_version": fw, "n": n, "ok": ok}
        for ch, model, fw, region, n, ok in sets
    ]  # fmt: skip


def test_a_poor_set_is_scored_by_the_failures_it_adds_to_the_party():
    # Party P: set S (100 requests, 60 ok) and set T (100, 98). Others: S (100, 62), T (1000, 980).
    data = rows(
        "P", "prepayment", [("CH-C", "S", "1", "North", 100, 60), ("CH-A", "T", "2", "North", 100, 98)]
    )
    data += rows(
        "Q", "prepayment", [("CH-C", "S", "1", "North", 100, 62), ("CH-A", "T", "2", "North", 1000, 980)]
    )
    out = [r for r in diagnose(data) if r["process_id"] == "prepayment" and r["party_id"] == "P"]
    top = out[0]
    # P fails 42 of 200 (79.0 %); others 58 of 1,100 (94.727 %): excess = 200 x (0.21 - 0.052727).
    assert top["party_pct"] == pytest.approx(79.0)
    assert top["others_pct"] == pytest.approx(100 * 1042 / 1100)
    excess = 200 * (0.21 - 58 / 1100)
    # S: 100 x (0.40 - 0.02) = 38 failures; the same for its meter-and-hub and its firmware.
    assert {r["factor"] for r in out if r["failures_explained"] == pytest.approx(38)} == {
        "device set", "meter and hub", "firmware"
    }  # fmt: skip
    assert top["failures_explained"] == pytest.approx(38)
    assert top["gap_share_pct"] == pytest.approx(100 * 38 / excess)
    assert "succeed 60.0 % (100) against 98.0 % on the rest of your traffic" in top["evidence"]
    assert "other parties' requests on it succeed 62.0 % (100)" in top["evidence"]
    # Orchestration: 100 x (0.40 - 0.38) + 100 x (0.02 - 0.02) = 2 failures, ranked below.
    orch = [r for r in out if r["factor"] == "orchestration"]
    assert orch and orch[0]["failures_explained"] == pytest.approx(2) and orch[0]["rank"] > top["rank"]
    # Nothing is said about Q by name, and Q has no positive explanation of its own.
    assert all("Q" not in r["evidence"] for r in out)


def test_a_party_worse_on_every_set_is_an_orchestration_gap():
    data = rows("P", "tariff", [("CH-A", "S", "1", "North", 200, 180), ("CH-B", "T", "1", "South", 200, 180)])
    data += rows(
        "Q", "tariff", [("CH-A", "S", "1", "North", 500, 490), ("CH-B", "T", "1", "South", 500, 490)]
    )
    out = [r for r in diagnose(data) if r["process_id"] == "tariff" and r["party_id"] == "P"]
    # 200 x (0.10 - 0.02) twice = 32 failures: the whole excess (400 x (0.10 - 0.02) = 32).
    assert out[0]["factor"] == "orchestration"
    assert out[0]["failures_explained"] == pytest.approx(32)
    assert out[0]["gap_share_pct"] == pytest.approx(100)
    assert [r["factor"] for r in out] == ["orchestration"]  # sets and regions equal: nothing else


def test_too_few_requests_are_not_diagnosed():
    data = rows("P", "reads", [("CH-A", "S", "1", "North", 20, 10)])
    data += rows("Q", "reads", [("CH-A", "S", "1", "North", 500, 490)])
    assert [r for r in diagnose(data) if r["party_id"] == "P"] == []


def test_benchmarks_industry_best_and_position_by_hand():
    from opmetrics.measures.benchmarks import benchmark

    data = []
    # Timed responses: P 100 taking 400 s in all (4.0 s mean), Q 40 taking 80 s (2.0 s), R 20
    # taking 20 s (1.0 s, but too few to rank). Industry: 500 s over 160 = 3.125 s.
    for party, n, ok, secs, timed in (("P", 100, 90, 400, 100), ("Q", 50, 49, 80, 40), ("R", 20, 20, 20, 20)):
        data += [
            {**r, "srv": "2.2", "rtt_ms_sum": secs * 1000, "rtt_n": timed}
            for r in rows(party, "prepayment", [("CH-A", "S", "1", "North", n, ok)])
        ]
    got = {
        r["party_id"]: r
        for r in benchmark(data, load_methodology().league)
        if r["process_id"] == "prepayment" and r["dimension"] == "device set"
    }
    # Industry: 159 of 170 = 93.53 %. Ranked (30+ requests): Q 98 %, P 90 %; R is not ranked.
    assert got["P"]["industry_pct"] == pytest.approx(100 * 159 / 170)
    assert got["P"]["best_pct"] == pytest.approx(98.0) and got["P"]["value"] == "CH-A · M S · firmware 1"
    assert [(p, got[p]["rank"]) for p in "PQR"] == [("P", 2), ("Q", 1), ("R", None)]
    assert {got[p]["ranked_parties"] for p in "PQR"} == {2}
    assert got["P"]["party_rtt_mean_s"] == pytest.approx(4.0)
    assert got["P"]["industry_rtt_mean_s"] == pytest.approx(3.125)
    assert got["P"]["best_rtt_mean_s"] == pytest.approx(2.0)  # Q; R is not ranked
    both = [
        r
        for r in benchmark(data, load_methodology().league)
        if r["process_id"] == "all" and r["dimension"] == "srv"
    ]
    assert {r["value"] for r in both} == {"2.2"} and len(both) == 3


def test_counts_per_device_set_equal_a_join_of_every_request(tmp_path, meth):
    """`counts` (the day cubes of two days, summed) must give the same table as an independent
    row-by-row join of each on-demand request to its device, in Python."""
    import datetime as dt

    from opmetrics.engine.store import Store
    from opmetrics.ingest.load import find_files, load_file
    from opmetrics.measures.attribution import process_requests
    from opmetrics.measures.diagnostics import COUNT_KEYS, counts
    from opmetrics.measures.records import Scope, latest_devices
    from opmetrics.simulate.generator import Faults, simulate_month

    simulate_month("2026-10", tmp_path / "data", "tiny", seed=3, faults=Faults(enabled=False), days=2)
    with Store(tmp_path / "om.duckdb") as store:
        for f in find_files([tmp_path / "data"]):
            load_file(store, f)
        s = Scope(store.ibis(), meth, "2026-10", dt.datetime(2026, 11, 1), materialise=True)
        got = counts(s)
        req = process_requests(s).to_pyarrow().to_pylist()
        dev = {d["device_id"]: d for d in latest_devices(s).to_pyarrow().to_pylist()}
        s.release()
    want: dict[tuple, list[int]] = {}
    for r in req:
        if r["mode"] != "on-demand":
            continue
        d = dev.get(r["device_id"], {})
        key = (r["process_id"], r["party_id"], r["srv"], r["region"]) + tuple(
            d.get(c) or "unknown" for c in ("ch_variant", "manufacturer", "model", "firmware_version")
        )
        acc = want.setdefault(key, [0, 0, 0, 0])
        timed = bool(r["speed_counted"])
        acc[0] += 1
        acc[1] += r["response_category"].endswith(": success code")
        acc[2] += r["rtt_ms"] if timed else 0
        acc[3] += timed
    cols = COUNT_KEYS
    have = {tuple(g[c] for c in cols): [g["n"], g["ok"], g["rtt_ms_sum"], g["rtt_n"]] for g in got}
    assert len(got) == len(have) > 10  # one row per group, and enough groups to mean something
    assert have == want
