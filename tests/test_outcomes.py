"""Golden tests for attribution, counting rules, outcome measures, CPM4-9 and the PMEL.

Every expectation is worked out by hand in the docstring of its test from the rows built here.
"""

from __future__ import annotations

import datetime as dt

import pytest
from conftest import VERSIONS, alert, load_rows, overridden, sr

from opmetrics.engine import pmel
from opmetrics.engine.backends import SCRATCH, drop_scratch
from opmetrics.engine.store import Store
from opmetrics.measures.incremental import clear, refresh, stored_cubes
from opmetrics.measures.records import (
    Scope,
    classified_requests,
    commissioning_days,
    latest_devices,
)
from opmetrics.measures.rsvp import compute_rsvp
from opmetrics.measures.run import compute

D1 = "00-DB-00-00-00-00-00-01"
D2 = "00-DB-00-00-00-00-00-02"
D3 = "00-DB-00-00-00-00-00-03"
D4 = "00-DB-00-00-00-00-00-04"
AS_OF = dt.datetime(2026, 11, 1, 0, 0)


def device(dev: str, **kw):
    row = {
        "device_id": dev,
        "extracted_at": "2026-10-31T12:00:00Z",
        "device_type": "ESME",
        "smets": "2",
        "region": "North",
        "party_id": "SUP-A",
        "ch_id": "",
        "installed_at": "2026-10-05T09:00:00Z",
        "commissioned_at": "2026-10-05T09:30:00Z",
        "status": "commissioned",
        "firmware_version": "1.0",
        "last_communicated_at": "2026-10-30T00:00:00Z",
    }
    return overridden(row, kw)


def outcome(store, measure, breakdown="all", key1="All", key2=""):
    rows = store.rows(
        "SELECT * FROM outcomes WHERE measure = ? AND breakdown = ? AND key1 = ? AND key2 = ?",
        [measure, breakdown, key1, key2],
    )
    assert len(rows) == 1, (measure, breakdown, key1, rows)
    return rows[0]


def cpm(store, cid, key="all", segment="All"):
    rows = store.rows("SELECT * FROM cpm WHERE cpm = ? AND key = ? AND segment = ?", [cid, key, segment])
    assert len(rows) == 1, (cid, key, segment, rows)
    return rows[0]


def t(day: int, hh: int, mm: int = 0, ss: float = 0) -> str:
    return f"2026-10-{day:02d}T{hh:02d}:{mm:02d}:{ss:06.3f}Z"


@pytest.mark.parametrize("version", list(VERSIONS))
def test_attribution_ic_cos_tariff_and_pairs(compute_with, store, tmp_path, meths, version):
    """D1 commissioned 5 Oct 10:30 BST (09:30Z): its 8.1.1 and 1.1.1 of 5 Oct are I&C; its 1.1.1
    of 6 Oct is not (the day after), and there is no 6.23 that day, so it is a tariff update.
    D2 gets a 6.23 on 7 Oct from SUP-A, then a 1.1.1 and a 6.8 the same day from SUP-A (CoS) and
    a 1.1.1 from SUP-B the same day (not the gaining party: tariff update).
    D3 gets 6.15.2 + 6.17 the same day (a pair), and a lone 6.15.2 the next day (unpaired).
    D4 gets a 6.23 whose report status is not counted (1), then a 1.1.1 the same day from the
    same party: an excluded 6.23 anchors nothing, so that is a tariff update.
    I&C = {8.1.1, 1.1.1 (5 Oct)}: 2. CoS = {6.23, 1.1.1, 6.8}: 3. Tariff = {1.1.1 6 Oct, SUP-B
    1.1.1, D4's 1.1.1}: 3. Security (2026.4, pairs on one UK day) = the pair: 2 of 3 credential
    requests; SEC1 paired 6.15.2 1 of 2. 2027.1 pairs within the 6.17's TRT (a day): the next
    day's 6.15.2 is 23 h after the 6.17, so all 3 and SEC1 2 of 2. The same again when the days
    are re-reduced on their own (no classified copy).
    """
    meth = meths[version]
    assert load_rows(store, tmp_path, "devices", [device(D1)]).quarantined == 0
    reqs = [
        sr(1, srv="8.1.1", received_at=t(5, 9, 40), responded_at=t(5, 9, 40, 2)),
        sr(2, srv="1.1.1", received_at=t(5, 9, 50), responded_at=t(5, 9, 50, 2)),
        sr(3, srv="1.1.1", received_at=t(6, 9, 50), responded_at=t(6, 9, 50, 2)),
        sr(4, srv="6.23", device_id=D2, received_at=t(7, 1), responded_at=t(7, 1, 0, 3)),
        sr(5, srv="1.1.1", device_id=D2, received_at=t(7, 9), responded_at=t(7, 9, 0, 3)),
        sr(6, srv="6.8", device_id=D2, received_at=t(7, 9, 5), responded_at=t(7, 9, 5, 3)),
        sr(7, srv="1.1.1", device_id=D2, party_id="SUP-B", received_at=t(7, 9), responded_at=t(7, 9, 0, 3)),
        sr(8, srv="6.15.2", device_id=D3, received_at=t(8, 9), responded_at=t(8, 9, 0, 3)),
        sr(9, srv="6.17", device_id=D3, received_at=t(8, 10), responded_at=t(8, 10, 0, 3)),
        sr(10, srv="6.15.2", device_id=D3, received_at=t(9, 9), responded_at=t(9, 9, 0, 3)),
        sr(11, srv="6.23", device_id=D4, received_at=t(9, 1), responded_at=t(9, 1, 0, 3), report_status="1"),
        sr(12, srv="1.1.1", device_id=D4, received_at=t(9, 9), responded_at=t(9, 9, 0, 3)),
    ]
    assert load_rows(store, tmp_path, "service_requests", reqs).quarantined == 0
    compute_with(store, meth, "2026-10", as_of=AS_OF)
    vol = {
        r["key"]: r["volume"]
        for r in store.rows(
            "SELECT key, volume FROM rsvp WHERE scope='process' AND rate='month' AND segment='All'"
        )
    }
    assert vol["install_commission"] == 2
    assert vol["change_of_supplier"] == 3
    assert vol["tariff_updates"] == 3
    assert vol["security_key_management"] == (2 if version == "2026.4" else 3)
    paired = outcome(store, "SEC1.pairs", "srv", "6.15.2")
    assert (paired["numerator"], paired["denominator"]) == ((1, 2) if version == "2026.4" else (2, 2))
    clear(store)
    s = Scope(store.ibis(), meth, "2026-10", AS_OF, materialise=True, scratch=True)
    assert len(refresh(store, s, "again").reduced) == 5  # every day with requests, reduced alone
    again = {
        r["key"]: r["volume"]
        for r in compute_rsvp(s, stored_cubes(store)).to_pylist()
        if (r["scope"], r["rate"], r["segment"]) == ("process", "month", "All")
    }
    s.release()
    assert again == vol


@pytest.mark.parametrize("version", list(VERSIONS))
def test_party_resends_count_each_and_attempt_table(compute_with, store, tmp_path, meths, version):
    """003: 6 sends of a top-up to D1, success on the 2nd = 1 success + 5 failures ... here the
    sends are E21, I0 (chain 1 ends in success); then a new chain E21, E21, E21, I0 to D1 (the
    4th attempt wins: "later"); D2: one I0 (1st); D3: E20 then nothing (never).
    PP1 (a top-up delivered): volume 8, failures 5 (E21, E21, E21, E21, E20) under both
    versions. RSVP: 5 failures in 2026.4; none in 2027.1, where every send got a response.
    Chains: 4: 1st 1, 2nd 1, later 1, never 1.
    """
    meth = meths[version]
    codes = [("E21", 0), ("I0", 5), ("E21", 60), ("E21", 65), ("E21", 70), ("I0", 75)]
    reqs = [
        sr(i + 1, received_at=t(10, 18, m), responded_at=t(10, 18, m, 2), response_code=c)
        for i, (c, m) in enumerate(codes)
    ]
    reqs.append(sr(20, device_id=D2, received_at=t(10, 19), responded_at=t(10, 19, 0, 2)))
    reqs.append(
        sr(21, device_id=D3, received_at=t(10, 19), responded_at=t(10, 19, 0, 2), response_code="E20")
    )
    # minutes 60-75 overflow the hour: rewrite them as 19:00-19:15
    for r in reqs:
        for k in ("received_at", "responded_at"):
            hh, mm = int(r[k][11:13]), int(r[k][14:16])
            if mm >= 60:
                r[k] = r[k][:11] + f"{hh + 1:02d}:{mm - 60:02d}" + r[k][16:]
    assert load_rows(store, tmp_path, "service_requests", reqs).quarantined == 0
    compute_with(store, meth, "2026-10", as_of=AS_OF)
    r = store.rows(
        "SELECT volume, failures FROM rsvp WHERE scope='srv' AND key='2.2' AND rate='month' AND segment='All'"
    )
    assert (r[0]["volume"], r[0]["failures"]) == (8, 5 if version == "2026.4" else 0)
    pp1 = store.rows("SELECT numerator, denominator FROM outcomes WHERE measure='PP1' AND breakdown='all'")
    assert [(x["numerator"], x["denominator"]) for x in pp1] == [(3, 8)]
    got = {
        x["key1"]: x["numerator"] for x in store.rows("SELECT * FROM outcomes WHERE measure='PP1.attempts'")
    }
    assert got == {"1st attempt": 1, "2nd attempt": 1, "later attempt": 1, "never": 1}
    # ATT1 buckets the same four chains under the process of their first send (all prepayment)
    att1 = {
        (x["breakdown"], x["key1"]): (x["numerator"], x["denominator"])
        for x in store.rows("SELECT * FROM outcomes WHERE measure='ATT1'")
    }
    assert {k: v for k, v in att1.items() if v[1]} == {
        ("prepayment", b): (1, 4) for b in ("1st attempt", "2nd attempt", "later attempt", "never")
    }


def test_counting_rules_switched(compute_with, engine, store, tmp_path, meth):
    """Same kind of data with both switches flipped. D1: E21 then I0 (one chain, success);
    D2: I0 with dsp_attempts 3. Resends collapsed: 2 requests counted (D1's chain at its last
    send, successful; D2), failures 0 ... but each DSP attempt counts: D2 adds 2 failed
    attempts: volume 2 + 2 = 4, failures 2.
    """
    reqs = [
        sr(1, received_at=t(10, 18), responded_at=t(10, 18, 0, 2), response_code="E21"),
        sr(2, received_at=t(10, 18, 5), responded_at=t(10, 18, 5, 2)),
        sr(3, device_id=D2, received_at=t(10, 19), responded_at=t(10, 19, 0, 9), dsp_attempts=3),
    ]
    assert load_rows(store, tmp_path, "service_requests", reqs).quarantined == 0
    counting = meth.counting.model_copy(
        update={"dsp_retries_count_once": False, "party_retries_count_separately": False}
    )
    m2 = meth.model_copy(update={"counting": counting})
    compute_with(store, m2, "2026-10", as_of=AS_OF)
    r = store.rows(
        "SELECT volume, failures FROM rsvp WHERE scope='srv' AND key='2.2' AND rate='month' AND segment='All'"
    )
    assert (r[0]["volume"], r[0]["failures"]) == (4, 2)


def test_cos1_overturned_failure_and_failure_codes(compute_with, store, tmp_path, meth):
    """6.23s: D1 I0 (ok); D2 E21 but SUP-A's 1.1.1 to D2 answered I0 later that day (overturned:
    ok); D3 E20 and nothing after (fail); D1 again E4 (outside DCC control: excluded, but listed
    in the failure codes). CoS1 = 2 of 3; failure codes: E21 1, E20 1, E4 1.
    """
    reqs = [
        sr(1, srv="6.23", received_at=t(12, 1), responded_at=t(12, 1, 0, 3)),
        sr(
            2,
            srv="6.23",
            device_id=D2,
            received_at=t(12, 1),
            responded_at=t(12, 1, 0, 40),
            response_code="E21",
        ),
        sr(3, srv="1.1.1", device_id=D2, received_at=t(12, 9), responded_at=t(12, 9, 0, 3)),
        sr(
            4,
            srv="6.23",
            device_id=D3,
            received_at=t(12, 1),
            responded_at=t(12, 1, 0, 40),
            response_code="E20",
        ),
        sr(
            5,
            srv="6.23",
            received_at=t(13, 1),
            responded_at=t(13, 1, 0, 1),
            response_code="E4",
            report_status=8,
        ),
    ]
    assert load_rows(store, tmp_path, "service_requests", reqs).quarantined == 0
    compute_with(store, meth, "2026-10", as_of=AS_OF)
    r = outcome(store, "CoS1")
    assert (r["numerator"], r["denominator"]) == (2, 3)
    assert r["value"] == pytest.approx(200 / 3)
    codes = {
        x["key1"]: x["numerator"]
        for x in store.rows("SELECT * FROM outcomes WHERE measure='CoS1.failure_codes'")
    }
    assert codes == {"E21": 1, "E20": 1, "E4": 1}


def test_df2_sla_elapsed_and_in_progress(compute_with, store, tmp_path, meth):
    """11.1 acknowledged (I99) on SMETS2 devices, report time 1 Nov 00:00Z, SLA 5 days:
    D1 on 2 Oct, 8F72 on 3 Oct: verified. D2 on 2 Oct, 8F1C on 4 Oct: failed. D3 on 2 Oct, no
    alert, SLA ended 7 Oct: no alert after SLA. D1 on 30 Oct, no alert yet, SLA ends 4 Nov: in
    progress. Decided 3: verified 1/3; in progress 1 (not in the percentages).
    """

    def ack(n: int, day: int, **kw):
        """An acknowledged (I99) 11.1 received at 09:00Z on `day`, answered 2 s later."""
        at, resp = t(day, 9), t(day, 9, 0, 2)
        return sr(
            n, srv="11.1", critical="true", received_at=at, responded_at=resp, response_code="I99", **kw
        )

    reqs = [ack(1, 2), ack(2, 2, device_id=D2), ack(3, 2, device_id=D3), ack(4, 30)]
    alerts = [
        alert("w1", alert_code="8F72", raised_at=t(3, 9), delivered_at=t(3, 9, 0, 1)),
        alert("w2", alert_code="8F1C", device_id=D2, raised_at=t(4, 9), delivered_at=t(4, 9, 0, 1)),
    ]
    assert load_rows(store, tmp_path, "service_requests", reqs).quarantined == 0
    assert load_rows(store, tmp_path, "alerts", alerts).quarantined == 0
    compute_with(store, meth, "2026-10", as_of=AS_OF)
    got = {
        x["key1"]: (x["numerator"], x["denominator"])
        for x in store.rows("SELECT * FROM outcomes WHERE measure='DF2'")
    }
    assert got["verified (8F72)"] == (1, 3)
    assert got["verification failed (8F1C)"] == (1, 3)
    assert got["no alert after SLA"] == (1, 3)
    assert got["in progress (SLA not elapsed)"] == (1, None)


def test_a1_storm_suppressed_excluded_and_failures_by_code(compute_with, store, tmp_path, meth):
    """a1 5 s ok; a2 70 s late (8F35); a3 undelivered (AD1); a4 suppressed AD1 (excluded even though
    late). A1 = 1 of 3; failures by code: 8F35 1, AD1 1 (never delivered)."""
    alerts = [
        alert("a1", delivered_at="2026-10-05T12:00:05Z"),
        alert("a2", delivered_at="2026-10-05T12:01:10Z"),
        alert("a3", alert_code="AD1", kind="dcc", delivered_at=None),
        alert("a4", alert_code="AD1", kind="dcc", delivered_at="2026-10-05T13:00:00Z", suppressed="true"),
    ]
    assert load_rows(store, tmp_path, "service_requests", [sr(1)]).quarantined == 0
    assert load_rows(store, tmp_path, "alerts", alerts).quarantined == 0
    compute_with(store, meth, "2026-10", as_of=AS_OF)
    r = outcome(store, "A1")
    assert (r["numerator"], r["denominator"]) == (1, 3)
    codes = {
        x["key1"]: x["numerator"]
        for x in store.rows("SELECT * FROM outcomes WHERE measure='A1.failures_by_code'")
    }
    assert codes == {"8F35": 1, "AD1": 1}


def test_b1_non_communicating_excluded_and_reported(compute_with, store, tmp_path, meth):
    """DSP-scheduled 4.6.1 reads: D1 (heard from 30 Oct) answered after 2 h: within 24 h; D2
    (last heard 1 Aug: silent > 60 days on 10 Oct) no response: excluded and reported; D3 not in
    the devices input: treated as communicating, answered after 25 h: late. B1 reads = 1 of 2;
    non-communicating = 1 request."""
    devs = [device(D1), device(D2, last_communicated_at="2026-08-01T00:00:00Z")]
    assert load_rows(store, tmp_path, "devices", devs).quarantined == 0
    reqs = [
        sr(
            1, srv="4.6.1", mode="dcc-scheduled", report_status=6, received_at=t(10, 1), responded_at=t(10, 3)
        ),
        sr(
            2,
            srv="4.6.1",
            mode="dcc-scheduled",
            device_id=D2,
            report_status=34,
            received_at=t(10, 1),
            responded_at=None,
            response_code=None,
        ),
        sr(
            3,
            srv="4.6.1",
            mode="dcc-scheduled",
            device_id=D3,
            report_status=6,
            received_at=t(10, 1),
            responded_at=t(11, 2),
        ),
    ]
    assert load_rows(store, tmp_path, "service_requests", reqs).quarantined == 0
    compute_with(store, meth, "2026-10", as_of=AS_OF)
    r = outcome(store, "B1.scheduled_reads")
    assert (r["numerator"], r["denominator"]) == (1, 2)
    assert outcome(store, "B1.non_communicating")["numerator"] == 1


def test_incident_cpms_availability_no_events_and_missing_input(compute_with, store, tmp_path, meth):
    """Incidents closed in October, DCC responsible (targets: Cat 2 8 h, Cat 3 24 h, initial
    response Cat 3 60 min): i1 Cat 2 resolved in 7 h (met); i2 Cat 3 resolved in 30 h (missed),
    assigned after 20 min (met); i3 Cat 3 resolved in 2 h (met), assigned after 90 min (missed);
    i4 Cat 4 closed in November (not counted); i5 Cat 1 not DCC responsible (not counted).
    CPM4 = 1/1; CPM5 Cat 3 = 1/2, Cat 4 = No Events; CPM5A = 1/2.
    CPM6: SSI down 60 min on Thursday 8 Oct 10:00-11:00 BST (core band). Core minutes in October
    2026 (22 weekdays x 720 + 5 Saturdays x 240 = 17,040); SSI core = 16,980 / 17,040.
    CPM9 has no dcc_assessments loaded: missing input.
    """
    inc = [
        {
            "incident_id": "i1",
            "category": "2",
            "raised_at": t(3, 8),
            "resolved_at": t(3, 15),
            "closed_at": t(4, 8),
        },
        {
            "incident_id": "i2",
            "category": "3",
            "raised_at": t(5, 8),
            "resolved_at": t(6, 14),
            "closed_at": t(7, 8),
            "assigned_at": t(5, 8, 20),
        },
        {
            "incident_id": "i3",
            "category": "3",
            "raised_at": t(9, 8),
            "resolved_at": t(9, 10),
            "closed_at": t(9, 12),
            "assigned_at": t(9, 9, 30),
        },
        {
            "incident_id": "i4",
            "category": "4",
            "raised_at": t(30, 8),
            "resolved_at": t(30, 10),
            "closed_at": "2026-11-02T10:00:00Z",
        },
        {
            "incident_id": "i5",
            "category": "1",
            "raised_at": t(3, 8),
            "resolved_at": t(3, 9),
            "closed_at": t(3, 10),
            "dcc_responsible": "false",
        },
    ]
    base = {
        "dcc_responsible": "true",
        "smets": "",
        "region": "",
        "assigned_at": "",
        "services": "",
        "summary": "",
        "incident_type": "",
    }
    inc = [{**base, **{k: v for k, v in i.items()}} for i in inc]
    for i in inc:
        if not i["assigned_at"]:
            i["assigned_at"] = i["raised_at"]
    cols = [
        "incident_id",
        "category",
        "dcc_responsible",
        "smets",
        "region",
        "raised_at",
        "assigned_at",
        "resolved_at",
        "closed_at",
        "services",
        "summary",
        "incident_type",
    ]
    assert load_rows(store, tmp_path, "incidents", [{c: i[c] for c in cols} for i in inc]).quarantined == 0
    out = [
        {
            "outage_id": "o1",
            "service": "Self-Service Interface",
            "subsystem": "web",
            "region": "",
            "start_at": t(8, 9),
            "end_at": t(8, 10),
            "planned": "false",
            "incident_id": "",
        }
    ]
    assert load_rows(store, tmp_path, "outages", out).quarantined == 0
    assert load_rows(store, tmp_path, "service_requests", [sr(1)]).quarantined == 0
    compute_with(store, meth, "2026-10", as_of=AS_OF)
    assert (cpm(store, "CPM4", "Cat 1-2")["numerator"], cpm(store, "CPM4", "Cat 1-2")["denominator"]) == (
        1,
        1,
    )
    c3 = cpm(store, "CPM5", "Cat 3")
    assert (c3["numerator"], c3["denominator"], c3["status"]) == (1, 2, "below minimum")
    assert cpm(store, "CPM5", "Cat 4")["status"] == "No Events"
    c5a = cpm(store, "CPM5A", "Cat 3-4-5")
    assert (c5a["numerator"], c5a["denominator"]) == (1, 2)
    ssi = cpm(store, "CPM6", "Self-Service Interface / core", "All")
    assert (ssi["numerator"], ssi["denominator"]) == (16_980, 17_040)
    other = cpm(store, "CPM6", "Self-Service Interface / other", "All")
    assert other["numerator"] == other["denominator"]
    c9 = cpm(store, "CPM9")
    assert c9["status"] == "missing input" and "dcc_assessments" in c9["note"]
    assert outcome(store, "CHF1")["status"] == "missing input"


def test_pmel_excludes_records_and_is_append_only(compute_with, store, tmp_path, meth):
    """PMEL-1 excludes North requests 5 Oct 10:00-10:30Z: r1 (10:00) and r2 (10:10) go; r3 (11:00)
    stays. Volume 1 with the exception, 3 after it is withdrawn. A changed entry is detected."""
    reqs = [
        sr(1, received_at=t(5, 10), responded_at=t(5, 10, 0, 2)),
        sr(2, received_at=t(5, 10, 10), responded_at=t(5, 10, 10, 2)),
        sr(3, received_at=t(5, 11), responded_at=t(5, 11, 0, 2)),
    ]
    assert load_rows(store, tmp_path, "service_requests", reqs).quarantined == 0
    pmel.add(
        store,
        exception_id="PMEL-1",
        reason="CSP North test window",
        recorded_by="analyst",
        applies_to="service_requests",
        window_start=t(5, 10),
        window_end=t(5, 10, 30),
        region="North",
    )
    with pytest.raises(pmel.PmelError, match="append-only"):
        pmel.add(
            store, exception_id="PMEL-1", reason="x", recorded_by="y", applies_to="alerts", region="North"
        )
    with pytest.raises(pmel.PmelError, match="must be scoped"):
        pmel.add(store, exception_id="PMEL-2", reason="x", recorded_by="y", applies_to="alerts")
    info = compute_with(store, meth, "2026-10", as_of=AS_OF)
    assert info.pmel_applied == "PMEL-1"
    vol = store.rows(
        "SELECT volume FROM rsvp WHERE scope='srv' AND key='2.2' AND rate='month' AND segment='All'"
    )
    assert vol[0]["volume"] == 1
    s = Scope(store.ibis(), meth, "2026-10", AS_OF, pmel.active(store))
    c = classified_requests(s)
    rules = {r["request_id"][-1]: r["rule"] for r in c.select("request_id", "rule").to_pyarrow().to_pylist()}
    assert rules["1"].startswith("excluded: PMEL-1") and rules["3"].startswith("included")
    pmel.withdraw(store, "PMEL-1", "window closed", "analyst")
    compute_with(store, meth, "2026-10", as_of=AS_OF)
    assert (
        store.rows(
            "SELECT volume FROM rsvp WHERE scope='srv' AND key='2.2' AND rate='month' AND segment='All'"
        )[0]["volume"]
        == 3
    )
    store.con.execute("UPDATE pmel SET reason = 'edited' WHERE entry_no = 1")
    with pytest.raises(pmel.PmelError, match="altered"):
        pmel.verify(store)


def test_forget_drops_one_cached_table_and_keeps_the_rest(store, meth):
    """A measure's own temporary table (ATT1's chains) is dropped when the measure is done;
    the shared ones stay until the run ends, and asking again builds the table anew."""
    s = Scope(store.ibis(), meth, "2026-10", AS_OF, materialise=True)

    def temp_tables() -> set[str]:
        rows = store.con.execute("SELECT table_name FROM duckdb_tables() WHERE temporary").fetchall()
        return {r[0].split("_")[2] for r in rows}

    s.cached("shared", lambda: s.con.table("service_requests"))
    s.cached("mine", lambda: s.con.table("service_requests"))
    assert temp_tables() == {"shared", "mine"}
    s.forget("mine")
    assert temp_tables() == {"shared"}
    s.forget("mine")  # a second forget is harmless
    s.cached("mine", lambda: s.con.table("service_requests"))
    assert temp_tables() == {"shared", "mine"}
    s.release()
    assert temp_tables() == set()


def test_scratch_tables_live_in_the_database_until_released_and_leftovers_are_dropped(store, meth, tmp_path):
    """A scratch Scope keeps its cached tables as ordinary (compressed) tables of the store,
    drops them on release, and a run's leftovers (a killed compute) are dropped by name."""
    load_rows(store, tmp_path, "service_requests", [sr(i) for i in range(5)])
    s = Scope(store.ibis(), meth, "2026-10", AS_OF, materialise=True, scratch=True)

    def scratch() -> dict[str, bool]:
        rows = store.con.execute("SELECT table_name, temporary FROM duckdb_tables()").fetchall()
        return {name: temp for name, temp in rows if name.startswith(SCRATCH)}

    t = s.cached("shared", lambda: s.con.table("service_requests"))
    assert list(scratch().values()) == [False]  # one table, not a TEMP one
    assert t.count().execute() == 5
    s.forget("shared")
    assert scratch() == {}
    s.cached("shared", lambda: s.con.table("service_requests"))
    s.release()
    assert scratch() == {}
    store.con.execute(f"CREATE TABLE {SCRATCH}left_by_a_killed_run AS SELECT 1 AS x")
    assert drop_scratch(store.con) == 1
    assert scratch() == {}
    assert store.count("service_requests") == 5  # only scratch tables go


@pytest.mark.parametrize("materialise", [True, False])
def test_latest_extract_decides_the_commissioning_day_when_a_device_has_several(
    store, tmp_path, meth, materialise
):
    """D1's first extract says commissioned 5 October, its later one (a correction) 28
    September: only the later counts, so D1 has no commissioning day in October. D2 was
    commissioned in September by its first extract and 12 October by its later one. D3 has one
    extract; an extract taken after the report time is ignored."""
    rows = [
        device(D1, extracted_at="2026-10-10T12:00:00Z", commissioned_at="2026-10-05T09:30:00Z"),
        device(D1, extracted_at="2026-10-31T12:00:00Z", commissioned_at="2026-09-28T09:30:00Z"),
        device(D2, extracted_at="2026-10-10T12:00:00Z", commissioned_at="2026-09-20T09:30:00Z"),
        device(D2, extracted_at="2026-10-31T12:00:00Z", commissioned_at="2026-10-12T23:30:00Z"),
        device(D3, commissioned_at="2026-10-07T09:30:00Z"),
        device(D3, extracted_at="2026-11-05T12:00:00Z", commissioned_at="2026-10-09T09:30:00Z"),
    ]
    for r in rows:  # installed just before commissioning (the contract checks the order)
        r["installed_at"] = r["commissioned_at"].replace("09:30", "09:00").replace("23:30", "23:00")
    load_rows(store, tmp_path, "devices", rows)
    assert store.count("quarantine") == 0
    s = Scope(store.ibis(), meth, "2026-10", AS_OF, materialise=materialise, scratch=materialise)
    latest = {r["device_id"]: r["commissioned_at"] for r in latest_devices(s).to_pyarrow().to_pylist()}
    assert latest == {
        D1: dt.datetime(2026, 9, 28, 9, 30),
        D2: dt.datetime(2026, 10, 12, 23, 30),
        D3: dt.datetime(2026, 10, 7, 9, 30),
    }
    days = {r["device_id"]: r["comm_day"] for r in commissioning_days(s).to_pyarrow().to_pylist()}
    # 23:30 UTC on 12 October is 00:30 on 13 October in the UK (BST)
    assert days == {D2: dt.date(2026, 10, 13), D3: dt.date(2026, 10, 7)}
    s.release()
    # Re-reducing some days: only the devices commissioned on those days.
    for day, want in [
        (dt.date(2026, 10, 7), {D3}),
        (dt.date(2026, 10, 12), set()),
        (dt.date(2026, 10, 13), {D2}),
    ]:
        one = Scope(store.ibis(), meth, "2026-10", AS_OF, materialise=materialise, days=(day,))
        assert {r["device_id"] for r in commissioning_days(one).to_pyarrow().to_pylist()} == want
        one.release()


@pytest.mark.parametrize("materialise", [True, False])
def test_commissioning_days_from_one_extract(store, tmp_path, meth, materialise):
    """Every device in one extract (taken at one time, as a monthly extract is): D1 was
    commissioned on 5 October, D2 in September, D3 at 23:30 UTC on 30 October (the same day in
    the UK, on GMT again). A run over some days sees only those days' devices."""
    rows = [
        device(D1, commissioned_at="2026-10-05T09:30:00Z"),
        device(D2, commissioned_at="2026-09-20T09:30:00Z"),
        device(D3, commissioned_at="2026-10-30T23:30:00Z"),
    ]
    for r in rows:
        r["installed_at"] = r["commissioned_at"].replace("09:30", "09:00").replace("23:30", "23:00")
    load_rows(store, tmp_path, "devices", rows)
    assert store.count("quarantine") == 0
    for days, want in [
        (None, {D1: dt.date(2026, 10, 5), D3: dt.date(2026, 10, 30)}),
        ((dt.date(2026, 10, 5),), {D1: dt.date(2026, 10, 5)}),
        ((dt.date(2026, 10, 6), dt.date(2026, 10, 30)), {D3: dt.date(2026, 10, 30)}),
    ]:
        s = Scope(store.ibis(), meth, "2026-10", AS_OF, materialise=materialise, days=days)
        got = {r["device_id"]: r["comm_day"] for r in commissioning_days(s).to_pyarrow().to_pylist()}
        assert got == want
        s.release()


def test_success_rows_sums_each_breakdown_from_one_grouping():
    """Six rows (region, SRV, ok): North/2.2 ok, North/2.2 failed, North/1.1.1 ok, South/2.2 ok,
    (no region)/2.2 failed, (no region)/1.1.1 ok. By hand: All 4 of 6; region North 2 of 3,
    South 1 of 1, then the missing region last, 1 of 2; SRV 1.1.1 2 of 2, 2.2 2 of 4; region x
    SRV North 1.1.1 1/1, North 2.2 1/2, South 2.2 1/1, none 1.1.1 1/1, none 2.2 0/1."""
    import ibis
    import pyarrow as pa

    from opmetrics.measures.outcome import success_rows

    rows = [
        ("North", "2.2", True),
        ("North", "2.2", False),
        ("North", "1.1.1", True),
        ("South", "2.2", True),
        (None, "2.2", False),
        (None, "1.1.1", True),
    ]
    t = ibis.memtable(pa.table({k: [r[i] for r in rows] for i, k in enumerate(["region", "srv", "ok"])}))
    by = {"region": ["region"], "srv": ["srv"], "region x srv": ["region", "srv"]}
    got = [
        (r["breakdown"], r["key1"], r["key2"], r["numerator"], r["denominator"])
        for r in success_rows(t, t.ok, by)
    ]
    assert got == [
        ("all", "All", "", 4, 6),
        ("region", "North", "", 2, 3),
        ("region", "South", "", 1, 1),
        ("region", "", "", 1, 2),
        ("srv", "1.1.1", "", 2, 2),
        ("srv", "2.2", "", 2, 4),
        ("region x srv", "North", "1.1.1", 1, 1),
        ("region x srv", "North", "2.2", 1, 2),
        ("region x srv", "South", "2.2", 1, 1),
        ("region x srv", "", "1.1.1", 1, 1),
        ("region x srv", "", "2.2", 0, 1),
    ]
    # An empty input: the overall row alone, nothing to share.
    empty = t.filter(t.srv == "9.9")
    none = success_rows(empty, empty.ok, by)
    assert [(r["numerator"], r["denominator"], r["value"]) for r in none] == [(0, 0, None)]


def test_security_pairs_within_the_6_17_trt_at_its_bound(compute_with, store, tmp_path, meths):
    """2027.1 pairs 6.15.2 and 6.17 within the 6.17's TRT (86,400 s), across midnight too
    (001 l.960 "These SRVs should be seen in pairs"). D1: 6.15.2 at 23:50 UK on 10 Oct, 6.17
    at 00:10 on 11 Oct (a pair; on one UK day it was none). D2: 6.15.2 then 6.17 exactly 86,400 s
    later (a pair). D3: 6.15.2 then 6.17 86,400.001 s later (none). Security: 4 of 6; SEC1
    6.15.2 2 of 3. 2026.4 (one UK day): none of them. The day-by-day store, each day landing
    alone, equals the one-go store: a day's pairs are redone when its neighbour lands."""
    D = "00-DB-00-00-00-00-00-0"
    reqs = [
        sr(1, srv="6.15.2", device_id=D + "1", received_at=t(10, 22, 50), responded_at=t(10, 22, 50, 3)),
        sr(2, srv="6.17", device_id=D + "1", received_at=t(10, 23, 10), responded_at=t(10, 23, 10, 3)),
        sr(3, srv="6.15.2", device_id=D + "2", received_at=t(12, 9), responded_at=t(12, 9, 0, 3)),
        sr(4, srv="6.17", device_id=D + "2", received_at=t(13, 9), responded_at=t(13, 9, 0, 3)),
        sr(5, srv="6.15.2", device_id=D + "3", received_at=t(15, 9), responded_at=t(15, 9, 0, 3)),
        sr(6, srv="6.17", device_id=D + "3", received_at=t(16, 9, 0, 0.001), responded_at=t(16, 9, 0, 3)),
    ]
    assert load_rows(store, tmp_path, "service_requests", reqs).quarantined == 0
    for version, want, sec1 in (("2026.4", 0, (0, 3)), ("2027.1", 4, (2, 3))):
        compute_with(store, meths[version], "2026-10", as_of=AS_OF)
        vol = store.rows(
            "SELECT volume FROM rsvp WHERE scope='process' AND key='security_key_management' "
            "AND rate='month' AND segment='All'"
        )
        assert [r["volume"] for r in vol] == ([want] if want else [])
        paired = outcome(store, "SEC1.pairs", "srv", "6.15.2")
        assert (paired["numerator"], paired["denominator"]) == sec1
    # Day by day, a UK day's requests at a time: the 6.17 of 11 Oct lands after 10 Oct was reduced.
    days = Store(tmp_path / "days.duckdb")
    for i, batch in enumerate(([0], [1], [2, 3, 4, 5])):
        load_rows(days, tmp_path, "service_requests", [reqs[k] for k in batch], name=f"d{i}")
        compute(days, meths["2027.1"], "2026-10", as_of=AS_OF)
    got = days.rows("SELECT * FROM outcomes WHERE measure = 'SEC1.pairs' ORDER BY key1")
    want = store.rows("SELECT * FROM outcomes WHERE measure = 'SEC1.pairs' ORDER BY key1")
    days.close()
    key = ["breakdown", "key1", "numerator", "denominator"]
    assert [[r[k] for k in key] for r in got] == [[r[k] for k in key] for r in want]


def test_install_and_commission_counts_failed_installs(compute_with, store, tmp_path, meths):
    """D1 installed 5 Oct 09:00Z, never commissioned (a failed install); its 8.11 at 09:40Z.
    2027.1 (the install day) counts it in I&C; 2026.4 (the commissioning day,
    001 l.948 "based upon all SRVs being sent on the commissioned date") does not: the failed
    install's SRVs vanished from the process."""
    failed = device(D1, commissioned_at="", status="installed_not_commissioned")
    assert load_rows(store, tmp_path, "devices", [failed]).quarantined == 0
    reqs = [sr(1, srv="8.11", received_at=t(5, 9, 40), responded_at=t(5, 9, 40, 2))]
    assert load_rows(store, tmp_path, "service_requests", reqs).quarantined == 0
    for version, want in (("2026.4", []), ("2027.1", [1])):
        compute_with(store, meths[version], "2026-10", as_of=AS_OF)
        vol = store.rows(
            "SELECT volume FROM rsvp WHERE scope='process' AND key='install_commission' "
            "AND rate='month' AND segment='All'"
        )
        assert [r["volume"] for r in vol] == want


def test_dno_post_ic_is_the_network_operators_requests(compute_with, store, tmp_path, meths):
    """001 l.966 "there are markers within DCC data": the DUIS User Role. A 6.5 sent by an
    Electricity Distributor (ED) and a 6.22 by a Gas Transporter (GT) are DNO post-I&C in
    2027.1; a 6.22 sent by an Import Supplier (IS) is not. 2026.4 counted all three."""
    reqs = [
        sr(1, srv="6.5", user_role="ED", received_at=t(5, 9), responded_at=t(5, 9, 0, 2)),
        sr(2, srv="6.22", user_role="GT", received_at=t(5, 10), responded_at=t(5, 10, 0, 2)),
        sr(3, srv="6.22", user_role="IS", received_at=t(5, 11), responded_at=t(5, 11, 0, 2)),
    ]
    assert load_rows(store, tmp_path, "service_requests", reqs).quarantined == 0
    for version, want in (("2026.4", 3), ("2027.1", 2)):
        compute_with(store, meths[version], "2026-10", as_of=AS_OF)
        vol = store.rows(
            "SELECT volume FROM rsvp WHERE scope='process' AND key='dno_post_ic' "
            "AND rate='month' AND segment='All'"
        )
        assert [r["volume"] for r in vol] == [want]
