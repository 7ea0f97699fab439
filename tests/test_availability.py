"""Golden tests for service availability
(001 l.4688 "A monthly view of end-to-end service availability"): minutes worked out by hand.

October 2026 in UK time has 31 days and 44,700 minutes (BST ends on Sunday 25 October, a
25-hour day). Core band = Mon-Fri 08:00-20:00 and Sat 08:00-12:00: 22 weekdays x 720 +
5 Saturdays x 240 = 17,040 minutes; everything else = 27,660 minutes.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import ibis
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from opmetrics.format import pct as display_pct
from opmetrics.measures.availability import compute_availability, minute_grid
from opmetrics.measures.records import Scope

AS_OF = dt.datetime(2026, 11, 1)
MONTH, CORE, OTHER = 44_700, 17_040, 27_660


def z(s: str) -> dt.datetime:
    """A naive-UTC instant from 'YYYY-MM-DD HH:MM' (stored times are naive UTC)."""
    return dt.datetime.fromisoformat(s)


def outage(oid: str, subsystem: str, start: str, end: str | None, planned: bool = False, **kw):
    return {
        "outage_id": oid,
        "service": kw.get("service"),
        "subsystem": subsystem,
        "region": kw.get("region"),
        "start_at": z(start),
        "end_at": z(end) if end else None,
        "planned": planned,
        "incident_id": kw.get("incident_id"),
    }


def run(meth, outages: list[dict], period: str = "2026-10") -> list[dict]:
    con = ibis.duckdb.connect()
    schema = pa.schema(
        [
            ("outage_id", pa.string()),
            ("service", pa.string()),
            ("subsystem", pa.string()),
            ("region", pa.string()),
            ("start_at", pa.timestamp("us")),
            ("end_at", pa.timestamp("us")),
            ("planned", pa.bool_()),
            ("incident_id", pa.string()),
        ]
    )
    con.create_table("outages", pa.Table.from_pylist(outages, schema=schema))
    s = Scope(con=con, m=meth, period=period, as_of=AS_OF)
    return compute_availability(s, {"outages": len(outages)}).to_pylist()


def pick(rows, subject, region="All", band="all", view="service", day=None):
    got = [
        r
        for r in rows
        if r["view"] == view
        and r["subject"] == subject
        and r["region"] == region
        and r["band"] == band
        and r["day"] == day
    ]
    assert len(got) == 1, (subject, region, band, view, day)
    return got[0]


def test_grid_has_bst_change_and_the_core_band(meth):
    g = minute_grid(meth.availability, dt.date(2026, 10, 1), dt.date(2026, 10, 31), "Europe/London")
    assert g.n == MONTH and int(g.core.sum()) == CORE
    assert int((g.day_idx == 24).sum()) == 25 * 60  # Sunday 25 October: 25 hours


def test_outage_across_two_bands_midnight_and_the_bst_change_day(meth):
    """SSI down Fri 2 Oct 19:30 BST to Sat 3 Oct 08:30 BST (18:30Z-07:30Z): 780 min, of which
    core = Fri 19:30-20:00 (30) + Sat 08:00-08:30 (30) = 60, other = 720; by UK day 270 on the
    2nd and 510 on the 3rd. Then Sun 25 Oct 00:30 BST (23:30Z on the 24th) to 02:30 GMT (02:30Z):
    180 min, all in the other band, all on the UK day of the 25th (a 1,500-minute day).
    SSI: core (17,040-60)/17,040, other (27,660-900)/27,660, month (44,700-960)/44,700."""
    rows = run(
        meth,
        [
            outage("o1", "SSI Portal", "2026-10-02 18:30", "2026-10-03 07:30"),
            outage("o2", "SSI Portal", "2026-10-24 23:30", "2026-10-25 02:30"),
        ],
    )
    ssi = "Self-Service Interface"
    core, other, month = pick(rows, ssi, band="core"), pick(rows, ssi, band="other"), pick(rows, ssi)
    assert (core["minutes"], core["unplanned_min"]) == (CORE, 60)
    assert (other["minutes"], other["unplanned_min"]) == (OTHER, 900)
    assert month["pct"] == pytest.approx(100 * (MONTH - 960) / MONTH)
    assert core["pct"] == pytest.approx(100 * (CORE - 60) / CORE)
    d2 = pick(rows, ssi, view="daily", day=dt.date(2026, 10, 2))
    d3 = pick(rows, ssi, view="daily", day=dt.date(2026, 10, 3))
    d25 = pick(rows, ssi, view="daily", day=dt.date(2026, 10, 25))
    assert (d2["unplanned_min"], d3["unplanned_min"]) == (270, 510)
    assert (d25["minutes"], d25["unplanned_min"]) == (1_500, 180)
    # Reliability: 2 events, MTTR = (780 + 180) / 2 min = 8 h; MTBF = (44,700 - 960) / 60 / 2 h.
    assert month["events"] == 2 and month["mttr_hours"] == pytest.approx(8.0)
    assert month["mtbf_hours"] == pytest.approx((MONTH - 960) / 60 / 2)
    # Other Services do not depend on the SSI Portal.
    assert pick(rows, "Registration Data Interface")["pct"] == 100.0


@pytest.mark.parametrize("version", ["2026.4", "2027.1"])
def test_shared_subsystem_outage_hits_every_service_that_uses_it(meths, version):
    """DSP Core (no region) down Wed 14 Oct 10:00-10:45 BST (09:00Z-09:45Z), 45 core minutes.
    DSP Core serves the DCC User Interface (all four regions), the Registration Data Interface
    and the Self-Service Interface: each loses 45 core minutes; the SMKI Services do not.
    The DCC User Interface's headline: 2026.4 shows 45 clock minutes beside the mean of its
    regions; 2027.1 its region-minutes, 4 x 45 of 4 x 44,700, which give the same percentage."""
    meth = meths[version]
    rows = run(meth, [outage("o3", "DSP Core", "2026-10-14 09:00", "2026-10-14 09:45")])
    for svc, regions in (
        ("DCC User Interface", ["North", "Central", "South", "SMETS1"]),
        ("Registration Data Interface", ["All"]),
        ("Self-Service Interface", ["All"]),
    ):
        for region in regions:
            r = pick(rows, svc, region, band="core")
            assert r["unplanned_min"] == 45 and r["pct"] == pytest.approx(100 * (CORE - 45) / CORE)
    dui = pick(rows, "DCC User Interface")
    if version == "2026.4":
        assert (dui["unplanned_min"], dui["minutes"]) == (45, MONTH)  # clock time
    else:
        assert (dui["unplanned_min"], dui["uptime_min"]) == (4 * 45, 4 * MONTH)  # region-minutes
        up = dui["uptime_min"]
        assert dui["pct"] == pytest.approx(100 * (up - dui["unplanned_min"]) / up)
    assert dui["pct"] == pytest.approx(100 * (MONTH - 45) / MONTH)
    assert pick(rows, "SMKI Repository Interface")["pct"] == 100.0
    # Business-process view: every process through the DUI was unable to deliver for 45 min.
    pp = pick(rows, "prepayment", "North", view="process")
    assert pp["unplanned_min"] == 45 and pp["status"] == "Degraded"  # 99.899 % < 99.9 %


@pytest.mark.parametrize("version", ["2026.4", "2027.1"])
def test_regional_subsystem_outage_hits_only_its_region(meths, version):
    """CSP North WAN down 12 Oct 14:05-15:40 BST (13:05Z-14:40Z): 95 min, North only. Headline:
    2026.4 the mean of the four regions (Table 13) beside 95 clock minutes; 2027.1 95 of
    4 x 44,700 region-minutes, the same level, and the row's minutes reproduce it."""
    meth = meths[version]
    rows = run(meth, [outage("o4", "CSP North WAN", "2026-10-12 13:05", "2026-10-12 14:40")])
    assert pick(rows, "DCC User Interface", "North")["unplanned_min"] == 95
    dui = pick(rows, "DCC User Interface")
    assert dui["unplanned_min"] == 95
    assert dui["pct"] == pytest.approx((100 * (MONTH - 95) / MONTH + 3 * 100.0) / 4)
    if version == "2027.1":
        assert dui["uptime_min"] == 4 * MONTH
        assert dui["pct"] == pytest.approx(100 * (4 * MONTH - 95) / (4 * MONTH))
    assert pick(rows, "DCC User Interface", "South")["unplanned_min"] == 0
    assert pick(rows, "change_of_supplier", "North", view="process")["unplanned_min"] == 95
    assert pick(rows, "change_of_supplier", "SMETS1", view="process")["unplanned_min"] == 0


def test_planned_maintenance_over_the_six_hour_allowance_counts_as_downtime(meth):
    """Planned: DCC Gateway Network Sun 4 Oct 01:00-05:00 BST (240 min) then SSI Portal Sun 11
    Oct 01:00-04:00 BST (180 min). Allowance 360 min in time order: all of the first and 120 min
    of the second are excluded; the last 60 min of the second count as unplanned downtime.
    SSI (not behind the Gateway): planned 120, unplanned 60 -> (44,700-120-60)/(44,700-120).
    Registration Data Interface (behind the Gateway): planned 240 excluded -> 100 %."""
    rows = run(
        meth,
        [
            outage("p1", "DCC Gateway Network", "2026-10-04 00:00", "2026-10-04 04:00", planned=True),
            outage("p2", "SSI Portal", "2026-10-11 00:00", "2026-10-11 03:00", planned=True),
        ],
    )
    ssi = pick(rows, "Self-Service Interface")
    assert (ssi["planned_min"], ssi["planned_over_allowance_min"], ssi["unplanned_min"]) == (120, 60, 60)
    assert ssi["pct"] == pytest.approx(100 * (MONTH - 120 - 60) / (MONTH - 120))
    rdi = pick(rows, "Registration Data Interface")
    assert (rdi["planned_min"], rdi["unplanned_min"], rdi["pct"]) == (240, 0, 100.0)
    overall = pick(rows, "Overall Service Availability", view="overall")
    assert (overall["planned_min"], overall["planned_over_allowance_min"]) == (360, 60)


def test_outage_named_by_service_with_an_unknown_subsystem_still_counts(meth):
    rows = run(
        meth,
        [
            outage(
                "o5", "a web tier", "2026-10-08 09:00", "2026-10-08 10:00", service="Self-Service Interface"
            )
        ],
    )
    assert pick(rows, "Self-Service Interface")["unplanned_min"] == 60
    assert "a web tier" in pick(rows, "Overall Service Availability", view="overall")["note"]


@settings(max_examples=40, deadline=None)
@given(
    start=st.integers(min_value=0, max_value=MONTH * 60 - 1),
    seconds=st.integers(min_value=1, max_value=3 * 3600),
)
def test_an_outage_never_shows_100_percent(meth, start, seconds):
    """However short, an unplanned outage of a Service's sub-system inside the period leaves
    that Service below 100 %, both as a number and as displayed."""
    begin = dt.datetime(2026, 9, 30, 23, 0) + dt.timedelta(seconds=start)
    end = begin + dt.timedelta(seconds=seconds)
    o = {**outage("h", "Registration Data Store", "2026-10-01 00:00", None), "start_at": begin, "end_at": end}
    r = pick(run(meth, [o]), "Registration Data Interface")
    assert r["unplanned_min"] >= 1 and r["pct"] < 100.0
    assert display_pct(r["pct"]) != "100.00%"


def test_bank_holidays_follow_the_methodology(meths):
    """August 2026: 21 weekdays, one of them (Mon 31st) the Late Summer bank holiday, and
    5 Saturdays. "other" (2026.4): 20 x 720 + 5 x 240 = 15,600 core minutes; "weekday" (2027.1,
    the CPM text names Monday-Friday with no exception): 16,320."""
    first, last = dt.date(2026, 8, 1), dt.date(2026, 8, 31)
    old, new = meths["2026.4"].availability, meths["2027.1"].availability
    assert (old.bank_holidays, new.bank_holidays) == ("other", "weekday")
    assert int(minute_grid(old, first, last, "Europe/London").core.sum()) == 15_600
    assert int(minute_grid(new, first, last, "Europe/London").core.sum()) == 16_320


def test_a_region_with_its_own_calendar_has_its_own_core_band(meths):
    """August 2026 with bank holidays as "other" time and North on Scotland's calendar: the
    Scottish summer bank holiday is Monday 3rd, England's Monday 31st. Both calendars give
    20 x 720 + 5 x 240 = 15,600 core minutes, on different days: on the 3rd North has none and
    Central 720 (08:00-20:00 BST), on the 31st the other way round."""
    first, last = dt.date(2026, 8, 1), dt.date(2026, 8, 31)
    av = meths["2026.4"].availability.model_copy(update={"holiday_subdivisions": {"North": "SCT"}})
    grid = minute_grid(av, first, last, "Europe/London")
    north, central = grid.bands("North")["core"], grid.bands("Central")["core"]
    assert int(north.sum()) == int(central.sum()) == 15_600
    for day, (n, c) in {3: (0, 720), 31: (720, 0), 4: (720, 720)}.items():
        k = grid.days.index(dt.date(2026, 8, day))
        assert (int(north[grid.day_idx == k].sum()), int(central[grid.day_idx == k].sum())) == (n, c)
    # With bank holidays as weekdays (2027.1) the calendars do not matter.
    av = meths["2027.1"].availability.model_copy(update={"holiday_subdivisions": {"North": "SCT"}})
    grid = minute_grid(av, first, last, "Europe/London")
    assert (grid.bands("North")["core"] == grid.bands("Central")["core"]).all()


def test_maintenance_beyond_the_allowance_is_a_downtime_event(meth):
    """Three planned windows, 3 h each, on the DCC Gateway Network (4, 11 and 18 October,
    01:00-04:00 BST = 00:00-03:00Z): 540 min, allowance 360, so the third window's last
    180 min are downtime: one event, MTTR 3 h, for the Registration Data Interface."""
    rows = run(
        meth,
        [
            outage(
                f"p{d}",
                "DCC Gateway Network",
                f"2026-10-{d:02d} 00:00",
                f"2026-10-{d:02d} 03:00",
                planned=True,
            )
            for d in (4, 11, 18)
        ],
    )
    rdi = pick(rows, "Registration Data Interface")
    assert (rdi["planned_min"], rdi["unplanned_min"], rdi["events"]) == (360, 180, 1)
    assert rdi["mttr_hours"] == pytest.approx(3.0)
    assert rdi["mtbf_hours"] == pytest.approx((MONTH - 360 - 180) / 60)


@pytest.mark.parametrize("version", ["2026.4", "2027.1"])
def test_without_outages_availability_is_missing_input_not_100(meths, version):
    """No outages loaded: 2026.3's reading assumed no outage (100 %, target met); 2027.1 says
    "missing input" and shows no figure, like any measure without its input."""
    con = ibis.duckdb.connect()
    s = Scope(con=con, m=meths[version], period="2026-10", as_of=AS_OF)
    rows = compute_availability(s, {"outages": 0}).to_pylist()
    dui = pick(rows, "DCC User Interface")
    overall = pick(rows, "Overall Service Availability", view="overall")
    if version == "2026.4":
        assert (dui["pct"], dui["status"]) == (100.0, "target met")
    else:
        assert all(r["pct"] is None and r["status"] == "missing input" for r in rows)
        assert overall["pct"] is None and "missing input" in dui["note"]


def test_major_incident_without_an_outage_row_is_flagged(meth):
    """Cat 1 incident i1 names the DCC User Interface, 12 Oct, and has no outage row; Cat 2 i2
    names the Registration Data Interface and its DSP Core outage is linked by incident id;
    Cat 3 i3 (not major) names the SSI. Only i1 is flagged, on the DUI's headline row."""
    con = ibis.duckdb.connect()
    outages = [outage("o1", "DSP Core", "2026-10-14 09:00", "2026-10-14 09:45", incident_id="i2")]
    schema = pa.schema(
        [
            ("outage_id", pa.string()),
            ("service", pa.string()),
            ("subsystem", pa.string()),
            ("region", pa.string()),
            ("start_at", pa.timestamp("us")),
            ("end_at", pa.timestamp("us")),
            ("planned", pa.bool_()),
            ("incident_id", pa.string()),
        ]
    )
    con.create_table("outages", pa.Table.from_pylist(outages, schema=schema))
    incidents = [
        {"incident_id": "i1", "category": 1, "services": "DCC User Interface",
         "raised_at": z("2026-10-12 10:00"), "resolved_at": z("2026-10-12 12:00"), "dcc_responsible": True},
        {"incident_id": "i2", "category": 2, "services": "Registration Data Interface",
         "raised_at": z("2026-10-14 09:00"), "resolved_at": z("2026-10-14 10:00"), "dcc_responsible": True},
        {"incident_id": "i3", "category": 3, "services": "Self-Service Interface",
         "raised_at": z("2026-10-14 09:00"), "resolved_at": z("2026-10-14 10:00"), "dcc_responsible": True},
    ]  # fmt: skip
    con.create_table("incidents", pa.Table.from_pylist(incidents))
    s = Scope(con=con, m=meth, period="2026-10", as_of=AS_OF)
    rows = compute_availability(s, {"outages": 1, "incidents": 3}).to_pylist()
    assert "no outage row on this Service: i1" in pick(rows, "DCC User Interface")["note"]
    for svc in ("Registration Data Interface", "Self-Service Interface"):
        assert "no outage row" not in pick(rows, svc)["note"]


def test_lack_of_activity_proposes_candidate_outages_at_its_bounds(store, tmp_path, meth):
    """Every weekday of October, 40 top-ups answered I0 in each of two 15-minute bins, 11:00 and
    11:15 UK time (10:00 UTC in BST, 11:00 UTC from 26 October): the usual count of each is 40.
    On Wed 14 Oct both bins have 20 successes and 20 E20s: 20 <= 0.5 x 40, a quiet window of two
    bins, proposed as 11:00-11:30 UK with 40 of 80. On Thu 15 Oct both bins have 21 successes:
    not quiet (one over the bound). On Fri 16 Oct only the first bin is quiet: one bin, shorter
    than the two a window needs. Weekends have no traffic: their usual count, 0, is below the 30
    that makes a quiet bin mean anything. Availability (no outages loaded) counts none of it."""
    from conftest import load_rows, sr

    from opmetrics.measures.run import compute

    rows, n = [], 0
    for day in range(1, 32):
        d = dt.date(2026, 10, day)
        if d.weekday() >= 5:
            continue
        for minute in (0, 15):
            ok = {14: 20, 15: 21, 16: 20 if minute == 0 else 40}.get(day, 40)
            local = dt.datetime(2026, 10, day, 11, minute, tzinfo=ZoneInfo("Europe/London"))
            utc = local.astimezone(dt.UTC)
            for k in range(40):
                n += 1
                at = f"{utc:%Y-%m-%dT%H}:{minute + k % 15:02d}:{k:02d}.000Z"
                code = "I0" if k < ok else "E20"
                rows.append(sr(n, received_at=at, responded_at=at[:-4] + "500Z", response_code=code))
    assert load_rows(store, tmp_path, "service_requests", rows).quarantined == 0
    compute(store, meth, "2026-10", as_of=AS_OF)
    got = store.rows(
        "SELECT key1, key2, numerator, denominator, note FROM outcomes WHERE measure = 'AV1.activity_gaps'"
    )
    assert [(r["key1"], r["key2"], r["numerator"], r["denominator"]) for r in got] == [
        ("North", "2026-10-14 11:00-11:30 UK", 40, 80)
    ]
    assert "not counted in availability" in got[0]["note"]
    dui = store.rows(
        "SELECT pct, status FROM availability WHERE view = 'service' AND subject = 'DCC User Interface' "
        "AND region = 'All' AND band = 'all'"
    )
    assert dui == [{"pct": None, "status": "missing input"}]
