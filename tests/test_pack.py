"""The PMR pack (issue 6): PDF, invariants, anonymised and per-party editions, commentary,
determinism and re-issue. Uses one tiny simulated month computed once for the module."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import re
import shutil
import zipfile
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from pypdf import PdfReader
from typer.testing import CliRunner

from opmetrics.cli import app
from opmetrics.engine.serving import current
from opmetrics.engine.store import Store
from opmetrics.ingest.load import load_file
from opmetrics.measures.run import StaleRunError, compute, latest_run
from opmetrics.methodology import load as load_methodology
from opmetrics.report.anonymise import Anonymiser
from opmetrics.report.events import incident_views, region_views
from opmetrics.report.figures import load_figures
from opmetrics.report.invariants import PackInvariantError, summary_agrees
from opmetrics.report.pack import build_pack

runner = CliRunner()
# A late top-up in the North, answered E21 (a failure within DCC control).
LATE_ROW = (
    "request_id,party_id,user_role,srv,mode,critical,device_id,device_type,smets,region,received_at,"
    "responded_at,response_code,report_status,dsp_attempts,quarantine_released_at\n"
    "90-B3-D5-1F-30-01-00-0A:00-DB-00-00-00-99-99-01:1,SUP-A,IS,2.2,on-demand,false,"
    "00-DB-00-00-00-99-99-01,ESME,2,North,2026-10-07T10:00:00Z,2026-10-07T10:00:40Z,E21,2,1,\n"
)
PERIOD = "2026-10"
PARTIES = [f"SUP-{c}" for c in "ABCDEFGHIJ"] + ["DNO-N", "DNO-C", "DNO-S"]


@pytest.fixture(scope="module")
def computed(tmp_path_factory):
    """A tiny simulated month, ingested and computed once; tests copy the database."""
    base = tmp_path_factory.mktemp("packbase")
    res = runner.invoke(app, ["simulate", "--scale", "tiny", "--out", str(base / "data")])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["ingest", str(base / "data"), "--db", str(base / "om.duckdb")])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["compute", "--period", PERIOD, "--db", str(base / "om.duckdb")])
    assert res.exit_code == 0, res.output
    return base


@pytest.fixture
def db(computed, tmp_path) -> Path:
    path = tmp_path / "om.duckdb"
    shutil.copy(computed / "om.duckdb", path)
    return path


@pytest.fixture(scope="module")
def meth():
    return load_methodology()


def all_text(folder: Path) -> dict[str, str]:
    """Every file's text: HTML/CSV/JSON/MD as is, XLSX parts unzipped, PDF text and metadata."""
    out = {}
    for p in folder.rglob("*"):
        if p.is_dir():
            continue
        if p.suffix == ".xlsx":
            with zipfile.ZipFile(p) as z:
                out[str(p)] = "".join(z.read(n).decode("utf-8", "replace") for n in z.namelist())
        elif p.suffix == ".pdf":
            r = PdfReader(p)
            out[str(p)] = "".join(pg.extract_text() for pg in r.pages) + str(r.metadata)
        else:
            out[str(p)] = p.read_text(encoding="utf-8")
    return out


def test_public_pack_pdf_opens_with_summary_and_names_no_party(db, tmp_path, meth):
    out = tmp_path / "pack"
    with Store(db) as store:
        res = build_pack(store, meth, PERIOD, out)
    assert res.pdf is not None and res.version == 1
    reader = PdfReader(res.pdf)
    first = reader.pages[0].extract_text()
    assert "Executive summary" in first and "Overall Service Availability" in first
    assert "Page 1 of" in first and len(reader.pages) > 20
    box = reader.pages[0].mediabox
    assert (round(float(box.width)), round(float(box.height))) == (595, 842)  # A4 in points
    contents = reader.pages[2].extract_text() + reader.pages[1].extract_text()
    assert "Contents" in contents and "Glossary" in contents  # the summary fits two pages
    names = {p.name for p in (out / "datafiles").iterdir()}
    assert {"prepayment.csv", "prepayment.xlsx", "cpm.xlsx", "league.csv"} <= names
    for path, text in all_text(out).items():
        for party in PARTIES:
            assert party not in text, (path, party)
    html = (out / "index.html").read_text()
    assert "League tables" in html and "Supplier A" in html and "Industry average" in html
    assert "commentary outstanding" in html.lower()
    summary = html.split('<section id="summary">')[1].split("</section>")[0]
    assert "Key events of the month: Unplanned outage of CSP North WAN (North) on Mon 12 Oct" in summary
    assert not any(p.id in summary for p in meth.processes if "_" in p.id)  # business names only
    assert 'id="diagnostics"' not in html  # a party's own diagnostics are in its edition only
    prepay = html.split('<section id="prepayment"')[1].split("</section>")[0]
    assert prepay.index("DCC proxy") < prepay.index("<h3>Measures")  # first in the section
    assert "Delivery to CHF/GPF" in prepay and "RTT without home network" in prepay
    assert "legs.csv" in names and "opr.csv" in names
    assert '<section id="opr"' in html
    # The OPSG summary paper beside the public pack: every standing SRV, the alerts, anomalies.
    paper = (out / "opsg-summary.html").read_text()
    assert (out / "opsg-summary.pdf").exists()
    for srv in [s for g in meth.opsg_summary.groups for s in g.srvs]:
        assert f'<td class="l">{srv}</td>' in paper, srv
    assert "Anomalies of the month" in paper and "Device alerts" in paper and "below the minimum" in paper


def test_party_edition_names_only_its_own_party(db, tmp_path, meth):
    out = tmp_path / "sup-c"
    with Store(db) as store:
        res = build_pack(store, meth, PERIOD, out, party="SUP-C")
    texts = all_text(out)
    assert any("SUP-C" in t for t in texts.values())
    for path, text in texts.items():
        for party in PARTIES:
            if party != "SUP-C":
                assert party not in text, (path, party)
                assert party not in path
    assert "edition for SUP-C" in PdfReader(res.pdf).metadata.title
    html = (out / "index.html").read_text()
    assert 'class="own"' in html
    league = html.split('<section id="league"')[1].split("</section>")[0]
    # Its own row named and marked in every table; no letter stands for it.
    assert league.count("SUP-C (you)") == league.count('class="own"') > 0
    section = html.split('<section id="diagnostics"')[1].split("</section>")[0]
    assert "What explains your gap" in section and "All business processes" in section
    assert "SUP-C: " in section and "Failures explained" in section
    assert "Your position against the industry" in section and " of " in section


def test_anonymous_letters_are_keyed_stable_per_period_and_not_by_size(meth):
    """Letters follow the HMAC of period|party under the key: recomputed here independently."""
    roles = {p: "Supplier" for p in PARTIES[:10]}
    a = Anonymiser(b"k1", PERIOD, roles)
    expected = sorted(
        roles, key=lambda p: hmac.new(b"k1", f"{PERIOD}|{p}".encode(), hashlib.sha256).hexdigest()
    )
    assert [a.name(p) for p in expected] == [f"Supplier {c}" for c in "ABCDEFGHIJ"]
    assert Anonymiser(b"k1", PERIOD, roles).names == a.names  # stable
    assert Anonymiser(b"k2", PERIOD, roles).names != a.names  # keyed
    assert Anonymiser(b"k1", "2026-11", roles).names != a.names  # changes each period
    assert a.scrub("SUP-A and SUP-J") == f"{a.name('SUP-A')} and {a.name('SUP-J')}"
    with pytest.raises(ValueError, match="sent no Service Requests"):
        Anonymiser(b"k1", PERIOD, roles, own="SUP-Z")


def issues_recorded(store: Store) -> int:
    return store.count("pack_issues") if store.has_table("pack_issues") else 0


def _tamper_then_build(db: Path, meth, tmp_path: Path, sql: str) -> str:
    with Store(db) as store:
        store.con.execute(sql)
        out = tmp_path / "bad"
        with pytest.raises(PackInvariantError) as e:
            build_pack(store, meth, PERIOD, out, pdf=False)
        assert issues_recorded(store) == 0  # no number taken
    assert not out.exists() and not list(tmp_path.glob(".bad.building-*"))
    return str(e.value)


def test_invariant_status_follows_value_target_and_minimum(db, tmp_path, meth):
    msg = _tamper_then_build(
        db, meth, tmp_path,
        "UPDATE cpm SET status = CASE WHEN status = 'target met' THEN 'below minimum' ELSE 'target met' END "
        "WHERE cpm = 'CPM2' AND segment = 'All'",
    )  # fmt: skip
    assert "CPM2 all All: status '" in msg


def test_invariant_percentage_equals_its_counts(db, tmp_path, meth):
    msg = _tamper_then_build(
        db, meth, tmp_path,
        "UPDATE outcomes SET numerator = numerator - 1 WHERE rowid = (SELECT min(rowid) FROM outcomes "
        "WHERE unit = '%' AND numerator > 0 AND denominator > 0 AND breakdown = 'all')",
    )  # fmt: skip
    assert "% but" in msg
    msg = _tamper_then_build(
        db, meth, tmp_path,
        "UPDATE rsvp SET within_trt_pct = within_trt_pct - 0.01 WHERE scope = 'srv' AND key = '4.1.1' "
        "AND rate = 'month' AND segment = 'All'",
    )  # fmt: skip
    assert "rsvp srv 4.1.1 month  All: within_trt_pct" in msg


def test_invariant_overall_availability_composes_from_its_services(db, tmp_path, meth):
    msg = _tamper_then_build(
        db, meth, tmp_path, "UPDATE availability SET pct = pct - 0.2 WHERE view = 'overall'"
    )
    assert "is not the mean of its Services" in msg


def test_invariant_a_region_with_unplanned_minutes_is_below_100(db, tmp_path, meth):
    with Store(db) as store:
        hit = store.rows(
            "SELECT subject, region FROM availability WHERE view = 'service' AND region <> 'All' "
            "AND band = 'all' AND unplanned_min > 0 LIMIT 1"
        )
    assert hit, "the tiny month has a regional outage"
    msg = _tamper_then_build(
        db, meth, tmp_path,
        f"UPDATE availability SET pct = 100 WHERE view = 'service' AND band = 'all' "
        f"AND subject = '{hit[0]['subject']}' AND region = '{hit[0]['region']}'",
    )  # fmt: skip
    assert f"{hit[0]['subject']} {hit[0]['region']} all : " in msg and "unplanned minutes but 100" in msg


def test_invariant_the_header_adds_up(db, tmp_path, meth):
    with Store(db) as store:
        run = latest_run(store, PERIOD)
    assert run.requests_included + sum(run.exclusions().values()) == run.requests_in_period
    msg = _tamper_then_build(db, meth, tmp_path, "UPDATE runs SET requests_included = requests_included - 1")
    assert "excluded != " in msg and "but the SRV figures count" in msg


def test_invariant_missing_input_only_when_the_input_is_absent(db, tmp_path, meth):
    msg = _tamper_then_build(
        db, meth, tmp_path,
        "UPDATE cpm SET status = 'missing input', note = 'missing input: no incidents data loaded' "
        "WHERE cpm = 'CPM4'",
    )  # fmt: skip
    assert "CPM4 " in msg and "'missing input' (no incidents) but" in msg


def test_stale_results_are_refused_until_computed(db, tmp_path, meth):
    """Inputs loaded after `compute` make the stored results stale: `report` refuses them (the
    old figures would go out as a fresh issue), `report --compute` computes first."""
    late = tmp_path / "late.csv"
    late.write_text(LATE_ROW, encoding="utf-8")
    with Store(db) as store:
        assert load_file(store, late, "service_requests").accepted == 1
        with pytest.raises(StaleRunError, match="input data changed"):
            build_pack(store, meth, PERIOD, tmp_path / "p", pdf=False)
    assert not (tmp_path / "p").exists()
    res = runner.invoke(app, ["report", "--period", PERIOD, "--db", str(db), "--out", str(tmp_path / "p"),
                              "--no-pdf"])  # fmt: skip
    assert res.exit_code != 0 and "stale" in res.output and "--compute" in res.output
    published = current(db)  # a refused report publishes nothing for `serve`
    res = runner.invoke(app, ["report", "--period", PERIOD, "--db", str(db), "--out", str(tmp_path / "p"),
                              "--no-pdf", "--compute"])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert (tmp_path / "p" / "index.html").exists()
    # ... the new run does: a running `serve` moves to it.
    assert current(db) != published
    with Store(db, read_only=True) as store, Store(current(db), read_only=True) as served:
        runs = "SELECT run_id FROM runs ORDER BY run_id"
        assert served.rows(runs) == store.rows(runs)


def test_a_refused_edition_leaves_no_file_and_takes_no_issue_number(db, tmp_path, meth):
    """The leak guard runs before anything is moved into place: commentary naming another
    party refuses SUP-C's edition, and the next good build is still issue 1."""
    notes = tmp_path / "c.md"
    notes.write_text("## CPM1\nAs SUP-D told us.\n", encoding="utf-8")
    out = tmp_path / "sup-c"
    with Store(db) as store:
        with pytest.raises(ValueError, match="names another party"):
            build_pack(store, meth, PERIOD, out, party="SUP-C", commentary_file=notes, pdf=False)
        left = [p.name for p in tmp_path.iterdir() if not p.name.startswith("om.duckdb")]
        assert not out.exists() and left == ["c.md"]
        assert issues_recorded(store) == 0
        assert build_pack(store, meth, PERIOD, out, party="SUP-C", pdf=False).version == 1


def test_invariant_breakdowns_add_up(db, tmp_path, meth):
    msg = _tamper_then_build(
        db, meth, tmp_path,
        "UPDATE rsvp SET volume = volume + 1 WHERE scope = 'process' AND key = 'prepayment' "
        "AND rate = 'month' AND segment = 'North'",
    )  # fmt: skip
    assert "rsvp process prepayment month : volume by region" in msg


def test_invariant_percentages_within_0_100(db, tmp_path, meth):
    msg = _tamper_then_build(
        db, meth, tmp_path, "UPDATE cpm SET pct = 227 WHERE cpm = 'CPM2' AND segment = 'All'"
    )
    assert "CPM2 all All: 227.00 %" in msg


def test_invariant_outage_never_shows_100_percent(db, tmp_path, meth):
    msg = _tamper_then_build(
        db, meth, tmp_path,
        "UPDATE availability SET pct = 100, unplanned_min = 0 WHERE subject = 'Self-Service Interface'",
    )  # fmt: skip
    assert "Self-Service Interface: outage" in msg and "shows 100 %" in msg


def test_invariant_no_events_only_when_none(db, tmp_path, meth):
    msg = _tamper_then_build(
        db, meth, tmp_path, "UPDATE cpm SET status = 'No Events' WHERE cpm = 'CPM1' AND segment = 'North'"
    )
    assert "CPM1 all North: 'No Events' with" in msg


def test_invariant_exclusions_cite_an_applied_exception(db, tmp_path, meth):
    """An exception on the register excludes records; if the run does not record it as applied
    (here: the run row edited), the exclusion cites no applied exception and the build fails."""
    from opmetrics.engine import pmel

    with Store(db) as store:
        pmel.add(
            store, exception_id="PMEL-9", reason="test window", applies_to="service_requests",
            recorded_by="tester", window_start="2026-10-05T00:00:00Z", window_end="2026-10-05T06:00:00Z",
        )  # fmt: skip
        compute(store, meth, PERIOD, as_of=latest_run(store, PERIOD).as_of)
    msg = _tamper_then_build(db, meth, tmp_path, "UPDATE runs SET pmel_applied = ''")
    assert "PMEL-9" in msg and "cites no applied exception" in msg


def test_invariant_summary_agrees_with_detail():
    class F:
        cpm = [{"cpm": "CPM1", "key": "all", "segment": "All", "instance": True, "status": "below target"}]
        availability = [{"view": "overall", "pct": 99.5}]

    good = {"missed": F.cpm, "overall_pct": 99.5}
    assert summary_agrees(good, F) == []
    assert summary_agrees({"missed": [], "overall_pct": 99.5}, F)
    assert summary_agrees({"missed": F.cpm, "overall_pct": 100.0}, F)


def test_commentary_merged_and_missing_flagged(db, tmp_path, meth):
    notes = tmp_path / "c.md"
    notes.write_text("# October\n\n## CPM1\nNorth WAN outage on the **12th**.\n", encoding="utf-8")
    with Store(db) as store:
        res = build_pack(store, meth, PERIOD, tmp_path / "p", commentary_file=notes, pdf=False)
    html = res.html.read_text()
    assert "North WAN outage on the <strong>12th</strong>." in html
    assert not any(w.startswith("commentary outstanding: CPM1 ") for w in res.warnings)
    assert any("CPM6A" in w for w in res.warnings)  # other misses still flagged
    bad = tmp_path / "bad.md"
    bad.write_text("stray text\n## CPM1\nx\n", encoding="utf-8")
    with Store(db) as store, pytest.raises(ValueError, match="line 1: text before the first"):
        build_pack(store, meth, PERIOD, tmp_path / "q", commentary_file=bad, pdf=False)


def test_deterministic_output_and_reissue_with_change_summary(db, tmp_path, meth, computed):
    """Recomputing the same inputs gives byte-identical CSV and JSON and the same issue; a late
    record makes issue 2, keeps issue 1's figures and lists what changed and why."""
    a, b = tmp_path / "a", tmp_path / "b"
    with Store(db) as store:
        as_of = latest_run(store, PERIOD).as_of
        build_pack(store, meth, PERIOD, a, pdf=False)
        compute(store, meth, PERIOD, as_of=as_of)
        res = build_pack(store, meth, PERIOD, b, pdf=False)
    assert res.version == 1
    for rel in ["figures.json", "datafiles/prepayment.csv", "datafiles/cpm.csv", "datafiles/league.csv"]:
        assert (a / rel).read_bytes() == (b / rel).read_bytes(), rel

    late = tmp_path / "late.csv"
    late.write_text(LATE_ROW, encoding="utf-8")
    with Store(db) as store:
        assert load_file(store, late, "service_requests").accepted == 1
        compute(store, meth, PERIOD, as_of=as_of)
        res = build_pack(store, meth, PERIOD, b, pdf=False)
    assert res.version == 2 and res.changed > 0
    changes = (b / "CHANGES.md").read_text()
    assert "input data changed" in changes and "report time" not in changes  # the same as_of
    before = json.loads((a / "figures.json").read_text())["rsvp"]
    vol = next(
        r["volume"] for r in before
        if (r["scope"], r["key"], r["rate"], r["segment"]) == ("process", "prepayment", "month", "North")
    )  # fmt: skip
    name = meth.process("prepayment").name
    assert f"| RSVP {name} | North, month | volume | {vol:,} | {vol + 1:,} |" in changes
    html = (b / "index.html").read_text()
    section = html.split('<section id="changes">')[1].split("</section>")[0]
    assert "Changes since issue 1" in section and "input data changed" in section
    assert (
        f'<td class="l">RSVP {name}</td><td class="l">North, month</td><td class="l">volume</td>'
        f"<td>{vol:,}</td><td>{vol + 1:,}</td>" in section
    )
    assert "issue 2" in (b / "opsg-summary.html").read_text()
    assert (b / "archive" / "issue-1" / "figures.json").read_bytes() == (a / "figures.json").read_bytes()

    # A correction: an answered top-up turns out to have failed. As new data it is refused (a
    # duplicate); as a corrections file it replaces the record, which is kept in `superseded`.
    with Store(db) as store:
        victim = store.rows(
            "SELECT * EXCLUDE (report_date, _file_id, _row) FROM service_requests "
            "WHERE srv = '2.2' AND response_code = 'I0' AND region = 'North' ORDER BY request_id LIMIT 1"
        )[0]
    fixed = tmp_path / "fix.csv"
    cells = {**victim, "response_code": "E21", "quarantine_released_at": ""}
    cells = {
        k: (v.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z" if hasattr(v, "strftime") else str(v).lower()
            if isinstance(v, bool) else v)
        for k, v in cells.items()
    }  # fmt: skip
    fixed.write_text(",".join(cells) + "\n" + ",".join(str(v) for v in cells.values()) + "\n")
    with Store(db) as store:
        refused = load_file(store, fixed, "service_requests")
        assert (
            refused.accepted == 0
            and "load a corrections file"
            in store.rows("SELECT reason FROM quarantine WHERE file_id = ?", [refused.file_id])[0]["reason"]
        )
    fixed2 = tmp_path / "fix2.csv"  # the same rows, a different file (the refused one is recorded)
    fixed2.write_text(fixed.read_text() + "\n")
    res = runner.invoke(
        app, ["ingest", str(fixed2), "--db", str(db), "--corrections", "--table", "service_requests"]
    )
    assert res.exit_code == 0 and "1 rows accepted" in res.output.replace(",", ""), res.output
    res = runner.invoke(
        app, ["ingest", str(fixed2), "--db", str(db), "--corrections", "--table", "service_requests"]
    )
    assert "already loaded" in res.output  # idempotent
    res = runner.invoke(app, ["compute", "--period", PERIOD, "--db", str(db)], env={"COLUMNS": "200"})
    assert res.exit_code == 0 and "pack was published from run" in res.output, res.output
    with Store(db) as store:
        now = store.rows(
            "SELECT response_code FROM service_requests WHERE request_id = ?", [victim["request_id"]]
        )
        assert now == [{"response_code": "E21"}]  # one record, corrected, not two
        old = store.rows(
            "SELECT old_record, old_row FROM superseded WHERE record_key = ?", [victim["request_id"]]
        )
        assert len(old) == 1 and '"response_code":"I0"' in old[0]["old_record"]
        compute(store, meth, PERIOD, as_of=as_of)
        res = build_pack(store, meth, PERIOD, b, pdf=False)
    assert res.version == 3
    changes = (b / "CHANGES.md").read_text()
    assert "input data changed" in changes and "prepayment" in changes
    assert (b / "archive" / "issue-2" / "figures.json").exists()


def test_datafile_cells_never_run_as_formulas(tmp_path):
    """A hostile value from the input (a note, a party id) is written as text in CSV, with a
    leading apostrophe, and as a plain string in XLSX (never a formula); numbers are untouched."""
    from opmetrics.report.datafiles import write_table

    rows = [
        {"key": '=HYPERLINK("http://evil","x")', "n": -3.5},
        {"key": "+1+1", "n": 2},
        {"key": "@SUM(A1)", "n": 0},
        {"key": "-2", "n": 1},
        {"key": "SUP-A", "n": 4},
    ]
    write_table(tmp_path / "t", ["key", "n"], rows, [])
    lines = (tmp_path / "t.csv").read_text().splitlines()
    assert lines[1] == '"\'=HYPERLINK(""http://evil"",""x"")",-3.5'
    assert [ln.split(",")[0] for ln in lines[2:]] == ["'+1+1", "'@SUM(A1)", "'-2", "SUP-A"]
    with zipfile.ZipFile(tmp_path / "t.xlsx") as z:
        sheet = z.read("xl/worksheets/sheet1.xml").decode()
    assert "<f>" not in sheet  # no formula cells at all


def test_diagnostics_name_each_planted_effect_first_for_its_party(computed):
    """The simulator plants a poor device set (SUP-D owns most), an outdated firmware (SUP-F)
    and SUP-E's orchestration; the diagnostics put each first for that party."""
    with Store(computed / "om.duckdb") as store:
        top = {
            (r["process_id"], r["party_id"]): r
            for r in store.rows("SELECT * FROM diagnostics WHERE rank = 1 AND period = ?", [PERIOD])
        }
    for process in ("all", "prepayment"):
        assert (top[(process, "SUP-D")]["factor"], top[(process, "SUP-D")]["value"]) == (
            "meter and hub", "CH-C · Secure Europa G4",
        )  # fmt: skip
        assert (top[(process, "SUP-F")]["factor"], top[(process, "SUP-F")]["value"]) == ("firmware", "1.1.0")
        assert top[(process, "SUP-E")]["factor"] == "orchestration"
    d = top[("all", "SUP-D")]
    assert d["factor_party_pct"] < d["party_pct"] - 10  # the set is far worse than the party overall
    assert "other parties' requests on it succeed" in d["evidence"]


def test_summary_paper_outlying_days_by_hand():
    """Days 98, 98, 97, 99, 98, 97, 98 and 90 %: median 98, deviations 0 0 1 1 0 1 0 8, MAD 0.5;
    at 6 MADs the bar is 95 %: only the 90 % day (16 MADs below) is an anomaly."""
    import datetime as dt

    from opmetrics.report.summary_paper import daily_anomalies

    vals = [98, 98, 97, 99, 98, 97, 98, 90]
    days = [
        {"day": dt.date(2026, 10, i + 1), "delivered_within_trt": v, "trt_denominator": 100, "volume": 100}
        for i, v in enumerate(vals)
    ]
    got = daily_anomalies(days, 6.0, 30)
    assert [(a["day"].day, a["mads"], a["short"]) for a in got] == [(8, 16.0, 8.0)]  # 8 requests short
    assert daily_anomalies(days, 6.0, 101) == []  # too few requests on every day


def test_summary_paper_puts_the_planted_outages_first(db, tmp_path, meth):
    """The simulated month plants unplanned outages (CSP North WAN on the 12th, SMETS1 on the
    15th, DSP Core on the 26th, SSI Portal on the 8th): they head the anomalies, longest first;
    outlying days follow, the most requests short first; no internal process id is shown."""
    with Store(db) as store:
        build_pack(store, meth, PERIOD, tmp_path / "p", pdf=False)
        planted = store.rows(
            "SELECT outage_id, subsystem, epoch(end_at) - epoch(start_at) AS secs FROM run_outages "
            "WHERE NOT planned ORDER BY secs DESC"
        )
    html = (tmp_path / "p" / "opsg-summary.html").read_text()
    items = html.split('<ul class="anomalies">')[1].split("</ul>")[0].split("<li>")[1:]
    assert len(planted) >= 4
    for item, o in zip(items, planted, strict=False):
        assert item.startswith(f"Unplanned outage of {o['subsystem']}"), (item, o)
    assert "CSP North WAN" in items[0] and "on Mon 12 Oct 14:05-15:40 UK, 1 h 35 min" in items[0]
    short = [
        int(re.search(r"about ([\d,]+) requests short", i)[1].replace(",", ""))
        for i in items
        if i.startswith("SRV ")
    ]
    assert short == sorted(short, reverse=True)
    assert not any(p.id in html for p in meth.processes if "_" in p.id)


def test_opr_view_scores_a_month_without_a_value_as_zero(computed, meth):
    """October was computed; November and December were not: each OPR cell shows October's CPM
    value and scores 0 for the two later months (Ofgem's rule), and the months' mean scores say so."""
    from opmetrics.report.opr import opr_view

    with Store(computed / "om.duckdb") as store:
        cpm = {
            (r["cpm"], r["key"], r["segment"]): r["pct"]
            for r in store.rows("SELECT * FROM cpm WHERE period = ? AND instance", [PERIOD])
        }
        v = opr_view(store, meth, "2026-12")
    assert v["months"] == ["2026-10", "2026-11", "2026-12"]
    keys = {(r["cpm"], r["key"], r["segment"]) for r in v["rows"]}
    assert ("CPM6A", "prepayment", "SMETS1") in keys and ("CPM6A", "install_commission", "North") in keys
    assert all(k[0] == "CPM6" or k[1] in ("prepayment", "install_commission") for k in keys)
    for r in v["rows"]:
        october, november, december = r["values"]
        assert october["reported"] and october["score"] == cpm[(r["cpm"], r["key"], r["segment"])]
        assert (november["reported"], november["score"], december["score"]) == (False, 0, 0)
    assert v["unreported"] == 2 * len(v["rows"]) and v["month_score"]["2026-11"] == 0


def test_the_pack_shows_what_the_run_stored_not_the_input_tables(db, tmp_path, meth):
    """Emptying the input tables behind the store's back (its file register untouched) changes
    nothing in a rebuilt pack: incidents, outages, alert counts, party letters and data quality
    come from the run, so one issue always reads the same."""
    a, b = tmp_path / "a", tmp_path / "b"
    with Store(db) as store:
        build_pack(store, meth, PERIOD, a, pdf=False)
        assert store.count("run_outages") > 0
        incident = store.rows("SELECT incident_id FROM run_incidents WHERE category <= 2 LIMIT 1")[0][
            "incident_id"
        ]
        for t in ("incidents", "outages", "alerts", "service_requests", "quarantine"):
            store.con.execute(f"DELETE FROM {t}")
        res = build_pack(store, meth, PERIOD, b, pdf=False)
    assert res.version == 1
    for rel in ("index.html", "opsg-summary.html", "figures.json", "datafiles/league.csv"):
        assert (a / rel).read_bytes() == (b / rel).read_bytes(), rel
    section = (b / "index.html").read_text().split('<section id="incidents">')[1].split("</section>")[0]
    assert f"<td>{incident}</td>" in section


def test_each_major_incident_hour_by_hour_and_each_region_with_an_outage_day_by_day(computed, meth):
    """Issue 32, item 8: one intraday view per Category 1/2 incident of the month and one daily
    view per region with an unplanned outage of its own, both checked against the input tables
    (read here independently); the hourly counts hold every included request once."""
    with Store(computed / "om.duckdb", read_only=True) as store:
        f = load_figures(store, meth, PERIOD)
        majors = store.rows(
            "SELECT incident_id, region, raised_at FROM incidents WHERE category <= 2 "
            "AND report_date BETWEEN ? AND ? ORDER BY report_date, incident_id",
            [f.first, f.last],
        )
        regional = store.rows(
            "SELECT region, min(start_at) AS start_at FROM outages WHERE NOT planned AND region IS NOT NULL "
            "AND start_at < ? AND end_at > ? GROUP BY region ORDER BY region",
            [f.end_utc, f.first_utc],
        )
        raw = {
            (r["region"], r["hour"]): r["n"]
            for r in store.rows(
                "SELECT region, date_trunc('hour', received_at) AS hour, count(*) AS n "
                "FROM service_requests GROUP BY ALL"
            )
        }
    run = f.run
    assert sum(r["requests"] for r in f.hourly) == run.requests_included
    excluded = run.requests_in_period - run.requests_included
    incidents = incident_views(f, meth)
    assert [v["incident"]["incident_id"] for v in incidents] == [i["incident_id"] for i in majors]
    assert majors and all(v["chart"].startswith("<svg") for v in incidents)
    zone = ZoneInfo(meth.report_timezone)
    for v, i in zip(incidents, majors, strict=True):
        raised = i["raised_at"].replace(tzinfo=dt.UTC).astimezone(zone).replace(tzinfo=None)
        hours = [h for h, *_ in v["hours"]]
        assert hours[0] <= raised - dt.timedelta(hours=6) < hours[0] + dt.timedelta(hours=1)
        assert all(b - a == dt.timedelta(hours=1) for a, b in zip(hours, hours[1:], strict=False))
        if i["region"] in ("North", "Central", "South", "SMETS1"):
            utc = i["raised_at"].replace(minute=0, second=0, microsecond=0)
            at = next(x for x in v["hours"] if x[0] == raised.replace(minute=0, second=0, microsecond=0))
            assert raw.get((i["region"], utc), 0) - excluded <= at[1] <= raw.get((i["region"], utc), 0)
    regions = region_views(f, meth)
    assert regional  # the simulated month plants regional outages (North, SMETS1)
    assert [v["region"] for v in regions] == sorted(
        (r["region"] for r in regional), key=["North", "Central", "South", "SMETS1"].index
    )
    for v, o in zip(
        regions,
        sorted(regional, key=lambda r: ["North", "Central", "South", "SMETS1"].index(r["region"])),
        strict=True,
    ):
        day = o["start_at"].replace(tzinfo=dt.UTC).astimezone(zone).day
        assert day in v["days"]
