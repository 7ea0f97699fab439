"""The definitions of methodology 2027.1 at their edges (issue 31), each worked out by hand,
with 2026.4's reading beside where a switch restores it.

Every response code the methodology lists is pinned to its category; a response exactly at the
TRT is on time and 1 ms later is late; a request at UK midnight belongs to the day that starts
there, on both clock-change days.
"""

from __future__ import annotations

import datetime as dt

import pytest
from conftest import VERSIONS, load_rows, sr
from test_operations import incident, row
from test_outcomes import AS_OF, D1, D2, D3, device, outcome, t

from opmetrics.measures.run import compute

C1, C2 = "00-DB-00-00-00-00-0C-01", "00-DB-00-00-00-00-0C-02"
M1 = "00-DB-00-00-00-00-0E-01"


def share(r) -> tuple[int, int]:
    return r["numerator"], r["denominator"]


# Every code the 2027.1 classification lists, and the category a reader of the seeds expects.
CATEGORIES = {
    "I0": "success",  # 001 l.943 "successful response code i.e."
    "I99": "acknowledgement",  # 001 l.998 "merely an acknowledgement of the command"
    "E20": "failure_dcc",  # 001 l.309 "Communications Failure"
    "E21": "failure_dcc",
    "E30": "failure_dcc",  # 001 l.973 "For each E20 / E21 / E30 / E31 response code"
    "E31": "failure_dcc",
    "E4": "failure_outside",  # 001 l.984 "it will result in an E4"
    "E8": "failure_outside",  # 003 l.278-279 "not allowed to communicate with"
    "E51": "other",
    "E62": "other",
    "E65": "other",
}


def test_every_listed_response_code_is_pinned_to_its_category(meths):
    m = meths["2027.1"]
    assert {c: x.category for c, x in m.response_codes.codes.items()} == CATEGORIES
    assert m.category_of("E99") == "other" and m.category_of("W1") == "other"  # unlisted
    assert m.category_of(None) is None
    # 2026.4 read its success codes (I0 and I99) as success, its four comms codes as failures.
    old = meths["2026.4"]
    assert old.codes("success") == ["I0", "I99"] and old.codes("failure_outside") == ["E4", "E8"]


def test_each_code_counts_as_its_category_says(store, tmp_path, meths):
    """One top-up per listed code, each answered in 2 s, classified record by record. RSVP (a
    response received) succeeds whatever the code, unless the code is outside DCC control
    (excluded, 003 l.278 "DCC exclude any Response Codes"); an outcome measure succeeds only with
    2.2's success code, I0; a payload failure is a failure_dcc code; the response category is
    the seed's four. Then one compute: PP1 is 1 of 9 (I0 alone, E4 and E8 excluded)."""
    from opmetrics.measures.records import Scope, classified_requests

    codes = sorted(CATEGORIES)
    rows = [
        sr(i + 1, device_id=f"00-DB-00-00-00-00-01-{i:02d}", response_code=c) for i, c in enumerate(codes)
    ]
    assert load_rows(store, tmp_path, "service_requests", rows).quarantined == 0
    s = Scope(store.ibis(), meths["2027.1"], "2026-10", AS_OF)
    got = {r["response_code"]: r for r in classified_requests(s).to_pyarrow().to_pylist()}
    for code in codes:
        cat, r = CATEGORIES[code], got[code]
        assert r["included"] == (cat != "failure_outside"), code
        assert not r["failed"], code  # a response reached the User
        assert r["payload_failure"] == (cat == "failure_dcc"), code
        assert r["outcome_failed"] == (code != "I0"), code
        want = "response received: success code" if code == "I0" else "response received: other code"
        assert r["response_category"] == want, code
    compute(store, meths["2027.1"], "2026-10", as_of=AS_OF)
    assert share(outcome(store, "PP1")) == (1, 9)


@pytest.mark.parametrize(("rtt_ms", "within"), [(30_000, 1), (30_001, 0), (29_999, 1)])
def test_a_response_at_the_trt_is_on_time_and_1_ms_later_is_late(store, tmp_path, meth, rtt_ms, within):
    """2.2 on demand, TRT 30 s: answered after exactly 30.000 s is within (RTT <= TRT), after
    30.001 s is not; CPM1 and RSVP agree."""
    start = dt.datetime(2026, 10, 5, 10, 0, tzinfo=dt.UTC)
    end = start + dt.timedelta(milliseconds=rtt_ms)
    req = sr(
        1,
        received_at=start.isoformat(timespec="milliseconds"),
        responded_at=end.isoformat(timespec="milliseconds"),
    )
    assert load_rows(store, tmp_path, "service_requests", [req]).quarantined == 0
    compute(store, meth, "2026-10", as_of=AS_OF)
    sql = "SELECT within_trt FROM rsvp WHERE scope='srv' AND key='2.2' AND rate='month' AND segment='All'"
    r = store.rows(sql)
    assert r == [{"within_trt": within}]
    c = store.rows("SELECT numerator, denominator FROM cpm WHERE cpm='CPM1' AND key='all' AND segment='All'")
    assert c == [{"numerator": within, "denominator": 1}]


# (received at, UK day): 29 March 2026, BST starts at 01:00 UTC: the UK midnight starting the
# 29th is 00:00 UTC (GMT), the one starting the 30th is 23:00 UTC on the 29th (BST). 25 October
# 2026, BST ends at 01:00 UTC: the midnight starting the 25th is 23:00 UTC on the 24th (BST), the
# one starting the 26th is 00:00 UTC (GMT), so the 25th has 25 hours.
MIDNIGHTS = [
    ("2026-03-29T00:00:00.000Z", "2026-03-29"),
    ("2026-03-28T23:59:59.999Z", "2026-03-28"),
    ("2026-03-29T23:00:00.000Z", "2026-03-30"),
    ("2026-03-29T22:59:59.999Z", "2026-03-29"),
    ("2026-10-24T23:00:00.000Z", "2026-10-25"),
    ("2026-10-24T22:59:59.999Z", "2026-10-24"),
    ("2026-10-26T00:00:00.000Z", "2026-10-26"),
    ("2026-10-25T23:59:59.999Z", "2026-10-25"),
]


def test_a_request_at_uk_midnight_belongs_to_the_day_it_starts(store, tmp_path, meth):
    """Each request's stored reporting day, and the day RSVP's daily rows count it on (both
    clock-change months computed)."""
    rows = []
    for i, (utc, _) in enumerate(MIDNIGHTS, start=1):
        at = dt.datetime.fromisoformat(utc.replace("Z", "+00:00"))
        answered = (at + dt.timedelta(seconds=2)).isoformat(timespec="milliseconds")
        rows.append(sr(i, device_id=f"00-DB-00-00-00-00-02-{i:02d}", received_at=utc, responded_at=answered))
    assert load_rows(store, tmp_path, "service_requests", rows).quarantined == 0
    stored = store.con.execute("SELECT CAST(report_date AS VARCHAR) FROM service_requests").fetchall()
    assert sorted(r[0] for r in stored) == sorted(day for _, day in MIDNIGHTS)
    for period in ("2026-03", "2026-10"):
        compute(store, meth, period, as_of=dt.datetime(2026, 11, 1))
    got = store.rows(
        "SELECT CAST(day AS VARCHAR) AS day, volume FROM rsvp WHERE scope='srv' AND key='2.2' AND rate='day' "
        "AND segment='All' AND volume > 0"
    )
    want: dict[str, int] = {}
    for _, day in MIDNIGHTS:
        want[day] = want.get(day, 0) + 1
    assert {r["day"]: r["volume"] for r in got} == want


@pytest.mark.parametrize("version", list(VERSIONS))
def test_cpm5a_counts_incidents_whatever_the_responsible_party(store, tmp_path, meths, version):
    """CPM5A's text has no "which the DCC is responsible for resolving":
    003 l.51-52 "recorded on the Incident Management Log and assigned to a resolver". i1 Cat 3, DCC
    responsible, assigned in 30 min (target 60): met. i2 Cat 3, another party responsible,
    assigned in 90 min: missed. Both closed 10 Oct. CPM5A: 2027.1 1 of 2; 2026.4 1 of 1. CPM5
    Cat 3 counts i1 only under both; INC1.excluded names i2 and, in 2027.1, that CPM5A counts it."""
    incs = [
        incident("i1", 3, t(10, 9), resolved=t(10, 12), closed=t(10, 13), assigned=t(10, 9, 30)),
        incident("i2", 3, t(10, 9), resolved=t(10, 12), closed=t(10, 13), assigned=t(10, 10, 30), dcc=False),
    ]
    assert load_rows(store, tmp_path, "incidents", incs).quarantined == 0
    assert load_rows(store, tmp_path, "service_requests", [sr(1)]).quarantined == 0
    compute(store, meths[version], "2026-10", as_of=AS_OF)
    c5a = store.rows("SELECT numerator, denominator FROM cpm WHERE cpm='CPM5A' AND segment='All'")
    assert c5a == [{"numerator": 1, "denominator": 2 if version == "2027.1" else 1}]
    sql = "SELECT numerator, denominator FROM cpm WHERE cpm='CPM5' AND key='Cat 3' AND segment='All'"
    c5 = store.rows(sql)
    assert c5 == [{"numerator": 1, "denominator": 1}]
    note = outcome(store, "INC1.excluded", "incident", "i2", "Cat 3")["note"]
    assert ("counted in CPM5A" in note) == (version == "2027.1")


@pytest.mark.parametrize("version", list(VERSIONS))
def test_major_incidents_are_an_indicator_without_invented_limits(store, tmp_path, meths, version):
    """Two Cat 2 incidents raised in October: 2026.4 judged them against its limit of 1 (over
    limit); 2027.1 reports the count with the reference number, and no judgement."""
    incs = [incident(f"i{k}", 2, t(10 + k, 9), resolved=t(10 + k, 10), closed=t(10 + k, 11)) for k in (1, 2)]
    assert load_rows(store, tmp_path, "incidents", incs).quarantined == 0
    assert load_rows(store, tmp_path, "service_requests", [sr(1)]).quarantined == 0
    compute(store, meths[version], "2026-10", as_of=AS_OF)
    rows = store.rows("SELECT * FROM outcomes WHERE measure='INC1.major_limits' AND key1 LIKE 'Cat 2%'")
    assert [r["numerator"] for r in rows] == [2] and rows[0]["note"] == "i1, i2"
    if version == "2026.4":
        assert (rows[0]["status"], rows[0]["key2"]) == ("over limit", "limit 1")
    else:
        assert rows[0]["status"] not in ("over limit", "within limit")
        assert rows[0]["key2"] == "reference 1 (not a limit)"


@pytest.mark.parametrize("version", list(VERSIONS))
def test_firmware_currency_is_ranked_per_model(store, tmp_path, meths, version):
    """Five commissioned ESMEs: maker A model X on 2.0 and 1.9; maker B model Y on 1.4, 1.4 and
    1.2. Per model (2027.1): latest X 2.0 and Y 1.4 twice = 3, 1-2 behind X 1.9 and Y 1.2 = 2,
    older 0. By device type (2026.4), versions ranked together 2.0 > 1.9 > 1.4 > 1.2: latest 1,
    1-2 behind 1.9 and 1.4 twice = 3, older 1.2 = 1."""
    devs = [
        device(f"00-DB-00-00-00-00-0F-0{k}", manufacturer=mk, model=md, firmware_version=v)
        for k, (mk, md, v) in enumerate(
            [("A", "X", "2.0"), ("A", "X", "1.9"), ("B", "Y", "1.4"), ("B", "Y", "1.4"), ("B", "Y", "1.2")]
        )
    ]
    assert load_rows(store, tmp_path, "devices", devs).quarantined == 0
    assert load_rows(store, tmp_path, "service_requests", [sr(1)]).quarantined == 0
    compute(store, meths[version], "2026-10", as_of=AS_OF)
    got = {b: share(outcome(store, "EH1.firmware", "ESME", b)) for b in ("latest", "1-2 behind", "older")}
    if version == "2027.1":
        assert got == {"latest": (3, 5), "1-2 behind": (2, 5), "older": (0, 5)}
    else:
        assert got == {"latest": (1, 5), "1-2 behind": (3, 5), "older": (1, 5)}


def test_a_device_that_never_communicated_is_silent_since_its_install_in_every_measure(store, tmp_path, meth):
    """Two commissioned ESMEs that never communicated: D1 installed 1 June (more than 60 days
    before the report time and before its reads), D2 installed 20 October (not 60 days). D3
    communicated yesterday. EH1 and PP1 count D1 alone as silent (1 of 3); B1 excludes the
    scheduled read to D1 and keeps those to D2 and D3 (B1.non_communicating: 1)."""
    devs = [
        device(D1, installed_at="2026-06-01T09:00:00Z", commissioned_at="2026-06-01T09:30:00Z",
               last_communicated_at=""),
        device(D2, installed_at="2026-10-20T09:00:00Z", commissioned_at="2026-10-20T09:30:00Z",
               last_communicated_at=""),
        device(D3),
    ]  # fmt: skip
    assert load_rows(store, tmp_path, "devices", devs).quarantined == 0
    reads = [
        sr(k, srv="4.6.1", mode="dcc-scheduled", device_id=d, received_at=t(25, 1), responded_at=t(25, 2))
        for k, d in enumerate((D1, D2, D3), start=1)
    ]
    assert load_rows(store, tmp_path, "service_requests", reads).quarantined == 0
    compute(store, meth, "2026-10", as_of=AS_OF)
    assert share(outcome(store, "EH1.non_communicating", "device_type", "ESME")) == (1, 3)
    assert share(outcome(store, "PP1.non_communicating", "device_type x region", "ESME", "North")) == (1, 3)
    assert outcome(store, "B1.non_communicating")["numerator"] == 1
    assert share(outcome(store, "B1.scheduled_reads")) == (2, 2)


@pytest.mark.parametrize("version", list(VERSIONS))
def test_a_hub_install_succeeds_with_a_meter_attached(store, tmp_path, meths, version):
    """001 l.979 "at least one Meter attached": hubs C1 and C2 both reached Commissioned; meter
    M1 is joined to C1. 2027.1: C1 succeeded, C2 did not (1 of 2); 2026.4: 2 of 2."""
    base = dict(extracted_at="2026-10-31T12:00:00Z", smets=2, party_id="SUP-A", status="commissioned")
    devs = [
        row("devices", device_id=C1, device_type="CHF", region="North", installed_at=t(5, 10),
            commissioned_at=t(5, 10, 30), **base),
        row("devices", device_id=C2, device_type="CHF", region="North", installed_at=t(6, 10),
            commissioned_at=t(6, 10, 30), **base),
        row("devices", device_id=M1, device_type="ESME", region="North", installed_at=t(5, 10, 5),
            commissioned_at=t(5, 10, 35), ch_id=C1, **base),
    ]  # fmt: skip
    assert load_rows(store, tmp_path, "devices", devs).quarantined == 0
    assert load_rows(store, tmp_path, "service_requests", [sr(1)]).quarantined == 0
    compute(store, meths[version], "2026-10", as_of=AS_OF)
    got = share(outcome(store, "IC1.installs", "device_type x region", "CHF", "North"))
    assert got == ((1, 2) if version == "2027.1" else (2, 2))


def test_install_and_leave_is_decided_for_the_hubs_of_the_three_months_before(store, tmp_path, meth):
    """Report time 1 Nov 00:00Z; investigation period 90 days (before 3 Aug 00:00Z).
    H1 installed 20 Jul, 8.14.2 then: more than 90 days ago, decided (the days are over).
    H2 installed 10 Aug, 8.14.2, then an 8.14.4 (no-fault return) on 1 Sep: decided by it.
    H3 installed 15 Aug, 8.14.2 only: within 90 days, awaiting a decision.
    H4 installed 12 Oct, 8.14.2: this month's cohort, awaiting. H5 installed 12 Oct: neither.
    The three months before: 1/3 each decided-over, decided-update, awaiting. This month: 1/2
    awaiting, 1/2 neither."""
    hubs = {"H1": "07-20", "H2": "08-10", "H3": "08-15", "H4": "10-12", "H5": "10-12"}
    ids = {h: f"00-DB-00-00-00-00-0D-0{i}" for i, h in enumerate(hubs, start=1)}
    base = dict(extracted_at="2026-10-31T12:00:00Z", smets=2, party_id="SUP-A", region="North")
    devs = [
        row("devices", device_id=ids[h], device_type="CHF", installed_at=f"2026-{d}T10:00:00Z",
            status="install_and_leave", **base)
        for h, d in hubs.items()
    ]  # fmt: skip
    assert load_rows(store, tmp_path, "devices", devs).quarantined == 0

    def update(uid, srv, h, at):
        return row("ch_status_updates", update_id=uid, srv=srv, device_id=ids[h], party_id="SUP-A",
                   region="North", sent_at=at)  # fmt: skip

    ups = [
        update("u1", "8.14.2", "H1", "2026-07-20T10:30:00Z"),
        update("u2", "8.14.2", "H2", "2026-08-10T10:30:00Z"),
        update("u3", "8.14.4", "H2", "2026-09-01T10:00:00Z"),
        update("u4", "8.14.2", "H3", "2026-08-15T10:30:00Z"),
        update("u5", "8.14.2", "H4", "2026-10-12T10:30:00Z"),
    ]
    assert load_rows(store, tmp_path, "ch_status_updates", ups).quarantined == 0
    assert load_rows(store, tmp_path, "service_requests", [sr(1)]).quarantined == 0
    compute(store, meth, "2026-10", as_of=dt.datetime(2026, 11, 1))
    before = "category, hubs installed in the 3 months before"
    for cat in (
        "install and leave: decided (the 90 days are over)",
        "install and leave: decided (a later status update)",
        "install and leave: awaiting decision (within 90 days)",
    ):
        assert share(outcome(store, "IC1.install_leave", before, cat)) == (1, 3), cat
    assert share(outcome(store, "IC1.install_leave", "category", "neither")) == (1, 2)
    awaiting = "install and leave: awaiting decision (within 90 days)"
    assert share(outcome(store, "IC1.install_leave", "category", awaiting)) == (1, 2)


def test_iterations_with_a_failure_alert_or_no_response(store, tmp_path, meth):
    """Iterations of a process (one party, one device, one UK day) that met a failure alert or no
    response, after 001 l.321 "report the percentage of those iterations". Prepayment on
    5 Oct: D1 gets two top-ups, both I0 (an iteration, fine); D2 a top-up with no response (an
    iteration, failed); D3 a top-up answered I0 but with a linked N13 alert (failed). On 6 Oct D1
    gets one more, I0 (a second iteration of D1, fine). ITER1 prepayment: 2 of 4."""
    from conftest import alert, rid

    reqs = [
        sr(1, received_at=t(5, 9), responded_at=t(5, 9, 0, 2)),
        sr(2, received_at=t(5, 10), responded_at=t(5, 10, 0, 2)),
        sr(3, device_id=D2, received_at=t(5, 11), responded_at=None, response_code=None, report_status=34),
        sr(4, device_id=D3, received_at=t(5, 12), responded_at=t(5, 12, 0, 2)),
        sr(5, received_at=t(6, 9), responded_at=t(6, 9, 0, 2)),
    ]
    assert load_rows(store, tmp_path, "service_requests", reqs).quarantined == 0
    alerts = [alert("a1", alert_code="N13", kind="dcc", request_id=rid(4), device_id=D3)]
    assert load_rows(store, tmp_path, "alerts", alerts).quarantined == 0
    compute(store, meth, "2026-10", as_of=AS_OF)
    assert share(outcome(store, "ITER1", "process", "prepayment")) == (2, 4)


def test_iterations_count_each_process_of_a_request(store, tmp_path, meth):
    """A request counts in every process it belongs to: 4.6.1 is a meter read and a billing SRV
    (methodology 2026.4). On 5 Oct SUP-A sends D1 a 4.6.1 answered I0 and another with no
    response (one iteration of each process, failed), D2 a 5.1 (billing alone, fine), D3 a
    4.6.1 answered I0 with a linked N12 (failed, both processes); SUP-B sends D1 a 4.8.1 (meter
    reads alone: a party's own iteration, fine). Meter reads: D1/A, D3/A, D1/B, 2 failed of 3;
    billing: D1/A, D2/A, D3/A, 2 failed of 3; prepayment: none."""
    from conftest import alert, rid

    reqs = [
        sr(1, srv="4.6.1", received_at=t(5, 9), responded_at=t(5, 9, 0, 2)),
        sr(2, srv="4.6.1", received_at=t(5, 10), responded_at=None, response_code=None, report_status=34),
        sr(3, srv="5.1", device_id=D2, received_at=t(5, 11), responded_at=t(5, 11, 0, 2)),
        sr(4, srv="4.6.1", device_id=D3, received_at=t(5, 12), responded_at=t(5, 12, 0, 2)),
        sr(5, srv="4.8.1", party_id="SUP-B", received_at=t(5, 13), responded_at=t(5, 13, 0, 2)),
    ]
    assert load_rows(store, tmp_path, "service_requests", reqs).quarantined == 0
    alerts = [alert("a1", alert_code="N12", kind="dcc", request_id=rid(4), device_id=D3)]
    assert load_rows(store, tmp_path, "alerts", alerts).quarantined == 0
    compute(store, meth, "2026-10", as_of=AS_OF)
    assert share(outcome(store, "ITER1", "process", "meter_reads")) == (2, 3)
    assert share(outcome(store, "ITER1", "process", "billing")) == (2, 3)
    assert store.rows("SELECT * FROM outcomes WHERE measure = 'ITER1' AND key1 = 'prepayment'") == []


def test_alerts_management_counts_its_power_outage_alerts_within_the_sla(store, tmp_path, meth):
    """Alerts Management (001 l.3822 "Alerts Management AD1 Power Outage Event"): AD1 delivered in
    10 s (on time), 8F35 in 61 s (late: the SLA is 60 s), 8F36 never delivered (late), an AD1
    suppressed by alert-storm protection (not counted, as in A1), and an 8F72 (not one of the
    process's alerts). AM1: 1 of 3; by code AD1 1/1, 8F35 0/1, 8F36 0/1; A1 counts all four
    unsuppressed alerts (the 8F72 on time): 2 of 4. The process has a business-process
    availability row (no outages: missing input, as every Service)."""
    from conftest import alert

    assert load_rows(store, tmp_path, "service_requests", [sr(1)]).quarantined == 0
    raised = "2026-10-05T12:00:00.000Z"
    alerts = [
        alert("a1", alert_code="AD1", kind="dcc", delivered_at="2026-10-05T12:00:10.000Z"),
        alert("a2", alert_code="8F35", delivered_at="2026-10-05T12:01:01.000Z"),
        alert("a3", alert_code="8F36", delivered_at=""),
        alert("a4", alert_code="AD1", kind="dcc", suppressed="true", delivered_at=""),
        alert("a5", alert_code="8F72", delivered_at="2026-10-05T12:00:05.000Z"),
    ]
    assert all(a["raised_at"] == raised for a in alerts)
    assert load_rows(store, tmp_path, "alerts", alerts).quarantined == 0
    compute(store, meth, "2026-10", as_of=AS_OF)
    assert share(outcome(store, "AM1")) == (1, 3)
    assert [share(outcome(store, "AM1", "alert_code", c)) for c in ("AD1", "8F35", "8F36")] == [
        (1, 1),
        (0, 1),
        (0, 1),
    ]
    assert share(outcome(store, "AM1", "region", "North")) == (1, 3)
    assert share(outcome(store, "A1")) == (2, 4)
    rows = store.rows("SELECT region, status FROM availability WHERE view = 'process' AND subject = ?",
                      ["alerts_management"])  # fmt: skip
    assert {r["region"] for r in rows} == {"North", "Central", "South", "SMETS1", "All"}
