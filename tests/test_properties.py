"""Hypothesis properties of RSVP over random months, checked against an independent numpy model."""

from __future__ import annotations

import datetime as dt
import tempfile
from pathlib import Path
from unittest import mock

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from conftest import sr
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from opmetrics import methodology
from opmetrics.engine.store import Store
from opmetrics.ingest.load import load_file
from opmetrics.measures.run import compute

M = methodology.load()
SEGMENTS = ["North", "Central", "South", "SMETS1"]

request = st.fixed_dictionaries(
    {
        "segment": st.sampled_from(SEGMENTS),
        "srv": st.sampled_from(["2.2", "1.6", "4.6.1", "8.1.1"]),
        "day": st.integers(1, 31),
        "second": st.integers(0, 86_000),
        "rtt_ms": st.integers(0, 200_000),
        "outcome": st.sampled_from(["I0", "I0", "I0", "E20", "E21", "E4", None]),
        "status": st.sampled_from([2, 2, 2, 8, 34, 1]),
    }
)


def _rows(reqs):
    rows = []
    for i, r in enumerate(reqs):
        # Noon-based offsets keep every request inside its UK day in October (BST or GMT).
        t = dt.datetime(2026, 10, r["day"], 1, tzinfo=dt.UTC) + dt.timedelta(seconds=r["second"] // 4)
        responded = None if r["outcome"] is None else t + dt.timedelta(milliseconds=r["rtt_ms"])
        rows.append(
            sr(
                i + 1,
                srv=r["srv"],
                smets=1 if r["segment"] == "SMETS1" else 2,
                region=r["segment"],
                received_at=t.isoformat(timespec="milliseconds"),
                responded_at=None if responded is None else responded.isoformat(timespec="milliseconds"),
                response_code=r["outcome"],
                report_status=r["status"],
            )
        )
    return rows


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(request, min_size=1, max_size=60))
def test_rsvp_properties(reqs):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "service_requests.parquet"
        pq.write_table(pa.Table.from_pylist(_rows(reqs)), path)
        store = Store(Path(tmp) / "p.duckdb")
        try:
            assert load_file(store, path).quarantined == 0
            outside = set(M.codes("failure_outside"))
            included = [
                r for r in reqs if r["status"] in M.report_status.included and r["outcome"] not in outside
            ]
            compute(store, M, "2026-10")
            cur = store.con.execute("SELECT * FROM rsvp")
            cols = [d[0] for d in cur.description]
            res = [dict(zip(cols, row, strict=True)) for row in cur.fetchall()]
        finally:
            store.close()

    for r in res:
        for k in ("within_trt_pct", "failure_pct", "success_pct"):
            assert r[k] is None or 0.0 <= r[k] <= 100.0
        if r["rtt_count"]:
            assert r["rtt_min_s"] <= r["rtt_median_s"] <= r["rtt_max_s"]
            assert r["rtt_min_s"] <= r["rtt_mean_s"] <= r["rtt_max_s"]
        assert r["failures"] + (r["volume"] - r["failures"]) == r["volume"]

    month = {(r["scope"], r["key"], r["segment"]): r for r in res if r["rate"] == "month"}
    for (scope, key, seg), r in month.items():
        if seg == "SMETS2":
            parts = [month.get((scope, key, s), {"volume": 0})["volume"] for s in SEGMENTS[:3]]
            assert sum(parts) == r["volume"]
        if seg == "All":
            s1 = month.get((scope, key, "SMETS1"), {"volume": 0})["volume"]
            s2 = month.get((scope, key, "SMETS2"), {"volume": 0})["volume"]
            assert s1 + s2 == r["volume"]
        days = [
            d["volume"]
            for d in res
            if d["rate"] == "day" and d["scope"] == scope and d["key"] == key and d["segment"] == seg
        ]
        assert sum(days) == r["volume"]

    # Independent model: SRV-level, All segments, straight from the generated requests.
    for code in {r["srv"] for r in included}:
        mine = [r for r in included if r["srv"] == code]
        got = month[("srv", code, "All")]
        assert got["volume"] == len(mine)
        # 2027.1: a failure is no response received, E20 and E21 are payload failures beside it:
        # 001 l.105 "If Users don't receive a response, this would count as a failure".
        assert got["failures"] == sum(1 for r in mine if r["outcome"] is None)
        assert got["payload_failures"] == sum(1 for r in mine if r["outcome"] in ("E20", "E21"))
        speed = [r["rtt_ms"] / 1000 for r in mine if r["outcome"] is not None]
        if speed:
            assert np.isclose(got["rtt_median_s"], np.median(speed))
            assert np.isclose(got["rtt_mean_s"], np.mean(speed))
        trt = 30_000
        within = sum(1 for r in mine if r["outcome"] is not None and r["rtt_ms"] <= trt)
        assert got["within_trt"] == within


send = st.fixed_dictionaries(
    {
        "party_id": st.sampled_from(["P1", "P2"]),
        "device_id": st.sampled_from(["D1", "D2", "D3"]),
        "srv": st.sampled_from(["2.2", "4.1.1"]),
        "minute": st.integers(0, 4_000),
        "failed": st.booleans(),
    }
)


@settings(max_examples=40, deadline=None)
@given(st.lists(send, min_size=1, max_size=40))
def test_chain_outcomes_match_a_walk_through_each_chain(sends):
    """Each chain of resends (same party, device and SRV; a new chain after a success or after
    `retry_window_minutes` since the previous send) has one row: its first send and the attempt
    that first succeeded. The expectation walks the sorted sends in plain Python."""
    import ibis

    from opmetrics.measures import records
    from opmetrics.measures.records import Scope, chain_outcomes

    start = dt.datetime(2026, 10, 1)
    rows = [
        {**x, "request_id": f"R{i:03d}", "received_at": start + dt.timedelta(minutes=x["minute"])}
        for i, x in enumerate(sends)
    ]
    window = M.counting.retry_window_minutes
    want: dict[str, int | None] = {}
    by_key: dict[tuple, list] = {}
    for r in rows:
        by_key.setdefault((r["party_id"], r["device_id"], r["srv"]), []).append(r)
    for group in by_key.values():
        group.sort(key=lambda r: (r["received_at"], r["request_id"]))
        head, attempt, prev = None, 0, None
        for r in group:
            gap = prev is not None and (r["received_at"] - prev["received_at"]) > dt.timedelta(minutes=window)
            if prev is None or not prev["failed"] or gap:
                head, attempt = r["request_id"], 0
                want[head] = None
            attempt += 1
            if not r["failed"] and want[head] is None:
                want[head] = attempt
            prev = r
    con = ibis.duckdb.connect()
    cols = [{**{k: v for k, v in r.items() if k != "minute"}, "minute_id": r["minute"]} for r in rows]
    t = ibis.memtable(pa.Table.from_pylist(cols))
    s = Scope(con=con, m=M, period="2026-10", as_of=dt.datetime(2026, 11, 1))
    got = {r["head_id"]: r["won"] for r in con.to_pyarrow(chain_outcomes(s, t)).to_pylist()}
    assert got == want
    # With the keys sent more than once given as a table, and the first send's columns carried.
    s = Scope(con=con, m=M, period="2026-10", as_of=dt.datetime(2026, 11, 1), materialise=True)
    repeated = s.cached("repeated", lambda: records.repeated_chain_hashes(t))
    carried = con.to_pyarrow(chain_outcomes(s, t, carry=["party_id", "minute_id"], repeated=repeated))
    by_id = {r["request_id"]: r for r in rows}
    for r in carried.to_pylist():
        assert r["won"] == want[r["head_id"]]
        head = by_id[r["head_id"]]
        assert (r["party_id"], r["minute_id"]) == (head["party_id"], head["minute"])
    s.release()
    # Every key on one hash: every send is sorted into chains by its exact keys, same result.
    with mock.patch.object(records, "chain_hash", lambda t: ibis.literal(7, "int64")):
        assert {r["head_id"]: r["won"] for r in con.to_pyarrow(chain_outcomes(s, t)).to_pylist()} == want


@settings(max_examples=40, deadline=None)
@given(
    values=st.lists(
        st.tuples(st.sampled_from([None, "a", "b"]), st.integers(0, 2), st.integers(-5_000, 5_000)),
        min_size=1,
        max_size=300,
    ),
    width=st.sampled_from([1, 3, 1024]),
)
def test_median_from_counts_matches_numpy(values, width):
    """The two-step median (buckets, then the values of the two buckets that hold the middle)
    equals numpy's, for any bucket width, negative values and null keys."""
    import ibis

    from opmetrics.measures import daily

    con = ibis.duckdb.connect()
    t = con.create_table(
        "t",
        pa.table(
            {
                "k": pa.array([v[0] for v in values], pa.string()),
                "g": [v[1] for v in values],
                "v": [v[2] for v in values],
            }
        ),
        overwrite=True,
    )
    groups: dict[tuple, list[int]] = {}
    for k, g, v in values:
        groups.setdefault((k, g), []).append(v)
    old, daily.MEDIAN_BUCKET = daily.MEDIAN_BUCKET, width
    try:
        # One row per value, each counted once: the counts need not be merged first.
        m = daily.median_from_counts(t.mutate(n=ibis.literal(1, "int64")), ["k", "g"], "v")
        got = {(r["k"], r["g"]): (r["med_lo"] + r["med_hi"]) / 2 for r in m.to_pyarrow().to_pylist()}
    finally:
        daily.MEDIAN_BUCKET = old
    assert got == {key: float(np.median(vs)) for key, vs in groups.items()}


marked_row = st.fixed_dictionaries(
    {
        "srv": st.sampled_from(
            ["1.1.1", "6.8", "6.23", "6.15.2", "6.17", "8.11", "4.8.1", "2.2", "3.2", "6.5", "6.22", "9.9"]
        ),
        "smets": st.sampled_from([1, 2, None]),
        "_mark_install_commission": st.sampled_from([True, None]),
        "_mark_change_of_supplier": st.sampled_from([True, None]),
        "_mark_security_key_management": st.sampled_from([True, None]),
        "_mark_dno_post_ic": st.sampled_from([True, None]),
    }
)


@settings(max_examples=30, deadline=None)
@given(st.lists(marked_row, min_size=1, max_size=60))
def test_processes_joined_per_combination_equal_the_rules_per_row(rows):
    """Joining marked requests to the processes of their (SRV, SMETS, marks) gives the same
    (request, process) pairs as deciding every rule on every row."""
    import ibis

    from opmetrics.measures.attribution import flags, join_processes, marks, per_process
    from opmetrics.measures.records import Scope

    con = ibis.duckdb.connect()
    s = Scope(con=con, m=M, period="2026-10", as_of=dt.datetime(2026, 11, 1))
    assert marks(s) == [
        "_mark_install_commission",
        "_mark_change_of_supplier",
        "_mark_security_key_management",
        "_mark_dno_post_ic",
    ]
    schema = pa.schema(
        [("_rec", pa.int64()), ("srv", pa.string()), ("smets", pa.int64())]
        + [(c, pa.bool_()) for c in marks(s)]
    )
    t = ibis.memtable(pa.Table.from_pylist([{"_rec": i, **r} for i, r in enumerate(rows)], schema))

    def pairs(x: ibis.Table) -> list[tuple]:
        return sorted(
            (r["_rec"], r["process_id"]) for r in con.to_pyarrow(x.select("_rec", "process_id")).to_pylist()
        )

    want = pairs(per_process(s, flags(s, t)))
    assert pairs(join_processes(s, t)) == want


@settings(max_examples=60, deadline=None)
@given(
    values=st.lists(st.integers(-3, 40), max_size=25),
    probes=st.lists(st.one_of(st.none(), st.integers(-5, 45)), min_size=1, max_size=30),
)
def test_in_ranges_equals_membership_in_the_list(values, probes):
    """Report statuses are tested as runs of consecutive values: the same answer as Python's
    `in` for any list (gaps, repeats, unsorted, empty) and any value, a missing one false."""
    import ibis

    from opmetrics.measures.records import in_ranges

    con = ibis.duckdb.connect()
    t = ibis.memtable(pa.table({"v": pa.array(probes, pa.int64())}))
    got = con.to_pyarrow(t.select(hit=in_ranges(t.v, values))).column("hit").to_pylist()
    assert got == [p is not None and p in values for p in probes]


SRV_POOL = ["1.1.1", "10", "11.1", "2.2", "4.1.1", "6.15.2", "6.17", "6.2", "6.20.1", "6.23", "6.8", "8.1.1"]


@settings(max_examples=60, deadline=None)
@given(
    srvs=st.lists(st.sampled_from(SRV_POOL), max_size=5),
    probes=st.lists(
        st.one_of(st.none(), st.sampled_from([*SRV_POOL, "6.16", "6.3", "0"])), min_size=1, max_size=30
    ),
)
def test_srv_in_equals_membership_in_the_list(srvs, probes):
    """An SRV list is tested with the range it implies as well: the same answer as Python's
    `in` for any list (SRVs inside the range but not listed, such as 6.2 between 6.15.2 and
    6.23, repeats, empty) and any value, a missing one false."""
    import ibis

    from opmetrics.measures.records import srv_in

    con = ibis.duckdb.connect()
    t = ibis.memtable(pa.table({"srv": pa.array(probes, pa.string())}))
    got = con.to_pyarrow(t.select(hit=srv_in(t, srvs).fill_null(False))).column("hit").to_pylist()
    assert got == [p is not None and p in srvs for p in probes]


def test_included_requests_are_the_classified_ones(tmp_path):
    """A cell reading its requests' own rows gets the same requests as from the classified
    ones: included (report status, outside-DCC code) and of the SRVs asked, with or without a
    classified copy, and as many as plain Python counts; a success code is the
    classification's success category."""
    from conftest import load_rows

    from opmetrics.measures.records import Scope, classified_requests, included_requests, success_code

    srvs = ["2.2", "6.15.2", "6.17", "6.20.1", "6.23", "4.1.1"]
    codes = ["I0", "E20", "E4", None]  # E4: outside DCC control
    statuses = [2, 8, 34, 1]  # 1: not reported
    rows = [
        sr(
            i + 1,
            srv=srvs[i % len(srvs)],
            response_code=codes[i % 4],
            responded_at=None if codes[i % 4] is None else "2026-10-05T10:00:02.000Z",
            report_status=statuses[(i // 4) % 4],
            mode="on-demand" if i % 3 else "dcc-scheduled",
        )
        for i in range(96)
    ]
    asked = ["6.15.2", "6.23", "6.17"]  # 6.20.1 lies in their range but is not asked for
    outside = set(M.codes("failure_outside"))
    by_hand = sum(
        r["srv"] in asked
        and int(r["report_status"]) in M.report_status.included
        and r["response_code"] not in outside
        for r in rows
    )
    assert 0 < by_hand < sum(r["srv"] in asked for r in rows)
    with Store(tmp_path / "t.duckdb") as store:
        load_rows(store, tmp_path, "service_requests", rows)
        for materialise in (False, True):
            s = Scope(store.ibis(), M, "2026-10", dt.datetime(2026, 11, 1), materialise=materialise)
            c = classified_requests(s)
            assert len(included_requests(s, asked).to_pyarrow()) == by_hand
            for keep in (None, lambda r: r.mode == "on-demand"):
                want = c.filter(c.included & c.srv.isin(asked))
                want = want if keep is None else want.filter(keep(want))
                got = included_requests(s, asked, keep)
                assert sorted(got.request_id.to_list()) == sorted(want.request_id.to_list())
            every = included_requests(s, None)
            assert sorted(every.request_id.to_list()) == sorted(c.filter(c.included).request_id.to_list())
            ok = c.select(ok=success_code(s, c).fill_null(False), category=c.response_category).to_pyarrow()
            assert ok.column("ok").to_pylist() == [
                x.endswith(": success code") for x in ok.column("category").to_pylist()
            ]
            s.release()
