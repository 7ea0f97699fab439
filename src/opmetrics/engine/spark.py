"""Apache Spark behind the same measure definitions (issue 11).

The measures are Ibis expressions; here they run on PySpark instead of DuckDB. Spark reads the
validated inputs as a Parquet layout that `export_parquet` writes from the store (or that a
cluster's own ingest writes the same way):

    <root>/service_requests/report_date=2026-10-01/*.parquet   (one folder per UK day)
    <root>/alerts/report_date=2026-10-01/*.parquet
    <root>/<other table>/data.parquet                          (small tables: one file)
    <root>/_pmel.json                                          (the exceptions in force)
    <root>/_results/cpm.parquet, availability.parquet          (published earlier results)

The published results carry what a month's figures look back on: the CPM statuses of earlier
months (consecutive months below target) and last month's availability (previous service level).

Only ingest validates and quarantines; Spark never sees a record the store refused.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from opmetrics.engine import history
from opmetrics.engine.store import Store

# Tables big enough to split by day; the rest are one file each.
PARTITIONED = ("service_requests", "alerts")
# Earlier months' results a month's figures look back on (engine/history.py: runs, else the
# published values), written beside the inputs so Spark counts them as DuckDB does.
PUBLISHED = {"cpm": history.cpm_rows, "availability": history.availability_rows}


def export_parquet(store: Store, root: str | Path) -> dict[str, int]:
    """Write every input table of the store in the Spark layout; return rows per table."""
    from opmetrics.engine import pmel

    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    rows = {}
    for name in store.contract.tables:
        target = root / name
        if name in PARTITIONED and store.count(name) == 0:
            # No day to partition by: one empty file carries the columns, so that Spark reads an
            # empty table (its measures then report missing input) instead of failing to infer one.
            target.mkdir(exist_ok=True)
            store.con.execute(
                f"COPY (SELECT * FROM \"{name}\" LIMIT 0) TO '{(target / 'empty.parquet').as_posix()}' "
                "(FORMAT parquet)"
            )
        elif name in PARTITIONED:
            store.con.execute(
                f"COPY (SELECT * FROM \"{name}\") TO '{target.as_posix()}' "
                "(FORMAT parquet, PARTITION_BY (report_date), OVERWRITE_OR_IGNORE, COMPRESSION zstd)"
            )
        else:
            target.mkdir(exist_ok=True)
            store.con.execute(
                f"COPY (SELECT * FROM \"{name}\") TO '{(target / 'data.parquet').as_posix()}' "
                "(FORMAT parquet, COMPRESSION zstd)"
            )
        rows[name] = store.count(name)
    results = root / "_results"
    results.mkdir(exist_ok=True)
    for name, earlier in PUBLISHED.items():
        pq.write_table(earlier(store), results / f"{name}.parquet")
    active = [dataclasses.asdict(e) for e in pmel.active(store)]
    (root / "_pmel.json").write_text(json.dumps(active, indent=1, default=str))
    (root / "_inputs.json").write_text(json.dumps(rows, indent=1))
    return rows


def published(root: str | Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The earlier months' CPM and availability rows when the layout was written (none for a
    layout without them)."""
    out = []
    for name in PUBLISHED:
        path = Path(root) / "_results" / f"{name}.parquet"
        out.append(pq.read_table(path).to_pylist() if path.exists() else [])
    return out[0], out[1]


def input_rows(root: str | Path) -> dict[str, int]:
    """Rows per input table when the layout was written (0 = input missing: reported as such)."""
    return json.loads((Path(root) / "_inputs.json").read_text())


def session(master: str = "local[2]", **conf: str) -> Any:
    """A SparkSession set up for opmetrics: UTC, quiet, few shuffle partitions for small data."""
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    from pyspark.sql import SparkSession

    b = SparkSession.builder.master(master).appName("opmetrics")
    settings = {
        "spark.sql.session.timeZone": "UTC",
        "spark.ui.enabled": "false",
        "spark.ui.showConsoleProgress": "false",
        "spark.sql.shuffle.partitions": "4",
        **conf,
    }
    for k, v in settings.items():
        b = b.config(k, v)
    s = b.getOrCreate()
    s.sparkContext.setLogLevel("ERROR")
    return s


def connect(root: str | Path, spark: Any) -> Any:
    """An Ibis backend over the Parquet layout at `root`, one table per input."""
    import ibis

    from opmetrics.methodology.contract import load_contract

    root = Path(root)
    con = ibis.pyspark.connect(spark)
    for name in load_contract().tables:
        path = root / name
        if not path.exists():
            raise FileNotFoundError(f"{path}: missing; write the layout with `opmetrics export-parquet`")
        con.read_parquet(str(path if name in PARTITIONED else path / "data.parquet"), table_name=name)
    return con


def exceptions(root: str | Path) -> list:
    """The exceptions register entries in force when the layout was written."""
    from opmetrics.engine.pmel import PmelException

    path = Path(root) / "_pmel.json"
    out = []
    for e in json.loads(path.read_text()) if path.exists() else []:
        for k in ("window_start", "window_end"):
            e[k] = dt.datetime.fromisoformat(e[k]) if e[k] else None
        out.append(PmelException(**e))
    return out
