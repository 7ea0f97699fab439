"""Bad input (issue 10): every parser and validator under generated bad input. The same targets
run with 10 000 inputs each in `bench/fuzz.py` (results in docs/reliability.md); here 40
each, plus a Hypothesis property over single field values."""

from __future__ import annotations

import pytest
from conftest import bench_module
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from opmetrics.engine.store import Store
from opmetrics.ingest.load import IngestError, load_file

fuzz = bench_module("fuzz")


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    work = tmp_path_factory.mktemp("fuzz")
    return fuzz.make_base(work), work


@pytest.mark.parametrize("target", list(fuzz.TARGETS))
def test_no_bad_input_crashes_or_goes_missing(base, target):
    b, work = base
    tally = fuzz.TARGETS[target](40, b, work)
    assert tally.inputs == 40
    assert tally.outcomes["CRASH"] == 0, tally.crashes
    # The generator reaches both sides: inputs refused or quarantined, and inputs accepted.
    assert len([k for k, v in tally.outcomes.items() if v]) >= 2, tally.outcomes


@given(
    table=st.sampled_from(["service_requests", "alerts", "incidents", "devices"]),
    data=st.data(),
    value=st.text(
        alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n\x00"), max_size=40
    ),
)
@settings(max_examples=80, deadline=None, suppress_health_check=list(HealthCheck))
def test_any_value_in_any_field_is_accepted_valid_or_quarantined_naming_it(
    base, tmp_path_factory, table, data, value
):
    b, _ = base
    field = data.draw(st.sampled_from(fuzz.CONTRACT.table(table).field_names))
    row = dict(b.rows[table][0])
    row[field] = value
    path = tmp_path_factory.mktemp("h") / f"{table}.csv"
    import csv

    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=list(row), lineterminator="\n")
        w.writeheader()
        w.writerow(row)
    with Store(":memory:") as store:
        try:
            res = load_file(store, path, table)
        except IngestError as e:
            assert str(path) in str(e)
            return
        assert res.rows_read == 1 and res.accepted + res.quarantined == 1
        q = store.rows("SELECT all_reasons FROM quarantine")
        if fuzz.python_rejects(table, field, value):
            assert res.quarantined == 1 and field in q[0]["all_reasons"], (field, value, q)
        if res.accepted:
            assert store.count(table) == 1


def test_cli_fuzz_writes_relative_paths_into_its_own_folder(base, monkeypatch, tmp_path):
    """`--db party` (a random value) opened a database named `party` wherever the fuzzer ran: one
    was committed at the repository root. Every value is now relative to the fuzzer's folder."""
    b, work = base
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(fuzz, "CLI_COMMANDS", [["users", "list"], ["exceptions", "list"], ["audit"]])
    monkeypatch.setattr(fuzz, "CLI_OPTIONS", ["--db"])
    monkeypatch.setattr(fuzz, "CLI_VALUES", ["party"])
    fuzz.fuzz_cli(6, b, work)
    assert list(tmp_path.iterdir()) == []
