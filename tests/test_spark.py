"""Spark conformance (issue 11): the same measure definitions on PySpark (local mode) and on
DuckDB, over the same simulated days, give identical tables, exact medians included."""

from __future__ import annotations

import datetime as dt
import math
import shutil

import pytest

from opmetrics.engine.spark import export_parquet, session
from opmetrics.engine.store import Store
from opmetrics.ingest.load import find_files, load_file
from opmetrics.measures.run import compute, compute_spark
from opmetrics.methodology import load
from opmetrics.simulate.generator import Faults, simulate_month

PERIOD = "2026-10"
AS_OF = dt.datetime(2026, 11, 1, 12)
TABLES = ("rsvp", "cpm", "outcomes", "availability", "legs", "diagnostics", "benchmarks")

pytestmark = pytest.mark.skipif(shutil.which("java") is None, reason="Spark needs a Java runtime")


def _norm(v: object) -> object:
    # NaN never equals itself; treat it like a missing value on both sides.
    return None if isinstance(v, float) and math.isnan(v) else v


def _rows(table) -> list[tuple]:  # noqa: ANN001
    cols = [c for c in table.column_names if c != "run_id"]
    rows = [tuple(_norm(r[c]) for c in cols) for r in table.select(cols).to_pylist()]
    return sorted(rows, key=repr)


def test_spark_gives_the_same_tables_as_duckdb(tmp_path):
    simulate_month(PERIOD, tmp_path / "data", "tiny", seed=9, faults=Faults(enabled=True), days=2)
    m = load(None)
    with Store(tmp_path / "om.duckdb") as store:
        for f in find_files([tmp_path / "data"]):
            load_file(store, f)
        compute(store, m, PERIOD, as_of=AS_OF)
        # A published September like October: October's figures then look back on it (months
        # below target, previous service level), and Spark must read it from the layout.
        for t in ("cpm", "availability"):
            store.con.execute(f"INSERT INTO {t} SELECT * REPLACE ('2026-09' AS period) FROM {t}")
        compute(store, m, PERIOD, as_of=AS_OF)
        export_parquet(store, tmp_path / "layout")
        mine = f"WHERE period = '{PERIOD}'"  # not the September rows
        duck = {t: store.con.sql(f"SELECT * FROM {t} {mine}").to_arrow_table() for t in TABLES}

    spark = session("local[2]", **{"spark.sql.shuffle.partitions": "2"})
    try:
        got = compute_spark(tmp_path / "layout", m, PERIOD, AS_OF, spark)
    finally:
        spark.stop()

    assert duck["rsvp"].num_rows > 300 and duck["outcomes"].num_rows > 100
    medians = [r for r in duck["rsvp"].column("rtt_median_s").to_pylist() if r is not None]
    assert len(medians) > 100
    runs = duck["cpm"].column("months_below_target").to_pylist()
    assert max(runs) == 2 and 1 not in runs  # every month below target follows one
    assert duck["availability"].column("previous_pct").drop_null().to_pylist() != []
    for t in TABLES:
        a, b = _rows(duck[t]), _rows(got[t])
        assert len(a) == len(b), t
        diff = [(x, y) for x, y in zip(a, b, strict=True) if x != y]
        assert not diff, (t, diff[:3])
