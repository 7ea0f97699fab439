"""Incremental computation (issue 11): day cubes, months assembled from days, late days.

A late day and a corrected day re-reduce only the days they touch, and the figures then equal a
fresh full computation over the same final inputs. The assembled RSVP figures are checked
against numpy over the classified records, and the histogram median against numpy.median.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import duckdb
import ibis
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from opmetrics.engine.store import Store
from opmetrics.ingest.load import find_files, load_file
from opmetrics.measures import incremental
from opmetrics.measures.attempts import att1
from opmetrics.measures.attribution import process_requests
from opmetrics.measures.daily import GROUP, _median_ms
from opmetrics.measures.drill import drill_tables
from opmetrics.measures.families import cell_builders
from opmetrics.measures.incremental import MONTH_TOTALS, stored_cubes
from opmetrics.measures.outcome import Context
from opmetrics.measures.records import INCLUDED_RULE, Scope, classified_requests
from opmetrics.measures.run import compute
from opmetrics.methodology import load
from opmetrics.simulate.generator import Faults, simulate_month

PERIOD = "2026-10"
DAYS = 4
LATE = dt.date(2026, 10, 4)  # held back, then loaded late
FIXED = dt.date(2026, 10, 3)  # corrected after the first compute


@pytest.fixture(scope="module")
def month(tmp_path_factory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("incr")
    data = base / "data"
    simulate_month(PERIOD, data, "tiny", seed=5, faults=Faults(enabled=False), days=DAYS)
    # A corrections file: twelve day-3 requests answered 40 s later with a failure code.
    day3 = pq.read_table(data / "service_requests" / f"{FIXED}.parquet")
    day3 = day3.filter(pc.is_valid(day3["responded_at"])).slice(100, 12)
    later = pc.add(day3["responded_at"], pa.scalar(40_000, pa.duration("ms")))
    fix = day3.set_column(day3.schema.get_field_index("responded_at"), "responded_at", later)
    fix = fix.set_column(fix.schema.get_field_index("response_code"), "response_code", pa.array(["E62"] * 12))
    fixes = base / "fixes"
    fixes.mkdir()
    pq.write_table(fix, fixes / "service_requests-corrections.parquet")
    return {"data": data, "fixes": fixes / "service_requests-corrections.parquet"}


def _load(store: Store, files: list[Path]) -> None:
    for f in files:
        res = load_file(store, f)
        assert res.status == "loaded", res


def _results(db: Path) -> dict[str, set]:
    con = duckdb.connect(str(db), read_only=True)
    out = {}
    for t in (
        "rsvp",
        "cpm",
        "outcomes",
        "diagnostics",
        "benchmarks",
        "legs",
        "day_requests",
        "day_rtt",
        "day_alerts",
        "day_diagnostics",
        "day_legs",
        "day_legs_ms",
        "day_att1",
        "day_att1_open",
        "day_att1_srv",
        "day_fates",
        "day_drill",
        "day_hourly",
        "run_drill",
        "run_hourly",
        *cell_builders(),
        *(month for month, _ in MONTH_TOTALS.values()),
    ):
        cols = [c[0] for c in con.execute(f"DESCRIBE {t}").fetchall() if c[0] != "run_id"]
        rows = con.execute(f"SELECT {', '.join(cols)} FROM {t}").fetchall()
        out[t] = sorted(rows, key=repr)
    con.close()
    return out


def _reduced(store: Store) -> list[dt.date]:
    return [r[0] for r in store.con.execute("SELECT report_date FROM day_state ORDER BY 1").fetchall()]


def test_late_and_corrected_days_recompute_only_themselves_and_equal_a_full_run(month, tmp_path, monkeypatch):
    m = load(None)
    files = find_files([month["data"]])
    late = [f for f in files if f.name == f"{LATE}.parquet"]
    assert len(late) == 2  # its requests and its alerts
    as_of = dt.datetime(2026, 11, 1, 12)

    inc = Store(tmp_path / "inc.duckdb")
    _load(inc, [f for f in files if f not in late])
    first = compute(inc, m, PERIOD, as_of=as_of)
    assert first.days_reduced == first.days_refolded == len(_reduced(inc)) >= DAYS - 1
    again = compute(inc, m, PERIOD, as_of=as_of)
    assert (again.days_reduced, again.days_refolded) == (0, 0)  # nothing changed

    stamp = dict(inc.con.execute("SELECT report_date, computed_at FROM day_state").fetchall())
    _load(inc, late)
    # Expected, from lineage: the days the late files' rows fall on, the days of the requests
    # their failure alerts (N12/N13) fail, and the days either side of a day where they add a
    # security credential request (a pair is sought within the 6.17's TRT, across midnight).
    late_ids = "(SELECT file_id FROM loaded_files WHERE path LIKE '%" + f"{LATE}.parquet')"
    expected = {
        r[0]
        for r in inc.con.execute(
            f"SELECT report_date FROM service_requests WHERE _file_id IN {late_ids} "
            f"UNION SELECT report_date FROM alerts WHERE _file_id IN {late_ids} "
            "UNION SELECT r.report_date FROM alerts a JOIN service_requests r USING (request_id) "
            f"WHERE a._file_id IN {late_ids} AND a.alert_code IN ('N12', 'N13')"
        ).fetchall()
    }
    pairs = [
        r[0]
        for r in inc.con.execute(
            f"SELECT DISTINCT report_date FROM service_requests WHERE _file_id IN {late_ids} "
            "AND srv IN ('6.15.2', '6.17')"
        ).fetchall()
    ]
    expected |= {d + dt.timedelta(days=k) for d in pairs for k in (-1, 1)} & set(_reduced(inc))
    after_late = compute(inc, m, PERIOD, as_of=as_of)
    changed = {
        d
        for d, at in inc.con.execute("SELECT report_date, computed_at FROM day_state").fetchall()
        if stamp.get(d) != at
    }
    assert LATE in changed and changed == expected
    assert after_late.days_reduced == len(changed) < len(_reduced(inc))
    # ATT1 folds again each changed day, and the days after the first until the chains they
    # carry on are as before: never a day before the first change.
    on_or_after = [d for d in _reduced(inc) if d >= min(changed)]
    assert len(changed) <= after_late.days_refolded <= len(on_or_after)

    res = load_file(inc, month["fixes"], corrections=True)
    assert res.accepted == 12
    # Day 3 only, and its neighbours too if a corrected request is a security credential one.
    srvs = set(pq.read_table(month["fixes"], columns=["srv"]).column("srv").to_pylist())
    assert compute(inc, m, PERIOD, as_of=as_of).days_reduced == (3 if srvs & {"6.15.2", "6.17"} else 1)
    inc.close()

    full = Store(tmp_path / "full.duckdb")
    # The full run folds ATT1's chains one day at a time, the incremental store's first run
    # all its days at once: both must come to the same folds.
    monkeypatch.setattr(incremental, "FOLD_SPAN_REQUESTS", 1)
    _load(full, files)
    load_file(full, month["fixes"], corrections=True)
    assert compute(full, m, PERIOD, as_of=as_of).days_reduced == len(_reduced(full))
    full.close()

    a, b = _results(tmp_path / "inc.duckdb"), _results(tmp_path / "full.duckdb")
    for table in a:
        assert a[table] == b[table], table
    # The month totals, updated day by day on the incremental store, are its days merged.
    con = duckdb.connect(str(tmp_path / "inc.duckdb"), read_only=True)
    for day_cube, (month_total, keys) in MONTH_TOTALS.items():
        cols = ", ".join(keys)
        merged = con.execute(
            f"SELECT ?, {cols}, sum(n) FROM {day_cube} WHERE report_date BETWEEN ? AND ? GROUP BY ALL",
            [PERIOD, dt.date(2026, 10, 1), dt.date(2026, 10, 31)],
        ).fetchall()
        kept = con.execute(f"SELECT * FROM {month_total}").fetchall()
        assert len(kept) > 100 and sorted(kept, key=repr) == sorted(merged, key=repr), month_total
    con.close()
    # The run summary's fates, merged from the days' `day_fates` after the late and corrected
    # days, are those of the final records as every measure classifies them.
    with Store(tmp_path / "inc.duckdb") as store:
        t = classified_requests(Scope(store.ibis(), m, PERIOD, as_of))
        rows = t.group_by("rule").aggregate(n=t.count()).to_pyarrow().to_pylist()
        fates = {r["rule"]: r["n"] for r in rows}
        n, included, excluded = store.con.execute(
            "SELECT requests_in_period, requests_included, requests_excluded FROM runs"
        ).fetchall()[0]
        # and the dashboard's cubes, merged from the days' `day_drill` and `day_hourly`, are
        # those grouped from the final records.
        for name, grouped in drill_tables(Scope(store.ibis(), m, PERIOD, as_of)).items():
            cols = ", ".join(grouped.column_names)
            kept = sorted(store.con.execute(f"SELECT {cols} FROM {name}").fetchall(), key=repr)
            fresh = sorted((tuple(r.values()) for r in grouped.to_pylist()), key=repr)
            assert len(kept) > 50 and kept == fresh, name
    assert fates.pop(INCLUDED_RULE) == included and included + sum(fates.values()) == n
    assert fates == json.loads(excluded) and sum(fates.values()) > 0
    # and the correction did move the figures: day 3's failures rose by the twelve E62s
    con = duckdb.connect(str(tmp_path / "full.duckdb"), read_only=True)
    fails = con.execute(
        "SELECT failures FROM rsvp WHERE scope='srv' AND rate='day' AND segment='All' AND day=?", [FIXED]
    ).fetchall()
    con.close()
    assert sum(r[0] for r in fails) > 0


def test_assembled_rsvp_equals_numpy_over_the_classified_records(month, tmp_path):
    m = load(None)
    store = Store(tmp_path / "ref.duckdb")
    _load(store, find_files([month["data"]]))
    as_of = dt.datetime(2026, 11, 1, 12)
    compute(store, m, PERIOD, as_of=as_of)
    s = Scope(store.ibis(), m, PERIOD, as_of)
    rec = classified_requests(s).filter(ibis._.included).to_pyarrow().to_pandas()
    got = {
        (r["key"], r["segment"]): r
        for r in store.rows("SELECT * FROM rsvp WHERE scope = 'srv' AND rate = 'month'")
    }
    checked = 0
    for (srv, region), g in rec.groupby(["srv", "region"]):
        r = got[(srv, region)]
        assert r["volume"] == len(g)
        assert r["failures"] == int(g["failed"].sum())
        rtt = g.loc[g["speed_counted"], "rtt_ms"].to_numpy(dtype=np.int64)
        assert r["rtt_count"] == len(rtt)
        if len(rtt):
            assert r["rtt_median_s"] == pytest.approx(np.median(rtt) / 1000, abs=1e-12)
            assert r["rtt_mean_s"] == pytest.approx(rtt.mean() / 1000, rel=1e-12)
            assert (r["rtt_min_s"], r["rtt_max_s"]) == (rtt.min() / 1000, rtt.max() / 1000)
            checked += 1
    assert checked > 20
    store.close()


@settings(max_examples=25, deadline=None)
@given(
    st.lists(
        st.lists(st.tuples(st.integers(0, 40), st.integers(1, 3)), min_size=1, max_size=30),
        min_size=1,
        max_size=4,
    )
)
def test_histogram_median_is_the_exact_median(groups):
    """Rows of (value, count), a value possibly in several rows (as the All level's regions
    give it), have the median of the values they count."""
    rows = []
    for g, counted in enumerate(groups):
        for v, n in counted:
            rows.append(
                {
                    "scope": "srv",
                    "key": str(g),
                    "rate": "month",
                    "day": None,
                    "segment": "All",
                    "rtt_ms": int(v),
                    "n": int(n),
                }
            )
    schema = pa.schema(
        [
            ("scope", pa.string()),
            ("key", pa.string()),
            ("rate", pa.string()),
            ("day", pa.date32()),
            ("segment", pa.string()),
            ("rtt_ms", pa.int64()),
            ("n", pa.int64()),
        ]
    )
    # Two levels, as RSVP's segment levels are: each group's rows in one of them.
    levels = [
        ibis.memtable(pa.Table.from_pylist([r for r in rows if int(r["key"]) % 2 == odd], schema))
        for odd in (0, 1)
    ]
    con = ibis.duckdb.connect()
    out = con.to_pyarrow(_median_ms(levels)).to_pylist()
    assert len(out) == len(groups)
    for r in out:
        values = [v for v, n in groups[int(r["key"])] for _ in range(n)]
        assert (r["med_lo"] + r["med_hi"]) / 2 == np.median(values)
        assert set(GROUP) <= set(r)


def test_month_legs_and_diagnostics_from_day_cubes_equal_numpy_over_the_records(month, tmp_path):
    """The legs' exact medians and means, and the diagnostics' counts, merged from four days'
    cubes, against numpy over every on-demand request of the month and its processes."""
    m = load(None)
    store = Store(tmp_path / "legs.duckdb")
    _load(store, find_files([month["data"]]))
    as_of = dt.datetime(2026, 11, 1, 12)
    compute(store, m, PERIOD, as_of=as_of)
    assert store.con.execute("SELECT count(DISTINCT report_date) FROM day_legs_ms").fetchall()[0][0] == DAYS
    s = Scope(store.ibis(), m, PERIOD, as_of)
    rec = process_requests(s).to_pyarrow().to_pandas()
    s.release()
    rec = rec[rec["mode"] == "on-demand"]

    def ms(a: str, b: str) -> pd.Series:
        return (rec[b] - rec[a]).dt.total_seconds().mul(1000).round()

    rec = rec.assign(
        _han=ms("chf_reached_at", "device_answered_at"),
        _rtt=rec["rtt_ms"].where(rec["device_answered_at"].notna()),
    )
    got = {
        (r["process_id"], r["key"]): r for r in store.rows("SELECT * FROM legs WHERE breakdown = 'region'")
    }
    checked = 0
    for (process, region), g in rec.groupby(["process_id", "region"]):
        r = got[(process, region)]
        assert r["requests"] == len(g)
        for col, name in (("_rtt", "rtt_median_s"), ("_han", "han_median_s")):
            v = g[col].dropna().to_numpy(dtype=np.int64)
            if len(v):
                assert r[name] == pytest.approx(np.median(v) / 1000, abs=1e-12), (process, region, name)
                checked += 1
            else:
                assert r[name] is None
        han = g["_han"].dropna()
        if len(han):
            assert r["han_mean_s"] == pytest.approx(han.mean() / 1000, rel=1e-12)
    assert checked > 10
    diag = store.rows("SELECT process_id, sum(n) AS n, sum(ok) AS ok FROM day_diagnostics GROUP BY 1")
    want = rec.groupby("process_id").agg(
        n=("srv", "size"), ok=("response_category", lambda c: c.str.endswith(": success code").sum())
    )
    assert {r["process_id"]: (r["n"], r["ok"]) for r in diag} == {
        p: (int(w.n), int(w.ok)) for p, w in want.iterrows()
    }
    store.close()


def test_att1_folded_day_by_day_equals_chaining_the_month_at_once(month, tmp_path):
    """ATT1 from the stored day folds (chains carried over midnight) against the chains of the
    month's sends found in one pass; the month must hold chains that cross midnight, with
    later attempts, or the test proves nothing."""
    m = load(None)
    store = Store(tmp_path / "att.duckdb")
    _load(store, find_files([month["data"]]))
    as_of = dt.datetime(2026, 11, 1, 12)
    compute(store, m, PERIOD, as_of=as_of)
    crossed = store.con.execute(
        "SELECT count(*) FROM day_att1_open o JOIN day_att1_state s USING (report_date) "
        "WHERE o.report_date < (SELECT max(report_date) FROM day_att1_state)"
    ).fetchall()[0][0]
    assert crossed > 0
    s = Scope(store.ibis(), m, PERIOD, as_of, materialise=True)
    folded = att1(s, Context(None, {}, stored_cubes(store).attempts))
    whole = att1(s, Context(None, {}))
    s.release()
    store.close()
    assert folded == whole
    later = sum(r["numerator"] for r in whole if r["key1"] in ("2nd attempt", "later attempt"))
    assert later > 0


def _outcome(rows: list[dict], measure: str) -> dict[tuple[str, str, str], dict]:
    return {(r["breakdown"], r["key1"], r["key2"]): r for r in rows if r["measure"] == measure}


def test_outcomes_merged_from_days_reduced_one_by_one_equal_the_records(month, tmp_path):
    """Each day loaded and computed in turn, so every day's outcome cells are reduced alone:
    the month's outcome measures then equal a store computed once over the whole month, and
    the figures that count devices, pairs, parties and alerts equal pandas over the records
    (a device topped up on two days is one device; a sum of the days' counts would not be)."""
    m = load(None)
    as_of = dt.datetime(2026, 11, 1, 12)
    files = find_files([month["data"]])
    by_day = Store(tmp_path / "days.duckdb")
    static = [f for f in files if f.parent.name not in ("service_requests", "alerts")]
    _load(by_day, static)
    for i in range(DAYS):
        day = (dt.date(2026, 10, 1) + dt.timedelta(days=i)).isoformat()
        _load(by_day, [f for f in files if f not in static and f.stem == day])
        assert compute(by_day, m, PERIOD, as_of=as_of).days_reduced >= 1
    got = by_day.rows("SELECT * FROM outcomes")
    s = Scope(by_day.ibis(), m, PERIOD, as_of)
    req = classified_requests(s).to_pyarrow().to_pandas()
    alerts = by_day.con.execute(
        "SELECT * FROM alerts WHERE report_date BETWEEN ? AND ?", [s.first, s.last]
    ).df()
    s.release()
    by_day.close()

    once = Store(tmp_path / "once.duckdb")
    _load(once, files)
    compute(once, m, PERIOD, as_of=as_of)
    whole = once.rows("SELECT * FROM outcomes")
    s = Scope(once.ibis(), m, PERIOD, as_of)
    rec = process_requests(s).to_pyarrow().to_pandas()
    s.release()
    once.close()
    key = ["measure", "breakdown", "key1", "key2", "numerator", "denominator", "value", "status", "note"]
    assert [tuple(r[k] for k in key) for r in got] == [tuple(r[k] for k in key) for r in whole]

    inc = req[req["included"]]
    top = inc[inc["srv"].isin(m.measure("PP1").srvs)]
    assert top.groupby("device_id")["report_date"].nunique().max() > 1  # devices topped up on two days
    vol = _outcome(got, "PP1.volumes")
    assert vol[("volume", "unique devices", "")]["numerator"] == top["device_id"].nunique()
    # The outcome measures count a top-up's failure as their basis reads it (`outcome_failed`).
    assert vol[("volume", "failed", "")]["numerator"] == int(top["outcome_failed"].sum())
    for region, g in top.groupby("region"):
        assert vol[("region", region, "successful")]["note"] == (
            f"{int(g['outcome_failed'].sum())} failed, {g['device_id'].nunique()} devices"
        )

    cos = inc[inc["srv"] == "6.23"]
    tr1 = _outcome(got, "TR1.cos_volumes")
    attempted = tr1[("volume", "attempted CoS (devices sent a 6.23)", "")]["numerator"]
    assert attempted == cos["device_id"].nunique() > 0

    lt1 = _outcome(got, "LT1")
    assert len(lt1) > 10
    for (process, party), g in rec.groupby(["process_id", "party_id"]):
        assert lt1[(process, party, "within TRT")]["numerator"] == int(g["within_trt"].sum())
        assert lt1[(process, party, "within TRT")]["denominator"] == len(g)
        ok = int(((~g["outcome_failed"]).astype(int) * g["count_weight"] - g["extra_failures"]).sum())
        assert lt1[(process, party, "success")]["numerator"] == ok

    a, b = m.measure("SEC1.pairs").srvs
    sec = inc[inc["srv"].isin([a, b])]
    keys = ["device_id", "party_id", "report_date"]
    both = sec.groupby(keys)["srv"].transform("nunique") == 2
    pairs = _outcome(got, "SEC1.pairs")
    for srv, g in sec.groupby("srv"):
        assert (pairs[("srv", srv, "")]["numerator"], pairs[("srv", srv, "")]["denominator"]) == (
            int(both[g.index].sum()),
            len(g),
        )

    sent = _outcome(got, "FC1")
    per_party = req.groupby("party_id").size()
    assert {k[1]: r["numerator"] for k, r in sent.items() if r["numerator"]} == per_party.to_dict()

    al = alerts[~alerts["suppressed"].fillna(True).astype(bool)]  # a null flag: not included
    limit = m.outcomes.alert_trt_seconds * 1000
    in_time = (al["delivered_at"] - al["raised_at"]).dt.total_seconds().mul(1000) <= limit
    a1 = _outcome(got, "A1")
    for region, g in al.groupby("region"):
        assert (a1[("region", region, "")]["numerator"], a1[("region", region, "")]["denominator"]) == (
            int(in_time[g.index].sum()),
            len(g),
        )


def test_a_changed_cube_definition_reduces_every_day_again_and_an_unchanged_one_nothing(
    month, tmp_path, monkeypatch
):
    """No version number to raise: each cube's fingerprint is its compiled SQL. Same code, same
    fingerprints (kept in cube_models, not compiled again); a cube compiling to other SQL makes
    every day stale once, and only that model's fingerprint moves."""
    m, as_of = load(None), dt.datetime(2026, 11, 1)
    with Store(tmp_path / "models.duckdb") as store:
        _load(store, find_files([month["data"]]))
        days = compute(store, m, PERIOD, as_of=as_of).days_reduced
        assert days == len(_reduced(store)) >= DAYS
        before = dict(store.con.execute("SELECT name, fingerprint FROM cube_models").fetchall())
        assert set(before) == {*incremental.CUBE_TABLES, "att1_folds"}
        compiled = []
        monkeypatch.setattr(incremental, "compiled_sql", lambda s: compiled.append(1) or {})
        assert compute(store, m, PERIOD, as_of=as_of).days_reduced == 0
        assert compiled == []  # the stored fingerprints were reused: the code key held
        with Store(tmp_path / "second.duckdb") as second:  # a new store, in the same process
            _load(second, find_files([month["data"]]))
            compute(second, m, PERIOD, as_of=as_of)
            assert compiled == []  # compiled once per process, not once per store
            assert dict(second.con.execute("SELECT name, fingerprint FROM cube_models").fetchall()) == before
        monkeypatch.undo()

        # The same alerts cube, but compiled to other SQL (a filter that keeps every row), and a
        # code key that moved, as an edit of measures/ would move it.
        original = incremental.CUBE_TABLES["day_alerts"]

        def edited(s):
            t = original(s)
            return t.filter(t.records >= 0)

        monkeypatch.setitem(incremental.CUBE_TABLES, "day_alerts", edited)
        monkeypatch.setattr(incremental, "_code_key", lambda s: "an edited measures/")
        assert compute(store, m, PERIOD, as_of=as_of).days_reduced == days
        after = dict(store.con.execute("SELECT name, fingerprint FROM cube_models").fetchall())
        assert {n for n in before if before[n] != after[n]} == {"day_alerts"}
        assert compute(store, m, PERIOD, as_of=as_of).days_reduced == 0


def test_model_fingerprints_compiled_by_one_process_serve_the_next(tmp_path, monkeypatch):
    """A new store in a new process (no `_COMPILED`) reads the fingerprints another compiled
    under the same code key from the cache directory, compiling nothing. Tamper: a cache entry
    missing a model, or kept under another key, is not used (compiled again, and mended)."""
    monkeypatch.setenv("OPMETRICS_CACHE_DIR", str(tmp_path / "cache"))
    real_compile, compiled = incremental.compiled_sql, []
    monkeypatch.setattr(incremental, "compiled_sql", lambda s: compiled.append(1) or real_compile(s))
    m = load(None)

    def fresh_store(name: str) -> tuple[dict[str, str], str]:
        monkeypatch.setattr(incremental, "_COMPILED", {})  # as in a new process
        with Store(tmp_path / name) as store:
            got = incremental.model_fingerprints(
                store, Scope(store.ibis(), m, PERIOD, dt.datetime(2026, 11, 1))
            )
            key = store.con.execute("SELECT DISTINCT code_key FROM cube_models").fetchall()[0][0]
            assert dict(store.con.execute("SELECT name, fingerprint FROM cube_models").fetchall()) == got
        return got, key

    first, key = fresh_store("first.duckdb")
    assert set(first) == {*incremental.CUBE_TABLES, "att1_folds"} and len(compiled) == 1
    files = list((tmp_path / "cache" / "cube_models").glob("*.json"))
    assert len(files) == 1
    assert json.loads(files[0].read_text("utf-8")) == {"key": key, "models": first}
    assert fresh_store("second.duckdb") == (first, key)
    assert len(compiled) == 1  # read from the cache: nothing compiled
    # Tamper: one model missing from the entry; then the entry kept under another key.
    files[0].write_text(json.dumps({"key": key, "models": dict(list(first.items())[1:])}), "utf-8")
    assert fresh_store("third.duckdb") == (first, key)
    assert len(compiled) == 2
    assert json.loads(files[0].read_text("utf-8"))["models"] == first  # mended
    files[0].write_text(json.dumps({"key": key + "?", "models": first}), "utf-8")
    assert incremental._cached_models(key) == {}


def test_model_fingerprints_are_the_same_in_every_process(month, tmp_path):
    """Compiled SQL hashed in two processes with different hash seeds (Ibis lists dropped
    columns in set order) gives the same fingerprints, or every run would reduce every day."""
    import os
    import subprocess
    import sys

    db = tmp_path / "seeds.duckdb"
    with Store(db) as store:
        _load(store, find_files([month["data"]]))
    script = (
        "import datetime as dt, hashlib, sys\n"
        "from opmetrics.engine.store import Store\n"
        "from opmetrics.measures.incremental import compiled_sql\n"
        "from opmetrics.measures.records import Scope\n"
        "from opmetrics.methodology import load\n"
        "with Store(sys.argv[1], read_only=True) as st:\n"
        "    s = Scope(st.ibis(), load(None), '2026-10', dt.datetime(2026, 11, 1), [])\n"
        "    print(hashlib.sha256(repr(sorted(compiled_sql(s).items())).encode()).hexdigest())\n"
    )
    outs = {
        subprocess.run(
            [sys.executable, "-c", script, str(db)],
            env={**os.environ, "PYTHONHASHSEED": seed},
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        for seed in ("1", "2")
    }
    assert len(outs) == 1 and len(next(iter(outs))) == 64


def test_every_cube_reads_only_what_a_days_fingerprint_covers(month, tmp_path, monkeypatch):
    """What each cube depends on is read from its compiled SQL (`cube_inputs`): requests, alerts
    and devices, the inputs a day's fingerprint covers. Tamper: a cube that also reads incidents
    (whose changes no day's fingerprint would see) is caught, by name."""
    m, as_of = load(None), dt.datetime(2026, 11, 1)
    with Store(tmp_path / "deps.duckdb") as store:
        _load(store, find_files([month["data"]]))
        s = Scope(con=store.ibis(), m=m, period=PERIOD, as_of=as_of)
        reads = incremental.cube_inputs(s)
        assert set(reads) == set(incremental.CUBE_TABLES)
        assert {n: r for n, r in reads.items() if not r <= incremental.DAY_INPUTS} == {}
        assert reads["day_alerts"] == {"alerts"} and "service_requests" in reads["day_requests"]

        original = incremental.CUBE_TABLES["day_sent"]

        def reads_incidents(sc):
            t = original(sc)
            inc = sc.con.table("incidents")
            return t.filter(t.report_date.notin(inc.select(d=inc.report_date).d))

        monkeypatch.setitem(incremental.CUBE_TABLES, "day_sent", reads_incidents)
        reads = incremental.cube_inputs(s)
        assert {n for n, r in reads.items() if not r <= incremental.DAY_INPUTS} == {"day_sent"}
        assert "incidents" in reads["day_sent"]
