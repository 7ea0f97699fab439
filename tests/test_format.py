"""One number, one text (issue 32, item 3): the formatter's rule at its edges, and the same
fraction formatted from its counts and from its stored float gives the same text."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from opmetrics import format as fmt


def test_truncated_never_rounded_at_the_edges():
    assert fmt.pct(99.999) == "99.99%" and fmt.pct(100.0) == "100.00%"
    assert fmt.pct_of(99_999, 100_000) == "99.99%"  # never 100.00 % while one request failed
    # 100 * 23 / 125 = 18.4 exactly, but its float times 100 is 1839.99...: plain truncation
    # would print 18.39 % beside counts that say 18.40 %.
    assert (100 * 23 / 125) * 100 < 1840
    assert fmt.pct(100 * 23 / 125) == fmt.pct_of(23, 125) == "18.40%"
    assert fmt.pct_of(1, 3) == "33.33%" and fmt.pct_of(2, 3) == "66.66%"
    assert fmt.pct(None) == fmt.pct_of(5, 0) == fmt.pct_of(None, 7) == "–"
    assert fmt.points(-0.004) == "-0.00 pp" and fmt.points(1.5) == "+1.50 pp"


@given(st.integers(1, 10**9 - 1).flatmap(lambda d: st.tuples(st.integers(0, d), st.just(d))))
def test_a_fraction_reads_the_same_from_its_counts_and_from_its_float(nd):
    n, d = nd
    assert fmt.pct(100.0 * n / d) == fmt.pct_of(n, d)
    # and as the stored figures compute it, from the complement
    assert fmt.pct(100.0 * (d - (d - n)) / d) == fmt.pct_of(n, d)


def test_an_outcome_value_reads_in_its_unit_with_the_same_rule():
    assert fmt.measure_value(100 * 23 / 125, "%") == "18.40%"
    assert fmt.measure_value(97.429, "% of predicted") == "97.42 % of predicted"  # never 97.43
    assert fmt.measure_value(12.0, "count") == "12" and fmt.measure_value(2.5, "count") == "2.5"
    assert fmt.measure_value(None, "%") == "–"


def test_a_duration_reads_the_same_in_the_incident_table_and_the_introduction():
    assert (
        fmt.duration(95) == "1 h 35 min"
        and fmt.duration(47.4) == "47 min"
        and fmt.duration(60) == "1 h 00 min"
    )
    assert fmt.duration(None) == "–"


def test_api_answers_carry_each_percentage_as_the_pack_prints_it():
    """format.with_text: every `pct` / `..._pct` field gets its text beside it, nested too; an
    outcome's value its text in its unit; nothing else changes."""
    answer = {
        "pct": 99.996,
        "rows": [{"success_pct": 100.0 * 23 / 125, "volume": 125}, {"within_trt_pct": None}],
        "measure": {"value": 12.5, "unit": "% of predicted"},
        "name": "x_pct",  # a text field named like a percentage is left alone
    }
    got = fmt.with_text(answer)
    assert got["pct_text"] == "99.99%"
    assert got["rows"][0] == {"success_pct": 100.0 * 23 / 125, "volume": 125, "success_pct_text": "18.40%"}
    assert got["rows"][1]["within_trt_pct_text"] == fmt.DASH
    assert got["measure"]["value_text"] == "12.50 % of predicted"
    assert got["name"] == "x_pct" and "name_text" not in got


def test_an_anonymised_rate_has_fewer_decimals_on_a_smaller_cell_at_the_exact_boundaries():
    """Each step must be coarser than one record: 100 records or fewer, nothing; whole
    percents from 101; one decimal from 1,001; two from 10,001 (issue 36)."""
    expect = {1: None, 100: None, 101: 0, 1000: 0, 1001: 1, 10_000: 1, 10_001: 2, 10**9: 2}
    assert {n: fmt.anonymised_places(n) for n in expect} == expect
    shown = fmt.shown_pct(100 * 997 / 1013, 0)  # 98.420...%
    assert shown == 98.0 and shown.places == 0 and fmt.pct(shown) == "98%"
    assert fmt.with_text({"success_pct": fmt.shown_pct(98.4207, 1)})["success_pct_text"] == "98.4%"
    assert fmt.pct(fmt.shown_pct(98.4207, 2)) == fmt.pct(98.4207) == "98.42%"
