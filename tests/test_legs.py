"""Legs of the journey and the DCC proxy (issue 12), worked by hand."""

from __future__ import annotations

import datetime as dt

import pytest
from conftest import load_rows, sr

from opmetrics.measures.run import compute

AS_OF = dt.datetime(2026, 11, 1)


def at(hms: str) -> str:
    return f"2026-10-05T{hms}Z"


def test_dcc_proxy_home_network_and_dsp_share_by_hand(store, tmp_path, meth):
    # received, sent to CSP, CHF/GPF reached, device answered, back from CSP, responded
    legs = [
        ("10:00:00.000", "10:00:00.300", "10:00:01.300", "10:00:02.300", "10:00:03.000", "10:00:03.500"),
        ("11:00:00.000", "11:00:00.500", "11:00:03.000", "11:00:08.000", "11:00:09.000", "11:00:10.000"),
        # a gas meter asleep for ten minutes, and a slow DSP on the way back (5.0 s)
        ("12:00:00.000", "12:00:00.200", "12:00:01.400", "12:10:01.400", "12:10:02.400", "12:10:07.400"),
    ]
    rows = [
        sr(i + 1, received_at=at(r), csp_sent_at=at(c), chf_reached_at=at(h), device_answered_at=at(d),
           csp_returned_at=at(b), responded_at=at(x), device_type="GSME" if i == 2 else "ESME")
        for i, (r, c, h, d, b, x) in enumerate(legs)
    ]  # fmt: skip
    rows.append(sr(4, received_at=at("13:00:00.000"), responded_at=at("13:00:02.000")))  # no legs
    for r in rows:
        for k in ("csp_sent_at", "chf_reached_at", "device_answered_at", "csp_returned_at"):
            r.setdefault(k, "")
    assert load_rows(store, tmp_path, "service_requests", rows).accepted == 4
    compute(store, meth, "2026-10", as_of=AS_OF)
    got = store.rows("SELECT * FROM legs WHERE process_id = 'prepayment' AND breakdown = 'All'")[0]
    assert (got["requests"], got["with_legs"]) == (4, 3)
    assert got["coverage_pct"] == pytest.approx(75.0)
    # Delivery to CHF/GPF: 1.3, 3.0 and 1.4 s -> median 1.4, mean 1.9.
    assert got["proxy_median_s"] == pytest.approx(1.4) and got["proxy_mean_s"] == pytest.approx(1.9)
    # Home network 1.0, 5.0, 600.0 s; RTT 3.5, 10.0, 607.4; RTT without it 2.5, 5.0, 7.4.
    assert got["han_median_s"] == pytest.approx(5.0) and got["han_mean_s"] == pytest.approx(202.0)
    assert got["rtt_median_s"] == pytest.approx(10.0) and got["rtt_excl_han_median_s"] == pytest.approx(5.0)
    # DSP: 0.3 + 0.5 = 0.8, 0.5 + 1.0 = 1.5, 0.2 + 5.0 = 5.2 s, against 30 - 25 = 5 s: 2 of 3.
    assert got["dsp_median_s"] == pytest.approx(1.5) and got["dsp_trt_s"] == pytest.approx(5.0)
    assert got["dsp_within_pct"] == pytest.approx(200 / 3)
    # CSP round trip 2.7, 8.5, 602.2 s.
    assert got["csp_median_s"] == pytest.approx(8.5)
    gas = store.rows("SELECT * FROM legs WHERE process_id = 'prepayment' AND key = 'GSME'")[0]
    assert gas["han_median_s"] == pytest.approx(600.0) and gas["proxy_median_s"] == pytest.approx(1.4)


def test_no_legs_in_the_input_means_no_proxy_said_plainly(store, tmp_path, meth):
    load_rows(store, tmp_path, "service_requests", [sr(1), sr(2)])  # a 1.1 file: no leg columns
    compute(store, meth, "2026-10", as_of=AS_OF)
    got = store.rows("SELECT * FROM legs WHERE process_id = 'prepayment' AND breakdown = 'All'")[0]
    assert got["with_legs"] == 0 and got["proxy_median_s"] is None and got["coverage_pct"] == 0
    assert "not in the input" in got["note"]


def test_legs_out_of_order_are_quarantined(store, tmp_path):
    bad = sr(1, csp_sent_at=at("10:00:01.000"), chf_reached_at=at("10:00:00.500"), device_answered_at="",
             csp_returned_at="")  # fmt: skip
    res = load_rows(store, tmp_path, "service_requests", [bad])
    assert res.quarantined == 1 and "legs of the journey are out of order" in next(iter(res.reasons))
