"""docs/architecture.md's "Adding a measure", followed to the letter: a toy measure declared in a
methodology YAML, computed by a function in a new family module listed in `FAMILIES`, comes out
of `compute` as a stored outcome row, with the figure counted by hand from the rows loaded."""

from __future__ import annotations

import datetime as dt
import importlib
import re
import sys
from pathlib import Path

import pytest
import yaml
from conftest import load_rows, sr

from opmetrics import methodology
from opmetrics.measures import families
from opmetrics.measures.run import compute
from opmetrics.methodology.status import Status

ROOT = Path(__file__).resolve().parent.parent
AS_OF = dt.datetime(2026, 11, 1)

# Step 2: a family module. Its function reads the classified requests (each with its inclusion
# rule and outcome) and returns rows built with the shared helpers.
TOY_FAMILY = '''
from opmetrics.measures.outcome import share_row
from opmetrics.measures.records import classified_requests


def toy_fast_topups(s, ctx):
    """Included 2.2 top-ups answered within 3 seconds of being received."""
    t = classified_requests(s)
    t = t.filter(t.included & (t.srv == "2.2"))
    fast = (t.responded_at - t.received_at) <= __import__("datetime").timedelta(seconds=3)
    n = int(t.filter(fast).count().to_pyarrow().as_py())
    d = int(t.count().to_pyarrow().as_py())
    return [share_row("all", "All", n, d)]


MEASURES = {"TOY1": toy_fast_topups}
CELLS = {}
'''


@pytest.fixture
def toy_methodology(tmp_path: Path) -> methodology.Methodology:
    """Step 1: the measure declared in a copy of the shipped methodology YAML."""
    data = yaml.safe_load(methodology.default_path().read_text(encoding="utf-8"))
    data["measures"].append(
        {
            "id": "TOY1",
            "process": "prepayment",
            "kind": "I",
            "inputs": ["service_requests"],
            "source": '001 l.334 "report the percentage that failed to meet the Target Response Times"',
            "definition": "Share of included prepayment top-ups (2.2) answered within 3 seconds.",
        }
    )
    path = tmp_path / "toy-methodology.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return methodology.load(path)


@pytest.fixture
def toy_family(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Step 3: a new family module, added to FAMILIES."""
    folder = tmp_path / "families"
    folder.mkdir()
    (folder / "toy_family.py").write_text(TOY_FAMILY, encoding="utf-8")
    monkeypatch.syspath_prepend(str(folder))
    module = importlib.import_module("toy_family")
    monkeypatch.setattr(families, "FAMILIES", [*families.FAMILIES, module])
    yield module
    sys.modules.pop("toy_family", None)


def t(day: int, h: int, m: int = 0, s: float = 0) -> str:
    return (dt.datetime(2026, 10, day, h, m) + dt.timedelta(seconds=s)).isoformat(
        timespec="milliseconds"
    ) + "Z"


def test_a_toy_measure_added_by_the_documented_path(store, tmp_path, toy_methodology, toy_family):
    # Five top-ups: answered in 1 s, 3 s (at the limit), 3.001 s (1 ms over), 8 s; and a 4.1.1
    # read answered in 1 s, which is not a top-up and so not counted. By hand: 2 of 4 fast.
    reqs = [
        sr(1, received_at=t(5, 10), responded_at=t(5, 10, 0, 1)),
        sr(2, received_at=t(5, 11), responded_at=t(5, 11, 0, 3)),
        sr(3, received_at=t(6, 11), responded_at=t(6, 11, 0, 3.001)),
        sr(4, received_at=t(7, 11), responded_at=t(7, 11, 0, 8)),
        sr(5, srv="4.1.1", received_at=t(7, 12), responded_at=t(7, 12, 0, 1)),
    ]
    assert load_rows(store, tmp_path, "service_requests", reqs).quarantined == 0
    compute(store, toy_methodology, "2026-10", as_of=AS_OF)
    rows = store.rows(
        "SELECT breakdown, numerator, denominator, value, unit, status, kind FROM outcomes "
        "WHERE measure = 'TOY1' AND period = '2026-10'"
    )
    assert rows == [
        {
            "breakdown": "all",
            "numerator": 2,
            "denominator": 4,
            "value": 50.0,
            "unit": "%",
            "status": Status.OK,
            "kind": "I",
        }
    ]
    # Step 4: the measure catalogue lists it with its definition and source.
    doc = methodology.catalogue_markdown(toy_methodology)
    assert "TOY1" in doc and "answered within 3 seconds" in doc


def test_without_its_family_the_measure_says_so(store, tmp_path, toy_methodology):
    """Declared but not computed by any family: the run stores "not implemented", never a zero."""
    assert load_rows(store, tmp_path, "service_requests", [sr(1)]).quarantined == 0
    compute(store, toy_methodology, "2026-10", as_of=AS_OF)
    (row,) = store.rows("SELECT status, value, note FROM outcomes WHERE measure = 'TOY1'")
    assert row["status"] == Status.NOT_IMPLEMENTED and row["value"] is None


def test_a_measure_id_declared_by_two_families_is_refused(toy_family):
    clash = type(toy_family)("clash")
    clash.MEASURES = {"TOY1": toy_family.toy_fast_topups}
    clash.CELLS = {}
    with pytest.raises(ValueError, match="'TOY1' is declared by two families"):
        families.registry([*families.FAMILIES, clash])


def test_the_architecture_page_names_files_that_exist():
    """Every source path the page names is there, so the newcomer's path does not rot."""
    text = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    named = set(re.findall(r"`((?:[a-z_]+/)+[a-z_0-9.\-]+\.(?:py|yaml))`", text))
    assert len(named) > 10
    src = ROOT / "src" / "opmetrics"
    missing = [p for p in named if not (src / p).exists() and not (ROOT / p).exists()]
    assert missing == []


def test_every_cpm_kind_is_declared_once_with_its_input():
    """CPM kind dispatch comes from one declaration per kind (`cpm.KINDS`): each kind the
    methodology may name has its input table and row builder, and nothing else is declared."""
    import typing

    from opmetrics.engine.store import Store
    from opmetrics.measures import cpm

    kinds = set(typing.get_args(methodology.CpmKind))
    assert set(cpm.KINDS) == kinds
    with Store(":memory:") as st:
        have = {r["table_name"] for r in st.rows("SELECT table_name FROM duckdb_tables()")}
    assert {k.input for k in cpm.KINDS.values()} <= have  # real input tables of the contract


def test_result_tables_are_created_as_declared(store, tmp_path):
    """A run's result tables come from their declarations (`measures/models.py`): in a new store
    each table has exactly the declared columns and types, whatever the run returned (DuckDB's
    sums are DECIMAL, an empty context table has no types at all)."""
    from opmetrics.measures.models import RESULT_TABLES

    load_rows(store, tmp_path, "service_requests", [sr(1, received_at=t(5, 10), responded_at=t(5, 10, 0, 2))])
    compute(store, methodology.load(), "2026-10", as_of=AS_OF)
    duck = {"string": "VARCHAR", "int64": "BIGINT", "double": "DOUBLE", "date32[day]": "DATE",
            "timestamp[us]": "TIMESTAMP", "bool": "BOOLEAN"}  # fmt: skip
    for name, model in RESULT_TABLES.items():
        got = [(r["column_name"], r["column_type"]) for r in store.rows(f'DESCRIBE "{name}"')]
        want = [(f.name, duck[str(f.type)]) for f in model.schema] + [("run_id", "VARCHAR")]
        assert got == want, name


def test_a_result_unlike_its_declaration_is_refused():
    """Tamper: a missing column, a column not declared, a type that cannot be cast without loss,
    and an undeclared table are each refused, naming the table and the column."""
    import pyarrow as pa

    from opmetrics.measures.models import RESULT_TABLES, conform

    schema = RESULT_TABLES["run_alerts"].schema
    ok = pa.table(
        {"kind": ["device"], "alert_code": ["8F35"], "n": pa.array([3], pa.int32()), "period": ["2026-10"]}
    )
    assert conform("run_alerts", ok).schema == schema  # int32 widens to the declared int64
    with pytest.raises(ValueError, match=r"run_alerts.*missing \['n'\]"):
        conform("run_alerts", ok.drop_columns(["n"]))
    with pytest.raises(ValueError, match=r"not declared \['extra'\]"):
        conform("run_alerts", ok.append_column("extra", pa.array([1])))
    with pytest.raises(ValueError, match="column n is string, declared int64"):
        conform("run_alerts", ok.set_column(2, "n", pa.array(["3"])))
    with pytest.raises(ValueError, match="run_nothing is not declared"):
        conform("run_nothing", ok)
