"""Golden tests for the catalogue measures not covered in test_outcomes.py: install, CoS,
billing, meter reads, prepayment, firmware, outage impact and timeliness. Each expectation is
worked out by hand from the rows built here, in the docstring of its test."""

from __future__ import annotations

import pytest
from conftest import VERSIONS, alert, load_rows, sr
from test_operations import incident, row
from test_outcomes import AS_OF, D1, D2, D3, device, outcome, t

C1, C2, C3 = "00-DB-00-00-00-00-0C-01", "00-DB-00-00-00-00-0C-02", "00-DB-00-00-00-00-0C-03"
E1, G1 = "00-DB-00-00-00-00-0E-01", "00-DB-00-00-00-00-06-01"


def share(r) -> tuple[int, int]:
    return r["numerator"], r["denominator"]


@pytest.mark.parametrize("version", list(VERSIONS))
def test_prepayment_billing_meter_reads_and_device_firmware(compute_with, store, tmp_path, meths, version):
    """Top-ups (2.2), all on 5 Oct: p1 D1 North ESME ok 10:00; p2 D1 E21 11:00; p3 D1 ok 11:05
    (a resend after p2's failure); p4 D2 South GSME no response 12:00; p5 D2 E4 (outside DCC
    control: excluded). PP1 = 2 of 4 (North 2/3, South 0/1; ESME 2/3, GSME 0/1).
    PP1.volumes: 2 successful, 2 failed, 2 devices. Failure rate 50 % > 5 %: reasons required,
    E21 1 of 2 and no response 1 of 2. Attempt chains: [p1] 1st, [p2, p3] 2nd, [p4] never.
    PP2: 1.6 ok, 2.1 E20 -> 1 of 2. Local credit (810E): 2 ESME North, 1 GSME South = 3.
    Devices: D1 ESME North heard 30 Oct; D2 GSME South heard 1 Aug, silent since before 2 Sep
    (60 days before 1 Nov): PP1.non_communicating ESME North 0/1, GSME South 1/1.
    B2 (4.6.1 on demand): North ok, North E21, South ok -> 2/3, North 1/2, South 1/1.
    B1.schedules (5.1): ok, E20 -> 1/2. B1.categories over 5.1 + the reads: success code 3
    (two 4.6.1, one 5.1), communications failure code 2 -> 60 % and 40 % of 5 (2027.1: the
    seed's four categories, "response received" with a success code 3, with another code 2).
    DF1 (11.1): North ESME I99 (acknowledged: success), South GSME E21 -> 1/2, 2 devices.
    DF3 (11.3, SMETS2): I0 ok, E4 excluded, E51: in 2026.4 another code, not a failure -> 2/2;
    in 2027.1 not a success code of 11.3, a failure -> 1/2."""
    meth = meths[version]
    south = dict(device_id=D2, region="South", device_type="GSME")
    reqs = [
        sr(1, received_at=t(5, 10), responded_at=t(5, 10, 0, 2)),
        sr(2, received_at=t(5, 11), responded_at=t(5, 11, 0, 40), response_code="E21"),
        sr(3, received_at=t(5, 11, 5), responded_at=t(5, 11, 5, 2)),
        sr(4, received_at=t(5, 12), responded_at=None, response_code=None, **south),
        sr(5, received_at=t(5, 12, 30), responded_at=t(5, 12, 30, 1), response_code="E4", **south),
        sr(6, srv="1.6", received_at=t(6, 10), responded_at=t(6, 10, 0, 2)),
        sr(7, srv="2.1", received_at=t(6, 11), responded_at=t(6, 11, 0, 2), response_code="E20"),
        sr(8, srv="4.6.1", received_at=t(7, 10), responded_at=t(7, 10, 0, 2)),
        sr(9, srv="4.6.1", received_at=t(7, 11), responded_at=t(7, 11, 0, 2), response_code="E21"),
        sr(10, srv="4.6.1", received_at=t(7, 12), responded_at=t(7, 12, 0, 2), **south),
        sr(11, srv="5.1", received_at=t(8, 10), responded_at=t(8, 10, 0, 2)),
        sr(12, srv="5.1", received_at=t(8, 11), responded_at=t(8, 11, 0, 2), response_code="E20"),
        sr(13, srv="11.1", received_at=t(9, 10), responded_at=t(9, 10, 0, 2), response_code="I99"),
        sr(14, srv="11.1", received_at=t(9, 11), responded_at=t(9, 11, 0, 2), response_code="E21", **south),
        sr(15, srv="11.3", received_at=t(10, 10), responded_at=t(10, 10, 0, 2)),
        sr(16, srv="11.3", received_at=t(10, 11), responded_at=t(10, 11, 0, 2), response_code="E51"),
        sr(17, srv="11.3", received_at=t(10, 12), responded_at=t(10, 12, 0, 2), response_code="E4"),
    ]
    assert load_rows(store, tmp_path, "service_requests", reqs).quarantined == 0
    alerts = [
        alert("a1", alert_code="810E"),
        alert("a2", alert_code="810E", raised_at=t(6, 12), delivered_at=t(6, 12, 0, 1)),
        alert("a3", alert_code="810E", device_id=D2, device_type="GSME", region="South"),
        alert("a4", alert_code="8F35"),
    ]
    assert load_rows(store, tmp_path, "alerts", alerts).quarantined == 0
    devs = [
        device(D1, last_communicated_at="2026-10-30T00:00:00Z"),
        device(D2, device_type="GSME", region="South", last_communicated_at="2026-08-01T00:00:00Z"),
    ]
    assert load_rows(store, tmp_path, "devices", devs).quarantined == 0
    compute_with(store, meth, "2026-10", as_of=AS_OF)

    assert share(outcome(store, "PP1")) == (2, 4)
    assert share(outcome(store, "PP1", "region", "North")) == (2, 3)
    assert share(outcome(store, "PP1", "device_type", "GSME")) == (0, 1)
    assert share(outcome(store, "PP1", "device_type x region", "ESME", "North")) == (2, 3)
    vol = {
        k: outcome(store, "PP1.volumes", "volume", k)["numerator"]
        for k in ("successful", "failed", "unique devices")
    }
    assert vol == {"successful": 2, "failed": 2, "unique devices": 2}
    south_vol = outcome(store, "PP1.volumes", "region", "South", "successful")
    assert (south_vol["numerator"], south_vol["note"]) == (0, "1 failed, 1 devices")
    e21 = outcome(store, "PP1.failure_reasons", "failure reason", "response code E21")
    assert share(e21) == (1, 2) and "reasons required" in e21["note"]
    assert share(outcome(store, "PP1.failure_reasons", "failure reason", "no response")) == (1, 2)
    attempts = {
        b: share(outcome(store, "PP1.attempts", "success on attempt", b))
        for b in ("1st attempt", "2nd attempt", "later attempt", "never")
    }
    assert attempts == {
        "1st attempt": (1, 3),
        "2nd attempt": (1, 3),
        "later attempt": (0, 3),
        "never": (1, 3),
    }
    assert share(outcome(store, "PP2")) == (1, 2)
    assert share(outcome(store, "PP2", "srv", "2.1")) == (0, 1)
    assert outcome(store, "PP1.local_credit")["numerator"] == 3
    assert outcome(store, "PP1.local_credit", "device_type x region", "ESME", "North")["numerator"] == 2
    assert share(outcome(store, "PP1.non_communicating", "device_type x region", "ESME", "North")) == (0, 1)
    assert share(outcome(store, "PP1.non_communicating", "device_type x region", "GSME", "South")) == (1, 1)

    assert share(outcome(store, "B2")) == (2, 3)
    assert share(outcome(store, "B2", "region", "North")) == (1, 2)
    assert share(outcome(store, "B2", "mode", "on-demand")) == (2, 3)
    assert share(outcome(store, "B1.schedules")) == (1, 2)
    ok, failure = (
        ("response: success code", "response: communications failure code")
        if version == "2026.4"
        else ("response received: success code", "response received: other code")
    )
    assert share(outcome(store, "B1.categories", "category", ok)) == (3, 5)
    assert share(outcome(store, "B1.categories", "category", failure)) == (2, 5)

    df1 = outcome(store, "DF1")
    assert share(df1) == (1, 2) and df1["note"].startswith("2 devices")
    assert share(outcome(store, "DF1", "device_type", "ESME")) == (1, 1)
    if version == "2026.4":
        assert share(outcome(store, "DF3")) == (2, 2)
        assert share(outcome(store, "DF3", "response category", "response: other code")) == (1, 1)
    else:
        assert share(outcome(store, "DF3")) == (1, 2)
        assert share(outcome(store, "DF3", "response category", "response received: other code")) == (0, 1)


def test_install_commission_measures_impact_and_timeliness(compute_with, store, tmp_path, meth):
    """Devices (extract 31 Oct): Mon 5 Oct c1 CHF North SUP-A installed 10:20Z, commissioned;
    e1 ESME North SUP-A, commissioned, joined to c1. Mon 12 Oct: c2 CHF North SUP-A installed
    10:15Z, commissioned, no meter joined; c3 CHF North SUP-A not commissioned; g1 GSME South
    SUP-B commissioned. IC1.installs (a hub succeeds with a meter attached,
    001 l.979 "at least one Meter attached"): CHF North 1/3, ESME North 1/1, GSME South 1/1;
    12 Oct CHF 0/2.
    IC1.prediction (same weekday last week): 12 Oct SUP-A 2 of 2; 19 Oct SUP-A 0 of 2;
    5 Oct SUP-A 2 of 0 -> No Events (nothing predicted).
    IC2: 12 Oct 3 installs vs 2 predicted = +50 %, beyond 25 %, with Cat 2 incident i1 open.
    IC1.install_leave: c1 has an 8.14.1, c3 an 8.14.2 on 12 Oct (within 90 days), c2 nothing:
    1/3 each. IC1.RSVP: two 8.11s on c1's commissioning day, 2 s and 10 min (TRT 30 s), and
    one (2 s) on c2's: 1 of 3 failed TRT. TR2: 5 installs on Mondays (4 Mondays in October:
    1.2 per Monday); North 4/5.
    IMP1.installs for i1 (Cat 2, North, 12 Oct 10:00-11:00Z): actual 1 (c2), predicted 1 (c1
    on 5 Oct 10:00-11:00Z; 28 Sep had no installs, so one week used), lost 0.
    IMP1.volumes: 8.11s in the window: 1 on 12 Oct, 1 on 5 Oct -> install_commission 1 vs 1.
    TIME1: due 13 Nov 2026 (10 working days), SEC 4 Dec 2026 (25)."""
    base = dict(extracted_at="2026-10-31T12:00:00Z", smets=2, party_id="SUP-A", status="commissioned")
    devs = [
        row(
            "devices",
            device_id=C1,
            device_type="CHF",
            region="North",
            installed_at=t(5, 10, 20),
            commissioned_at=t(5, 10, 50),
            **base,
        ),
        row(
            "devices",
            device_id=E1,
            device_type="ESME",
            region="North",
            ch_id=C1,
            installed_at=t(5, 10, 25),
            commissioned_at=t(5, 10, 55),
            **base,
        ),
        row(
            "devices",
            device_id=C2,
            device_type="CHF",
            region="North",
            installed_at=t(12, 10, 15),
            commissioned_at=t(12, 10, 45),
            **base,
        ),
        row(
            "devices",
            device_id=C3,
            device_type="CHF",
            region="North",
            installed_at=t(12, 13),
            **{**base, "status": "installed_not_commissioned"},
        ),
        row(
            "devices",
            device_id=G1,
            device_type="GSME",
            region="South",
            installed_at=t(12, 14),
            commissioned_at=t(12, 14, 30),
            **{**base, "party_id": "SUP-B"},
        ),
    ]
    assert load_rows(store, tmp_path, "devices", devs).quarantined == 0
    updates = [
        row(
            "ch_status_updates",
            update_id="u1",
            srv="8.14.1",
            device_id=C1,
            party_id="SUP-A",
            region="North",
            sent_at=t(5, 11),
        ),
        row(
            "ch_status_updates",
            update_id="u3",
            srv="8.14.2",
            device_id=C3,
            party_id="SUP-A",
            region="North",
            sent_at=t(12, 14),
        ),
    ]
    assert load_rows(store, tmp_path, "ch_status_updates", updates).quarantined == 0
    reqs = [
        sr(
            1,
            srv="8.11",
            device_id=C1,
            device_type="CHF",
            received_at=t(5, 10, 30),
            responded_at=t(5, 10, 30, 2),
        ),
        sr(2, srv="8.11", device_id=C1, device_type="CHF", received_at=t(5, 12), responded_at=t(5, 12, 10)),
        sr(
            3,
            srv="8.11",
            device_id=C2,
            device_type="CHF",
            received_at=t(12, 10, 20),
            responded_at=t(12, 10, 20, 2),
        ),
    ]
    assert load_rows(store, tmp_path, "service_requests", reqs).quarantined == 0
    inc = [incident("i1", 2, t(12, 10), t(12, 11), t(12, 12), region="North", smets=2)]
    assert load_rows(store, tmp_path, "incidents", inc).quarantined == 0
    compute_with(store, meth, "2026-10", as_of=AS_OF)

    assert share(outcome(store, "IC1.installs", "device_type x region", "CHF", "North")) == (1, 3)
    assert share(outcome(store, "IC1.installs", "device_type x region", "GSME", "South")) == (1, 1)
    assert share(outcome(store, "IC1.installs", "day x device_type", "2026-10-12", "CHF")) == (0, 2)
    assert share(outcome(store, "IC1.prediction", "day x party", "2026-10-12", "SUP-A")) == (2, 2)
    assert share(outcome(store, "IC1.prediction", "day x party", "2026-10-19", "SUP-A")) == (0, 2)
    # Two 8.11s to C1 on the 5th with no forecast that day: events with nothing to compare with,
    # never "No Events" (issue 32: SUP-A's own installs showed as "No Events" in its edition).
    fifth = outcome(store, "IC1.prediction", "day x party", "2026-10-05", "SUP-A")
    assert (fifth["numerator"], fifth["denominator"], fifth["status"]) == (2, 0, "no baseline")
    ic2 = outcome(store, "IC2", "day", "2026-10-12")
    assert (ic2["numerator"], ic2["denominator"], ic2["value"]) == (3, 2, pytest.approx(50.0))
    assert "Cat 1/2 open: i1" in ic2["note"] and "deviation beyond 25 %" in ic2["note"]
    for cat in (
        "install and commission (8.14.1)",
        "install and leave: awaiting decision (within 90 days)",
        "neither",
    ):
        assert share(outcome(store, "IC1.install_leave", "category", cat)) == (1, 3)
    assert share(outcome(store, "IC1.RSVP", "segment", "North")) == (1, 3)
    mon = outcome(store, "TR2.installs_by_weekday", "weekday", "Mon")
    assert (mon["numerator"], mon["note"]) == (5, "1.2 per Mon")
    assert share(outcome(store, "TR2.installs_by_weekday", "region", "North")) == (4, 5)

    imp = {r["key2"]: r for r in store.rows("SELECT * FROM outcomes WHERE measure = 'IMP1.installs'", [])}
    assert imp["actual installs"]["numerator"] == 1
    assert imp["predicted installs"]["value"] == 1.0 and "1 earlier week" in imp["predicted installs"]["note"]
    assert imp["estimated installs lost"]["value"] == 0.0
    vols = {
        r["key2"]: r["numerator"]
        for r in store.rows(
            "SELECT * FROM outcomes WHERE measure = 'IMP1.volumes' AND key1 = 'install_commission'", []
        )
    }
    assert vols == {"actual requests": 1, "predicted requests": 1}

    assert outcome(store, "TIME1", "date", "due", "2026-11-13")["numerator"] == 10
    assert outcome(store, "TIME1", "date", "SEC H13.4 due", "2026-12-04")["numerator"] == 25


def test_cos_segments_by_party_tr1_missing_input_and_chf2(compute_with, store, tmp_path, meth):
    """6.23s: D1 North ESME SUP-B 6 Oct ok; D2 North GSME SUP-B 6 Oct E21, overturned by a
    successful 1.1.1 from SUP-B to D2 later that day; D3 South ESME SUP-C 7 Oct E20.
    CoS1.segments: ESME North 1/1, GSME North 1/1, ESME South 0/1.
    CoS1.daily_by_party: 6 Oct SUP-B 2/2, 7 Oct SUP-C 0/1.
    TR1 needs registration data: without it, missing input. With r1 (D1, enrolled), r2 (D2,
    enrolled), r3 (not enrolled) effective in October and r4 effective 1 November: industry CoS
    3, of which DCC enrolled 2; attempted CoS 3 devices (D1, D2, D3), successful 2 -> 2/3.
    CH firmware activations: North activated, North failed, South not attempted, South in
    progress -> CHF2 = 1 of 2 (only decided activations count), North 1/2."""
    b = dict(srv="6.23", party_id="SUP-B")
    reqs = [
        sr(1, received_at=t(6, 9), responded_at=t(6, 9, 0, 2), **b),
        sr(
            2,
            received_at=t(6, 9, 30),
            responded_at=t(6, 9, 31),
            response_code="E21",
            device_id=D2,
            device_type="GSME",
            **b,
        ),
        sr(
            3,
            srv="1.1.1",
            party_id="SUP-B",
            device_id=D2,
            device_type="GSME",
            received_at=t(6, 14),
            responded_at=t(6, 14, 0, 3),
        ),
        sr(
            4,
            srv="6.23",
            party_id="SUP-C",
            device_id=D3,
            region="South",
            received_at=t(7, 9),
            responded_at=t(7, 9, 0, 30),
            response_code="E20",
        ),
    ]
    assert load_rows(store, tmp_path, "service_requests", reqs).quarantined == 0
    fw = [
        row(
            "ch_firmware",
            update_id=f"f{i}",
            device_id=D1,
            region=reg,
            image_version="3.1",
            distributed_at=t(3, 2),
            delivery_outcome="delivered",
            delivered_at=t(3, 3),
            activation_outcome=act,
        )
        for i, (reg, act) in enumerate(
            [
                ("North", "activated"),
                ("North", "failed"),
                ("South", "not_attempted"),
                ("South", "in_progress"),
            ]
        )
    ]
    assert load_rows(store, tmp_path, "ch_firmware", fw).quarantined == 0
    compute_with(store, meth, "2026-10", as_of=AS_OF)
    assert share(outcome(store, "CoS1.segments", "device_type x region", "GSME", "North")) == (1, 1)
    assert share(outcome(store, "CoS1.segments", "device_type x region", "ESME", "South")) == (0, 1)
    assert share(outcome(store, "CoS1.daily_by_party", "day x party", "2026-10-06", "SUP-B")) == (2, 2)
    assert share(outcome(store, "CoS1.daily_by_party", "day x party", "2026-10-07", "SUP-C")) == (0, 1)
    tr1 = outcome(store, "TR1.cos_volumes")
    assert tr1["status"] == "missing input" and "no registration_changes data loaded" in tr1["note"]
    assert share(outcome(store, "CHF2")) == (1, 2)
    assert share(outcome(store, "CHF2", "region", "North")) == (1, 2)
    regs = [
        row(
            "registration_changes",
            change_id=f"r{i}",
            mpxn="1234567890123",
            fuel="electricity",
            gaining_party_id="SUP-B",
            effective_at=at,
            dcc_enrolled=enrolled,
            device_id=dev,
        )
        for i, (at, enrolled, dev) in enumerate(
            [
                (t(7, 0), True, D1),
                (t(7, 0), True, D2),
                (t(9, 0), False, None),
                ("2026-11-01T00:30:00Z", True, D3),
            ],
            start=1,
        )
    ]
    assert load_rows(store, tmp_path, "registration_changes", regs).quarantined == 0
    compute_with(store, meth, "2026-10", as_of=AS_OF)
    vols = {
        r["key1"]: r["numerator"]
        for r in store.rows(
            "SELECT * FROM outcomes WHERE measure = 'TR1.cos_volumes' AND breakdown = 'volume'", []
        )
    }
    assert vols == {
        "industry CoS (registration data)": 3,
        "industry CoS, DCC enrolled": 2,
        "attempted CoS (devices sent a 6.23)": 3,
        "successful CoS": 2,
    }
    assert share(outcome(store, "TR1.cos_volumes", "rate", "successful / attempted CoS")) == (2, 3)


def test_fc1_requests_sent_against_each_partys_forecast(compute_with, store, tmp_path, meth):
    """SUP-A forecast 2 and sent 3 (150 %, more than 10 % above); SUP-B forecast 10 and sent 1
    (10 %, more than 10 % below); SUP-C sent 1 with no forecast; SUP-D forecast 4 and sent 4."""
    fc = [
        {"party_id": p, "month_start": "2026-09-30T23:00:00Z", "requests": str(n), "submitted_at": ""}
        for p, n in (("SUP-A", 2), ("SUP-B", 10), ("SUP-D", 4))
    ]
    load_rows(store, tmp_path, "forecasts", fc)
    sent = [("SUP-A", 3), ("SUP-B", 1), ("SUP-C", 1), ("SUP-D", 4)]
    rows, n = [], 0
    for party, k in sent:
        for _ in range(k):
            n += 1
            rows.append(sr(n, party_id=party))
    load_rows(store, tmp_path, "service_requests", rows)
    compute_with(store, meth, "2026-10", as_of=AS_OF)
    got = {r["key1"]: r for r in store.rows("SELECT * FROM outcomes WHERE measure = 'FC1'")}
    assert share(got["SUP-A"]) == (3, 2) and got["SUP-A"]["value"] == pytest.approx(150.0)
    assert got["SUP-A"]["note"] == "more than 10 % above forecast"
    assert share(got["SUP-B"]) == (1, 10) and got["SUP-B"]["note"] == "more than 10 % below forecast"
    assert got["SUP-C"]["key2"] == "no forecast" and got["SUP-C"]["numerator"] == 1
    assert share(got["SUP-D"]) == (4, 4) and got["SUP-D"]["note"] == ""


def test_sp1_csp_test_messages_and_sp2_dsp_share_of_the_trt(compute_with, store, tmp_path, meth):
    """CSP North: 25 s target: 10 s back, 30 s back (late), never back -> 1 of 3; 2 h target:
    1 h, 1 h -> 2 of 2; 22 h target: 23 h (late) -> 0 of 1. Service level = (33.33 + 100 + 0) / 3
    = 44.44 %. SP2: two on-demand top-ups with legs in the North: DSP 0.3 + 0.5 = 0.8 s and
    0.5 + 4.8 = 5.3 s against 30 - 25 = 5 s -> 1 of 2."""
    base = "2026-10-05T10:00:00Z"
    tests = [
        ("A", 25, "2026-10-05T10:00:10Z"), ("B", 25, "2026-10-05T10:00:30Z"), ("C", 25, ""),
        ("D", 7200, "2026-10-05T11:00:00Z"), ("E", 7200, "2026-10-05T11:00:00Z"),
        ("F", 79200, "2026-10-06T09:00:00Z"),
    ]  # fmt: skip
    load_rows(store, tmp_path, "csp_test_messages", [
        {"test_id": i, "provider": "CSP North", "region": "North", "target_s": str(tg), "sent_at": base,
         "returned_at": back} for i, tg, back in tests
    ])  # fmt: skip
    legs = [
        sr(1, received_at="2026-10-05T10:00:00.000Z", csp_sent_at="2026-10-05T10:00:00.300Z",
           chf_reached_at="2026-10-05T10:00:01.000Z", device_answered_at="2026-10-05T10:00:02.000Z",
           csp_returned_at="2026-10-05T10:00:03.000Z", responded_at="2026-10-05T10:00:03.500Z"),
        sr(2, received_at="2026-10-05T11:00:00.000Z", csp_sent_at="2026-10-05T11:00:00.500Z",
           chf_reached_at="2026-10-05T11:00:01.000Z", device_answered_at="2026-10-05T11:00:02.000Z",
           csp_returned_at="2026-10-05T11:00:03.000Z", responded_at="2026-10-05T11:00:07.800Z"),
    ]  # fmt: skip
    load_rows(store, tmp_path, "service_requests", legs)
    compute_with(store, meth, "2026-10", as_of=AS_OF)
    got = {
        (r["breakdown"], r["key1"], r["key2"]): r
        for r in store.rows("SELECT * FROM outcomes WHERE measure = 'SP1'")
    }
    assert share(got[("target", "CSP North", "25 s")]) == (1, 3)
    assert share(got[("target", "CSP North", "7200 s")]) == (2, 2)
    assert share(got[("target", "CSP North", "79200 s")]) == (0, 1)
    level = got[("service level", "CSP North", "average of 3 target(s)")]
    assert level["value"] == pytest.approx((100 / 3 + 100 + 0) / 3)
    sp2 = {r["key1"]: r for r in store.rows("SELECT * FROM outcomes WHERE measure = 'SP2'")}
    assert share(sp2["North"]) == (1, 2) and share(sp2["All"]) == (1, 2)


@pytest.mark.parametrize("version", list(VERSIONS))
def test_b2_counts_on_demand_reads_only(compute_with, store, tmp_path, meths, version):
    """001 l.4218-4219 "Provide a measure of the success of on demand meter reads": an on-demand
    4.6.1 answered I0 and a DCC-scheduled 4.6.1 answered E21. 2027.1's B2 counts the on-demand
    read alone, 1 of 1; 2026.4 counted both, 1 of 2. B1.categories shows each mode's categories."""
    reqs = [
        sr(1, srv="4.6.1", received_at=t(7, 10), responded_at=t(7, 10, 0, 2)),
        sr(2, srv="4.6.1", mode="dcc-scheduled", received_at=t(7, 11), responded_at=t(7, 11, 0, 2),
           response_code="E21"),
    ]  # fmt: skip
    assert load_rows(store, tmp_path, "service_requests", reqs).quarantined == 0
    compute_with(store, meths[version], "2026-10", as_of=AS_OF)
    assert share(outcome(store, "B2")) == ((1, 1) if version == "2027.1" else (1, 2))
    if version == "2027.1":
        other = "response received: other code"
        assert share(outcome(store, "B1.categories", "category x mode", other, "dcc-scheduled")) == (1, 1)
