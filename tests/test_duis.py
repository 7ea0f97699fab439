"""DUIS message logs in (issue 9): the same simulated month measured from DUIS XML and from the
canonical Parquet tables gives identical figures; hostile and malformed messages are refused one
by one with file, line and reason; pairing rules; the party-side RTT report."""

from __future__ import annotations

import codecs
import datetime as dt
import gzip
import json
import os
import re
import shutil
from pathlib import Path

import pytest
from conftest import limit_watch, memory_limit
from typer.testing import CliRunner

from opmetrics.cli import app
from opmetrics.engine.store import Store
from opmetrics.ingest import quarantine
from opmetrics.ingest.duis import parse_message
from opmetrics.ingest.duis_pairing import ingest_duis
from opmetrics.measures.run import compute
from opmetrics.methodology import load as load_methodology
from opmetrics.simulate.duis import request_xml, response_xml
from opmetrics.simulate.generator import TABLES

runner = CliRunner()
NS = "http://www.dccinterface.co.uk/ServiceUserGateway"
USER, DEV = "90-B3-D5-1F-30-01-00-0A", "00-DB-00-00-00-00-00-01"
SIDE_TABLES = [t for t in TABLES if t not in ("service_requests", "alerts")]


def cli(*args: str) -> str:
    res = runner.invoke(app, list(args))
    assert res.exit_code == 0, res.output
    return res.output


@pytest.fixture(scope="module")
def month(tmp_path_factory):
    base = tmp_path_factory.mktemp("duis")
    cli("simulate", "--scale", "tiny", "--out", str(base / "data"), "--duis")
    return base


def test_duis_path_gives_the_same_figures_as_the_parquet_path(month, tmp_path):
    """The month's DUIS logs loaded at once, or a week of daily files at a time (a response in
    the next week's first log pairs on the next load; issue 33), give the figures of the
    canonical tables."""
    a, b, c = tmp_path / "a.duckdb", tmp_path / "b.duckdb", tmp_path / "c.duckdb"
    cli("ingest", str(month / "data"), "--db", str(a))
    for db in (b, c):
        cli("ingest", *[str(month / "data" / t) for t in SIDE_TABLES], "--db", str(db))
    out = cli("ingest-duis", str(month / "data" / "duis"), "--db", str(b))
    assert "0 malformed" in out and "0 unpaired" in out
    days = sorted((month / "data" / "duis").glob("*.jsonl.gz"))
    m = load_methodology()
    with Store(c) as store:
        for week in range(0, len(days), 7):  # a week of daily logs per load
            ingest_duis(store, m, days[week : week + 7], tmp_path / "stage")
        corrected = store.count("superseded")
    assert len(days) > 20 and corrected > 0  # some pairs did span two loads
    snap = {}
    for name, db in (("parquet", a), ("duis", b), ("daily", c)):
        with Store(db) as store:
            compute(store, m, "2026-10", as_of=dt.datetime(2026, 11, 1))
            snap[name] = {
                t: sorted(map(repr, store.con.execute(f"SELECT * EXCLUDE (run_id) FROM {t}").fetchall()))
                for t in ("rsvp", "cpm", "outcomes", "availability")
            }
    for t in snap["parquet"]:
        assert len(snap["parquet"][t]) > 50, t
        assert snap["parquet"][t] == snap["duis"][t], t
        assert snap["parquet"][t] == snap["daily"][t], t
    again = cli("ingest-duis", str(month / "data" / "duis"), "--db", str(b))
    assert again.count("already loaded") == len(days)  # re-loading the same logs changes nothing


def _line(xml: str, at: str = "2026-10-05T10:00:00.000Z", **dsp) -> str:
    rec = {"captured_at": at, "xml": xml}
    if dsp:
        rec["dsp"] = dsp
    return json.dumps(rec)


XXE = (
    '<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
    f'<sr:Request xmlns:sr="{NS}"><sr:Header><sr:RequestID>&x;</sr:RequestID></sr:Header></sr:Request>'
)
LAUGHS = (
    '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;">'
    '<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;">]>'
    f'<sr:Request xmlns:sr="{NS}"><sr:Header><sr:RequestID>&lol3;</sr:RequestID></sr:Header></sr:Request>'
)


def test_hostile_and_malformed_messages_are_refused_one_by_one(tmp_path):
    """Line 1 request and line 2 its response load; lines 3-7 are refused, each with its reason;
    line 8 answers a request that is not in the log (kept as unpaired); the load goes on."""
    db = tmp_path / "x.duckdb"
    rid = f"{USER}:{DEV}:1"
    good_req = request_xml(rid, "2.2", None)
    good_resp = response_xml(rid, "2.2", "I0", dt.datetime(2026, 10, 5, 10, 0, 2))
    lines = [
        _line(good_req, report_status=2, attempts=1),
        _line(good_resp, "2026-10-05T10:00:02.000Z"),
        _line(XXE),
        _line(LAUGHS),
        _line(good_req[: len(good_req) // 2]),  # truncated
        _line(good_req.replace(NS, "http://example.com/not-duis")),
        "{not json",
        _line(response_xml(f"{USER}:{DEV}:99", "2.2", "I0", dt.datetime(2026, 10, 5, 11))),
    ]
    log = tmp_path / "log.jsonl.gz"
    with gzip.open(log, "wt", encoding="utf-8") as fh:
        fh.write("\n".join(lines) + "\n")
    cli("ingest", str(_parties_devices(tmp_path)), "--db", str(db))
    with Store(db) as store:
        res = ingest_duis(store, load_methodology(), [log], tmp_path / "stage")
        assert (res.messages, res.bad, res.unpaired) == (8, 5, 1)
        rows = store.rows("SELECT request_id, response_code, responded_at, region FROM service_requests", [])
        assert rows == [
            {
                "request_id": rid,
                "response_code": "I0",
                "responded_at": dt.datetime(2026, 10, 5, 10, 0, 2),
                "region": "North",
            }
        ]
        q = {
            r["row_number"]: r["reason"] for r in store.rows("SELECT row_number, reason FROM quarantine", [])
        }
    assert set(q) == {3, 4, 5, 6, 7}
    assert "forbidden XML construct" in q[3] and "forbidden XML construct" in q[4]
    assert "not well-formed" in q[5]
    assert "not in the DUIS namespace" in q[6]
    assert "not a JSON log line" in q[7]


def _parties_devices(tmp_path: Path) -> Path:
    d = tmp_path / "side"
    (d / "parties").mkdir(parents=True)
    (d / "devices").mkdir()
    (d / "parties" / "p.csv").write_text(
        f"user_id,party_id,user_role,valid_from\n{USER},SUP-A,IS,2026-01-01T00:00:00Z\n"
    )
    (d / "devices" / "d.csv").write_text(
        "device_id,extracted_at,device_type,smets,region,party_id,ch_id,installed_at,commissioned_at,status,"
        "firmware_version,last_communicated_at\n"
        f"{DEV},2026-10-31T00:00:00Z,ESME,2,North,SUP-A,,2025-01-01T00:00:00Z,2025-01-01T01:00:00Z,commissioned,1.0,\n"
    )
    return d


def test_xml_files_acknowledgements_and_future_dated_pairing(tmp_path):
    """One message per file (captured at its modification time) and a concatenated log with
    `captured_at:` lines. A future-dated request gets an I99 acknowledgement and later an I0:
    the I0 is its response. An 11.1 that only ever gets its I99 keeps the I99."""
    db = tmp_path / "x.duckdb"
    cli("ingest", str(_parties_devices(tmp_path)), "--db", str(db))
    r1, r2 = f"{USER}:{DEV}:1", f"{USER}:{DEV}:2"
    t0 = dt.datetime(2026, 10, 6, 9, 0)
    single = tmp_path / "logs" / "req.xml"
    single.parent.mkdir()
    single.write_text(request_xml(r1, "1.1.1", t0 + dt.timedelta(hours=2)), encoding="utf-8")
    os.utime(single, (t0.replace(tzinfo=dt.UTC).timestamp(),) * 2)
    concat = tmp_path / "logs" / "rest.xml.gz"
    parts = [
        ("2026-10-06T09:00:01.000Z", response_xml(r1, "1.1.1", "I99", t0 + dt.timedelta(seconds=1))),
        ("2026-10-06T11:00:05.000Z", response_xml(r1, "1.1.1", "I0", t0 + dt.timedelta(hours=2, seconds=5))),
        ("2026-10-06T09:30:00.000Z", request_xml(r2, "11.1", None)),
        (
            "2026-10-06T09:30:02.000Z",
            response_xml(r2, "11.1", "I99", t0 + dt.timedelta(minutes=30, seconds=2)),
        ),
    ]
    with gzip.open(concat, "wt", encoding="utf-8") as fh:
        for at, xml in parts:
            fh.write(f"captured_at: {at}\n{xml}\n")
    out = cli("ingest-duis", str(tmp_path / "logs"), "--db", str(db))
    assert "0 malformed" in out
    with Store(db) as store:
        got = {r["request_id"]: r for r in store.rows("SELECT * FROM service_requests", [])}
    assert got[r1]["mode"] == "future-dated" and got[r1]["response_code"] == "I0"
    assert got[r1]["received_at"] == t0 and got[r1]["responded_at"] == t0 + dt.timedelta(hours=2, seconds=5)
    assert got[r2]["response_code"] == "I99" and got[r2]["report_status"] == 2  # party-side default


def test_parse_message_reasons():
    at = dt.datetime(2026, 10, 1)
    with pytest.raises(ValueError, match="neither Request nor Response"):
        parse_message(f'<sr:Other xmlns:sr="{NS}"><sr:Header/></sr:Other>', "f", 1, at, None)
    with pytest.raises(ValueError, match="needs RequestID and ServiceReferenceVariant"):
        parse_message(f'<sr:Request xmlns:sr="{NS}"><sr:Header/></sr:Request>', "f", 1, at, None)


def test_party_side_rtt_report_renders_beside_the_dcc_side(month, tmp_path):
    """SUP-A's own log: each message captured 40-400 ms further from the DCC each way, so the
    party's mean RTT exceeds the DCC's by 0.08-0.8 s, for exactly the same requests."""
    from opmetrics.simulate.duis import write_duis_logs

    db = tmp_path / "p.duckdb"
    cli("ingest", str(month / "data"), "--db", str(db))
    counts = write_duis_logs(month / "data", tmp_path / "sup-a", party="SUP-A")
    assert counts["requests"] > 1000
    out = tmp_path / "report"
    cli(
        "party-rtt",
        str(tmp_path / "sup-a"),
        "--party",
        "SUP-A",
        "--period",
        "2026-10",
        "--db",
        str(db),
        "--out",
        str(out),
    )
    html = (out / "party-rtt.html").read_text()
    assert "Round-trip time as SUP-A experiences it" in html
    import csv

    rows = list(csv.DictReader((out / "party-rtt.csv").open()))
    pp = next(r for r in rows if r["srv"] == "2.2" and r["mode"] == "on-demand")
    # The DCC side counts the matched requests the report includes and whose response reached
    # the party, as written here from the methodology's lists, not through opmetrics' rules.
    m = load_methodology()
    with Store(db, read_only=True) as st:
        base = (
            "FROM party_rtt p JOIN service_requests s USING (request_id) WHERE p.party_id = 'SUP-A' "
            "AND p.srv = '2.2' AND p.mode = 'on-demand' AND CAST(timezone('Europe/London', "
            "CAST(p.sent_at AS TIMESTAMPTZ)) AS DATE) BETWEEN DATE '2026-10-01' AND DATE '2026-10-31'"
        )
        included = (
            "s.report_status IN (SELECT unnest($inc)) AND coalesce(s.response_code, '') NOT IN "
            "(SELECT unnest($outside))"
        )
        params = {"inc": m.report_status.included, "outside": m.codes("failure_outside")}
        shown = st.con.execute(
            f"SELECT count(*) {base} AND {included} AND s.responded_at IS NOT NULL "
            "AND s.report_status NOT IN (SELECT unnest($held))",
            {**params, "held": m.payload.undelivered_report_statuses},
        ).fetchone()[0]
        left_out = st.con.execute(f"SELECT count(*) {base} AND NOT ({included})", params).fetchone()[0]
    assert int(pp["dcc_matched"]) == shown > 100
    assert int(pp["dcc_excluded"]) == left_out
    assert left_out > 0 and shown <= int(pp["answered"]) <= int(pp["requests"])
    assert 0.08 <= float(pp["party_minus_dcc_mean_s"]) <= 0.8
    assert float(pp["party_within_trt_pct"]) <= float(pp["dcc_within_trt_pct"])
    shutil.rmtree(tmp_path / "sup-a")


def test_a_folder_with_one_bad_file_of_each_kind_loads_every_good_file(tmp_path):
    """Every file on its own (issue 33, item 2): upper-case `.XML`, a UTF-16 file with its BOM,
    an ISO-8859-1 file that declares it, a JSON log with one non-UTF-8 line load; a corrupt
    .gz and a file declaring an unknown encoding are set aside with their reasons; the bad line
    is quarantined alone."""
    db = tmp_path / "x.duckdb"
    cli("ingest", str(_parties_devices(tmp_path)), "--db", str(db))
    r1, r2, r3 = (f"{USER}:{DEV}:{i}" for i in (1, 2, 3))
    t0 = dt.datetime(2026, 10, 7, 9, 0)
    logs = tmp_path / "logs"
    logs.mkdir()

    def single(name: str, data: bytes, at: dt.datetime) -> None:
        (logs / name).write_bytes(data)
        os.utime(logs / name, (at.replace(tzinfo=dt.UTC).timestamp(),) * 2)

    single("A.XML", request_xml(r1, "2.2", None).encode(), t0)
    bare = re.compile(r"^\s*<\?xml[^>]*\?>")  # each file below declares its own encoding
    utf16 = '<?xml version="1.0" encoding="UTF-16"?>' + bare.sub("", response_xml(r1, "2.2", "I0", t0))
    single("b.xml", codecs.BOM_UTF16_LE + utf16.encode("utf-16-le"), t0 + dt.timedelta(seconds=3))
    latin = '<?xml version="1.0" encoding="ISO-8859-1"?>' + bare.sub("", request_xml(r3, "2.2", None))
    latin += "<!-- café -->"
    single("e.xml", latin.encode("latin-1"), t0 + dt.timedelta(minutes=5))
    single("f.xml", b'<?xml version="1.0" encoding="x-no-such"?>' + request_xml(r3, "2.2", None).encode(), t0)
    (logs / "d.xml.gz").write_bytes(b"\x1f\x8b\x08\x00 not really gzip at all")
    lines = [
        _line(request_xml(r2, "2.2", None), "2026-10-07T10:00:00.000Z").encode(),
        b'{"captured_at": "2026-10-07T10:00:01.000Z", "xml": "caf\xe9"}',
        _line(
            response_xml(r2, "2.2", "I0", t0 + dt.timedelta(hours=1, seconds=2)), "2026-10-07T10:00:02.000Z"
        ).encode(),
    ]
    (logs / "c.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    out = cli("ingest-duis", str(logs), "--db", str(db))
    assert "d.xml.gz" in out and "f.xml" in out and "not loaded" in out
    with Store(db) as store:
        got = {r["request_id"]: r for r in store.rows("SELECT * FROM service_requests")}
        q = store.rows("SELECT path, row_number, reason FROM quarantine WHERE table_name = 'duis'")
    assert got[r1]["response_code"] == "I0" and got[r1]["responded_at"] == t0 + dt.timedelta(seconds=3)
    assert got[r2]["response_code"] == "I0" and r3 in got
    why = {(Path(r["path"]).name, r["row_number"]): r["reason"] for r in q}
    assert why[("c.jsonl", 2)] == "not UTF-8 text"
    assert "cannot be read" in why[("d.xml.gz", 0)]
    assert "unknown encoding 'x-no-such'" in why[("f.xml", 0)]
    assert len(why) == 3


def test_party_rtt_refuses_an_empty_selection(tmp_path):
    (tmp_path / "empty").mkdir()
    res = runner.invoke(
        app, ["party-rtt", str(tmp_path / "empty"), "--party", "SUP-A", "--period", "2026-10", "--db",
              str(tmp_path / "x.duckdb")],
    )  # fmt: skip
    assert res.exit_code != 0 and "no DUIS logs found" in res.output


def test_party_rtt_report_says_n_a_where_an_srv_has_no_target():
    """A row without a Target Response Time (an SRV outside the catalogue in a mode without a
    default) shows "n/a" for both shares within target, never 0.00 %. The 2027.1 catalogue
    gives every SRV a TRT in every mode, so only another methodology can produce such a row."""
    from opmetrics.report.pack import _env

    row = {
        "srv": "99.9", "mode": "other", "requests": 3, "answered": 3, "trt_s": None,
        "party_mean_s": 4.0, "party_median_s": 4.0, "party_within_trt_pct": None, "dcc_included": 3,
        "dcc_matched": 3, "dcc_excluded": 0, "dcc_mean_s": 3.5, "dcc_median_s": 3.5,
        "dcc_within_trt_pct": None, "party_minus_dcc_mean_s": 0.5,
    }  # fmt: skip
    m = load_methodology()
    html = _env().get_template("party_rtt.html.j2").render(rows=[row], party="SUP-A", period="2026-10", m=m)
    cells = re.search(r"<td>99.9</td>.*?</tr>", html, re.S).group(0)
    assert cells.count("n/a") == 2 and "%" not in cells


# The message store and the written-records register as stores made before 2026-12-05 have
# them: with key indexes (a store keeps its tables; loading must work on both).
_INDEXED_DDL = """
CREATE TABLE duis_messages (
    msg_key VARCHAR PRIMARY KEY, kind VARCHAR, request_id VARCHAR, response_id VARCHAR,
    srv VARCHAR, code VARCHAR, captured_at TIMESTAMP, response_at TIMESTAMP,
    future_dated BOOLEAN, scheduled BOOLEAN, dsp VARCHAR, source VARCHAR, line BIGINT);
CREATE TABLE duis_emitted (record_id VARCHAR PRIMARY KEY, responded_at TIMESTAMP, response_code VARCHAR);
"""


@pytest.mark.parametrize("indexed", [False, True], ids=["store", "store-with-key-indexes"])
def test_pairs_across_loads_acknowledgements_apart_overlaps_once_and_settling(tmp_path, indexed):
    """Issue 33, item 1, over three loads of hand-built logs (also into a store whose message
    tables were made with key indexes, as before 2026-12-05):
    - a future-dated request's I99 is not its response: it stays open after the first load and
      the I0 in the next log gives it its I0 time (a correction of the row);
    - a log overlapping the previous one (the same messages again) adds nothing and refuses
      nothing; the re-sent request pairs with its response from the later log;
    - a request with no response is open until its TRT plus the grace period has passed at the
      cut-off, then it is settled without one; an 11.1 settled with only its I99 keeps the I99;
    - a response naming another ServiceReferenceVariant is not paired; an originator missing
      from `parties` is reported."""
    db = tmp_path / "x.duckdb"
    cli("ingest", str(_parties_devices(tmp_path)), "--db", str(db))
    fut, ovl, lost, fw, wrong = (f"{USER}:{DEV}:{i}" for i in (11, 12, 13, 14, 15))
    stranger = f"90-B3-D5-1F-30-01-00-FF:{DEV}:16"
    t0 = dt.datetime(2026, 10, 9, 23, 50)

    def at(minutes: float) -> str:
        return (t0 + dt.timedelta(minutes=minutes)).isoformat(timespec="milliseconds") + "Z"

    def resp(rid: str, srv: str, code: str, minutes: float) -> str:
        return _line(response_xml(rid, srv, code, t0 + dt.timedelta(minutes=minutes)), at(minutes))

    day1 = [
        _line(request_xml(fut, "1.1.1", t0 + dt.timedelta(hours=2)), at(0)),
        resp(fut, "1.1.1", "I99", 0.1),
        _line(request_xml(ovl, "2.2", None), at(1)),
        _line(request_xml(lost, "2.2", None), at(2)),
        _line(request_xml(fw, "11.1", None), at(3)),
        resp(fw, "11.1", "I99", 3.1),
        _line(request_xml(wrong, "2.2", None), at(4)),
        resp(wrong, "4.1.1", "I0", 4.2),
        _line(request_xml(stranger, "2.2", None), at(5)),
        resp(stranger, "2.2", "I0", 5.1),
    ]
    day2 = [*day1[2:3], resp(ovl, "2.2", "I0", 11), resp(fut, "1.1.1", "I0", 130)]
    # The same line twice; and a second final response to a request answered a day before.
    day3 = [_line(request_xml(f"{USER}:{DEV}:17", "2.2", None), at(60 * 24))] * 2
    day3.append(resp(ovl, "2.2", "E60", 60 * 24 + 1))
    logs = []
    for i, lines in enumerate((day1, day2, day3), start=1):
        logs.append(tmp_path / f"day{i}.jsonl")
        logs[-1].write_text("\n".join(lines) + "\n")
    m = load_methodology()

    def state(store: Store) -> dict[str, tuple]:
        rows = store.rows("SELECT request_id, response_code, responded_at FROM service_requests")
        return {r["request_id"]: (r["response_code"], r["responded_at"]) for r in rows}

    with Store(db) as store:
        if indexed:
            store.con.execute(_INDEXED_DDL)
        first = ingest_duis(store, m, [logs[0]], tmp_path / "stage")
        s1 = state(store)
        assert s1[fut] == (None, None) and s1[lost] == (None, None) and s1[fw] == (None, None)
        assert s1[ovl] == (None, None) and s1[wrong] == (None, None)
        assert first.open_requests == 5  # every request but the stranger's (answered)
        assert first.unknown_originators == ["90-B3-D5-1F-30-01-00-FF"]
        assert s1[stranger][0] == "I0"
        (mismatch,) = store.rows("SELECT reason FROM duis_unpaired")
        assert "ServiceReferenceVariant 4.1.1 is not the request's 2.2" in mismatch["reason"]

        second = ingest_duis(store, m, [logs[1]], tmp_path / "stage")
        s2 = state(store)
        assert second.bad == 0 and store.count("quarantine") == 0  # the re-sent request is the same one
        assert store.count("duis_messages") == len(day1) + 2  # ... and stored once
        assert s2[ovl][0] == "I0" and s2[fut] == ("I0", t0 + dt.timedelta(minutes=130))
        # The cut-off (02:00) is past 2.2's 30 s TRT and an hour's grace: settled, without a response.
        assert s2[lost] == (None, None) and s2[fw] == ("I99", t0 + dt.timedelta(minutes=3.1))
        assert second.open_requests == 0

        third = ingest_duis(store, m, [logs[2]], tmp_path / "stage")
        assert third.open_requests == 1  # the third log's request, within its TRT
        assert third.bad == 0 and store.count("duis_messages") == len(day1) + 4  # one line twice: once
        s3, rows = state(store), store.count("service_requests")
        # The latest final response stands, even for a request written with another a day before.
        assert s3[ovl] == ("E60", t0 + dt.timedelta(minutes=60 * 24 + 1)) and s3[fut] == s2[fut]
        again = ingest_duis(store, m, logs, tmp_path / "stage")
        assert again.already and again.files_already == [str(p) for p in logs] and not again.loads
        assert state(store) == s3 and store.count("service_requests") == rows == 7


def test_response_clocks_coarse_capture_times_and_an_optional_schema(tmp_path):
    """Issue 33, item 4: a response generated more than an hour from its capture is refused
    (one of the clocks is wrong); a single-message file whose modification time is only whole
    seconds takes the response's own ResponseDateTime within that second; with --xsd, a message
    the schema rejects is quarantined with the schema's reason."""
    rid = f"{USER}:{DEV}:21"
    t0 = dt.datetime(2026, 10, 8, 12, 0, 0)
    late = response_xml(rid, "2.2", "I0", t0 - dt.timedelta(hours=1, minutes=1))
    with pytest.raises(ValueError, match="implausible clock: ResponseDateTime .* -61 min"):
        parse_message(late, "f", 1, t0, None)
    at_hour = parse_message(response_xml(rid, "2.2", "I0", t0 - dt.timedelta(minutes=59)), "f", 1, t0, None)
    assert at_hour.captured_at == t0  # within the hour: kept, the capture time stands
    precise = t0 + dt.timedelta(milliseconds=437)
    coarse = parse_message(response_xml(rid, "2.2", "I0", precise), "f", 1, t0, None, coarse=True)
    assert coarse.captured_at == precise
    fine = parse_message(response_xml(rid, "2.2", "I0", precise), "f", 1, t0, None)
    assert fine.captured_at == t0
    xsd = tmp_path / "duis.xsd"
    xsd.write_text(
        f"""<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema" targetNamespace="{NS}"
              xmlns:sr="{NS}" elementFormDefault="qualified">
          <xs:element name="Request"><xs:complexType><xs:sequence>
            <xs:any processContents="skip" maxOccurs="unbounded"/></xs:sequence>
            <xs:anyAttribute processContents="skip"/></xs:complexType></xs:element>
          <xs:element name="Response"><xs:complexType><xs:sequence>
            <xs:element name="Header"><xs:complexType><xs:sequence>
              <xs:element name="RequestID" type="xs:string" minOccurs="0"/>
              <xs:element name="ResponseID" type="xs:string" minOccurs="0"/>
              <xs:element name="ResponseCode"><xs:simpleType><xs:restriction base="xs:string">
                <xs:pattern value="[IEWN][0-9]{{1,3}}"/></xs:restriction></xs:simpleType></xs:element>
              <xs:any processContents="skip" minOccurs="0" maxOccurs="unbounded"/>
            </xs:sequence></xs:complexType></xs:element>
            <xs:any processContents="skip" maxOccurs="unbounded"/></xs:sequence>
            <xs:anyAttribute processContents="skip"/></xs:complexType></xs:element>
        </xs:schema>"""
    )
    db = tmp_path / "x.duckdb"
    cli("ingest", str(_parties_devices(tmp_path)), "--db", str(db))
    log = tmp_path / "log.jsonl"
    bogus = response_xml(rid, "2.2", "I0", t0).replace(">I0<", ">BOGUS<")
    log.write_text(
        _line(request_xml(rid, "2.2", None), "2026-10-08T12:00:00.000Z")
        + "\n"
        + _line(bogus, "2026-10-08T12:00:01.000Z")
        + "\n"
    )
    cli("ingest-duis", str(log), "--db", str(db), "--xsd", str(xsd))
    with Store(db) as store:
        (q,) = store.rows("SELECT row_number, reason FROM quarantine WHERE table_name = 'duis'")
    assert q["row_number"] == 2 and q["reason"].startswith("not valid against the DUIS schema")
    assert "BOGUS" in q["reason"] or "pattern" in q["reason"]


def test_non_device_requests_to_the_dcc_are_kept_apart_and_unknown_devices_quarantined(tmp_path):
    """Issue 33, item 4: an 8.2 and a 12.2 addressed to the DCC's EUI-64 (in no devices extract)
    are SRVs the methodology marks `non_device`: they pair with their responses and are kept in
    `duis_non_device` with their TRT, not quarantined. A 4.1.1 (a device SRV) to the same unknown
    EUI-64 is quarantined. An 11.1 (non-device) to a known device is that device's request."""
    db = tmp_path / "x.duckdb"
    cli("ingest", str(_parties_devices(tmp_path)), "--db", str(db))
    dcc = "00-00-00-00-00-00-00-DC"
    inv, pre, read, fw = f"{USER}:{dcc}:1", f"{USER}:{dcc}:2", f"{USER}:{dcc}:3", f"{USER}:{DEV}:4"
    t0 = dt.datetime(2026, 10, 7, 8, 0)

    def at(s: float) -> str:
        return (t0 + dt.timedelta(seconds=s)).isoformat(timespec="milliseconds") + "Z"

    lines = [
        _line(request_xml(inv, "8.2", None), at(0)),
        _line(response_xml(inv, "8.2", "I0", t0 + dt.timedelta(seconds=4)), at(4)),
        _line(request_xml(pre, "12.2", None), at(1)),
        _line(request_xml(read, "4.1.1", None), at(2)),
        _line(response_xml(read, "4.1.1", "I0", t0 + dt.timedelta(seconds=5)), at(5)),
        _line(request_xml(fw, "11.1", None), at(3)),
        _line(response_xml(fw, "11.1", "I99", t0 + dt.timedelta(seconds=6)), at(6)),
    ]
    log = tmp_path / "log.jsonl"
    log.write_text("\n".join(lines) + "\n")
    out = cli("ingest-duis", str(log), "--db", str(db))
    assert "2 non-device request(s) addressed to the DCC itself" in out
    with Store(db) as store:
        nd = {r["request_id"]: r for r in store.rows("SELECT * FROM duis_non_device")}
        stored = {r["request_id"]: r for r in store.rows("SELECT * FROM service_requests")}
        q = store.rows("SELECT row_number, reason FROM quarantine")
    assert set(nd) == {inv, pre}
    assert nd[inv]["response_code"] == "I0" and nd[inv]["responded_at"] == t0 + dt.timedelta(seconds=4)
    assert nd[inv]["trt_s"] == 30 and nd[inv]["party_id"] == "SUP-A" and not nd[inv]["still_open"]
    assert nd[pre]["response_code"] is None and nd[pre]["still_open"]  # within its TRT at the cut-off
    # The 11.1 has only its I99 so far: open (no response) until its TRT and grace have passed.
    assert set(stored) == {fw} and stored[fw]["region"] == "North" and stored[fw]["response_code"] is None
    # The 4.1.1 to an unknown device, at its line of the log (line 4), until `devices` names it.
    assert [(r["row_number"], r["reason"]) for r in q] == [
        (4, f"target {dcc} is in no devices extract (load `devices` first; 4.1.1 is not a non-device SRV)")
    ]
    with Store(db) as store:
        assert quarantine.of_request(store, read)
    again = cli("ingest-duis", str(log), "--db", str(db))
    assert "already loaded" in again
    with Store(db) as store:
        assert store.count("quarantine") == 1 and store.count("duis_non_device") == 2
    # The devices extract that names the target arrives: the next load writes the request.
    later = tmp_path / "later" / "devices"
    later.mkdir(parents=True)
    (later / "d2.csv").write_text(
        (tmp_path / "side" / "devices" / "d.csv").read_text().replace(DEV, dcc).replace("10-31", "11-01")
    )
    cli("ingest", str(later.parent), "--db", str(db))
    cli("ingest-duis", str(log), "--db", str(db))
    with Store(db) as store:
        (row,) = store.rows("SELECT response_code, region FROM service_requests WHERE request_id = ?", [read])
        assert store.count("duis_non_device") == 0  # the target is now a device: its requests too
    assert row == {"response_code": "I0", "region": "North"}


def test_party_log_pairs_in_the_store_overlaps_once_and_a_reused_request_id_is_bad(tmp_path):
    """The party-side loader (issue 33, item 3) stages and pairs in DuckDB like `ingest-duis`:
    the same messages in two overlapping logs count once; a second, different request with a
    RequestID already used is malformed; the final response is the last that is not an I99;
    another party's request is counted apart; loading again replaces, never doubles."""
    from opmetrics.ingest.duis_pairing import load_party_logs

    db = tmp_path / "x.duckdb"
    cli("ingest", str(_parties_devices(tmp_path)), "--db", str(db))
    fut, plain = f"{USER}:{DEV}:1", f"{USER}:{DEV}:2"
    other = f"90-B3-D5-1F-30-01-00-FF:{DEV}:3"
    t0 = dt.datetime(2026, 10, 8, 12, 0)

    def at(s: float) -> str:
        return (t0 + dt.timedelta(seconds=s)).isoformat(timespec="milliseconds") + "Z"

    day1 = [
        _line(request_xml(fut, "1.1.1", t0 + dt.timedelta(hours=1)), at(0)),
        _line(response_xml(fut, "1.1.1", "I99", t0 + dt.timedelta(seconds=1)), at(1)),
        _line(request_xml(plain, "2.2", None), at(2)),
        _line(request_xml(other, "2.2", None), at(3)),
    ]
    day2 = [
        *day1[2:3],  # the overlap: the same message again
        _line(response_xml(plain, "2.2", "I0", t0 + dt.timedelta(seconds=6)), at(6)),
        _line(response_xml(fut, "1.1.1", "I0", t0 + dt.timedelta(hours=1, seconds=3)), at(3603)),
        _line(request_xml(plain, "4.1.1", None), at(7000)),  # RequestID reused by another request
    ]
    logs = [tmp_path / "d1.jsonl", tmp_path / "d2.jsonl"]
    for path, lines in zip(logs, (day1, day2), strict=True):
        path.write_text("\n".join(lines) + "\n")
    m = load_methodology()
    with Store(db) as store:
        assert load_party_logs(store, m, logs, "SUP-A") == (2, 1, 1)
        first = store.rows("SELECT * FROM party_rtt ORDER BY request_id")
        assert load_party_logs(store, m, logs, "SUP-A") == (2, 1, 1)
        assert store.rows("SELECT * FROM party_rtt ORDER BY request_id") == first
    got = {r["request_id"]: r for r in first}
    assert got[fut]["response_code"] == "I0" and got[fut]["received_at"] == t0 + dt.timedelta(seconds=3603)
    assert got[fut]["mode"] == "future-dated" and got[fut]["smets"] == 2
    assert got[plain]["srv"] == "2.2" and got[plain]["received_at"] == t0 + dt.timedelta(seconds=6)


def test_a_duis_load_runs_under_its_own_lower_memory_limit_which_the_loads_inside_keep(tmp_path, monkeypatch):
    """Issue 33, item 3: DUIS logs load under `DUIS_MEMORY_LIMIT` (DuckDB spills beyond it, so
    memory stays flat however long the log); the file loads inside `ingest_duis` keep that lower
    limit rather than their own higher one; the store's limit is back afterwards, also when a load
    fails."""
    from opmetrics.ingest import duis_pairing, load

    monkeypatch.setenv("OPMETRICS_MEMORY_LIMIT", "3GB")
    monkeypatch.setattr(duis_pairing, "DUIS_MEMORY_LIMIT", "300MB")
    monkeypatch.setattr(load, "INGEST_MEMORY_LIMIT", "1GB")
    db = tmp_path / "x.duckdb"
    cli("ingest", str(_parties_devices(tmp_path)), "--db", str(db))
    log = tmp_path / "day.jsonl"
    log.write_text(_line(request_xml(f"{USER}:{DEV}:1", "2.2", None)) + "\n")
    with Store(db) as store:
        own, duis_limit, seen = limit_watch(store, "300MB", monkeypatch)
        res = ingest_duis(store, load_methodology(), [log], tmp_path / "stage")
        assert [r.table for r in res.loads] == ["service_requests"] and seen == [duis_limit]
        assert memory_limit(store.con) == own
        monkeypatch.setattr(duis_pairing, "_emit", lambda *a: 1 / 0)
        log2 = tmp_path / "day2.jsonl"
        log2.write_text(_line(request_xml(f"{USER}:{DEV}:2", "2.2", None)) + "\n")
        with pytest.raises(ZeroDivisionError):
            ingest_duis(store, load_methodology(), [log2], tmp_path / "stage")
        assert memory_limit(store.con) == own


@pytest.mark.parametrize(
    "value",
    [
        "2026-10-05T10:00:00.123Z",
        "2026-10-05T10:00:00.123999Z",  # floored to the millisecond, not rounded
        "2026-10-05T10:00:00Z",
        "2026-03-29T00:59:59.999Z",  # UK clocks go forward at 01:00 UTC
        "2026-10-25T01:00:00.000Z",  # and back at 01:00 UTC
        "2026-10-25T01:30:00.250+01:00",
        "2026-10-05T10:00Z",
    ],
)
def test_a_z_time_reads_as_the_offset_form_would(value):
    """Capture and response times ending in Z take a shorter path (issue 33, speed): the same
    naive UTC time, floored to the millisecond, as reading them with the +00:00 offset."""
    from opmetrics.ingest.duis import _time

    t = dt.datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(dt.UTC).replace(tzinfo=None)
    assert _time(value) == t.replace(microsecond=t.microsecond // 1000 * 1000)
    assert _time(value).microsecond % 1000 == 0
    if value.endswith("Z"):  # an offset before the Z is no time
        with pytest.raises(ValueError):
            _time(value.replace("Z", "+01:00Z"))
