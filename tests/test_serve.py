"""The web app (issue 7): authorisation matrix over every endpoint and role, no other party's
identity in any response to a party user, sessions and lock-out, downloads, the OpenAPI spec
under schemathesis, and a real browser (Playwright + Debian's chromium) walking the drill-down."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import threading
import time
from pathlib import Path

import pytest
import schemathesis
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings
from typer.testing import CliRunner

from opmetrics.cli import app as cli
from opmetrics.engine.audit import AuditLog, audit_path
from opmetrics.engine.store import Store
from opmetrics.methodology import load as load_methodology
from opmetrics.report.anonymise import league_key
from opmetrics.serve.app import create_app, session_secret, view_routes
from opmetrics.serve.auth import User, add_user
from opmetrics.serve.data import DataService

runner = CliRunner()
PERIOD = "2026-10"
OTHERS = [f"SUP-{c}" for c in "BCDEFGHIJ"] + ["DNO-N", "DNO-C", "DNO-S"]
PASSWORDS = {"dcc": "dcc-password-0001", "panel": "panel-password-01", "party": "party-password-01"}
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """A tiny computed month with a report pack and one user per role."""
    base = tmp_path_factory.mktemp("site")
    db = base / "om.duckdb"
    for args in (
        ["simulate", "--scale", "tiny", "--out", str(base / "data")],
        ["ingest", str(base / "data"), "--db", str(db)],
        ["compute", "--period", PERIOD, "--db", str(db)],
        ["report", "--period", PERIOD, "--db", str(db), "--out", str(base / "report"), "--no-pdf"],
    ):
        res = runner.invoke(cli, args)
        assert res.exit_code == 0, res.output
    tokens = {}
    with Store(db) as store:
        tokens["dcc"] = add_user(store, "dcc", "dcc", PASSWORDS["dcc"])
        tokens["panel"] = add_user(store, "panel", "panel", PASSWORDS["panel"])
        tokens["party"] = add_user(store, "supa", "party", PASSWORDS["party"], "SUP-A")
        add_user(store, "locktest", "panel", PASSWORDS["panel"])
        secret = session_secret(store)
        league_key(store)
    store = Store(db, read_only=True)
    application = create_app(
        store,
        load_methodology(),
        base / "report",
        secret,
        secure_cookies=False,
        audit=AuditLog(audit_path(db)),
    )
    yield application, tokens, base
    store.close()


def client(application, tokens, role: str | None) -> TestClient:
    c = TestClient(application)
    if role:
        c.headers["Authorization"] = f"Bearer {tokens[role]}"
    return c


# One call per API endpoint with the parameters it needs; the matrix below covers every route.
CALLS = {
    "/api/me": {},
    "/api/periods": {},
    "/api/run": {},
    "/api/cpm": {},
    "/api/rsvp": {"rate": "day"},
    "/api/outcomes": {},
    "/api/availability": {},
    "/api/league": {},
    "/api/incidents": {},
    "/api/drill": {"process": "prepayment", "by": "party"},
    "/api/system": {},
    "/api/diagnostics": {"process": "prepayment"},
    "/api/legs": {"process": "prepayment"},
    "/api/benchmarks": {"process": "all", "dimension": "device set"},
    "/api/alerts": {},
    "/api/downloads": {},
    "/downloads/{name}": {},
}


def test_every_route_is_in_the_matrix(site):
    application, _, _ = site
    # The app's own routes, and those of its views' routers (FastAPI includes a router lazily).
    every = [*application.routes, *view_routes()]
    routes = {r.path.replace("{name:path}", "{name}") for r in every if isinstance(r, APIRoute)}
    api = {p for p in routes if p.startswith(("/api", "/downloads/"))}
    assert api == set(CALLS)


@pytest.mark.parametrize("role", [None, "dcc", "panel", "party"])
def test_authorisation_matrix(site, role):
    """Anonymous callers get 401 everywhere; every role can call every endpoint; a party user
    never sees another party's identity in any response."""
    application, tokens, _ = site
    c = client(application, tokens, role)
    for path, params in CALLS.items():
        url = path.replace("{name}", "datafiles/prepayment.csv")
        res = c.get(url, params=params, follow_redirects=False)
        if role is None:
            # The API answers 401; a file download sends a browser to the login page.
            expected = (401,) if url.startswith("/api") else (303,)
            assert res.status_code in expected, (url, res.status_code)
            assert "login" in res.headers.get("location", "/login")
            continue
        assert res.status_code == 200, (role, url, res.text[:200])
        if role == "party":
            for other in OTHERS:
                assert other not in res.text, (url, other)
        if role in ("dcc", "panel") and path == "/api/drill":
            assert "SUP-B" in res.text  # the DCC and the Panel see every party by name


def test_party_limits_throttling_report_and_other_parties_devices(site):
    application, tokens, _ = site
    party, panel = client(application, tokens, "party"), client(application, tokens, "panel")
    assert party.get("/api/outcomes", params={"measure": "THR1.events"}).status_code == 403
    assert panel.get("/api/outcomes", params={"measure": "THR1.events"}).status_code == 200
    assert "THR1" not in party.get("/api/outcomes").text
    res = party.get("/api/drill", params={"process": "prepayment", "by": "device_type", "party": "SUP-B"})
    assert res.status_code == 403
    own = party.get("/api/drill", params={"process": "prepayment", "by": "region", "party": "SUP-A"})
    assert own.status_code == 200 and own.json()
    rows = party.get("/api/drill", params={"process": "prepayment", "by": "party"}).json()
    named = [r for r in rows if r["key"] == "SUP-A"]
    anonymous = [r for r in rows if r["key"] != "SUP-A"]
    assert named and named[0]["volume"] > 0
    assert anonymous and all(r["volume"] is None and not r["drillable"] for r in anonymous)
    assert [r["key"] for r in rows] == sorted(r["key"] for r in rows)  # order reveals nothing


def form_login(c: TestClient, username: str, password: str, next: str = "/"):
    """Log in as a browser does: fetch the form (and its CSRF token), then post it."""
    token = re.search(r'name="csrf" value="([^"]+)"', c.get("/login").text).group(1)
    form = {"username": username, "password": password, "next": next, "csrf": token}
    return c.post("/login", data=form, follow_redirects=False)


def test_login_session_lockout_headers_and_path_traversal(site):
    application, tokens, _ = site
    c = TestClient(application)
    assert c.get("/", follow_redirects=False).status_code == 303
    bad = form_login(c, "panel", "wrong-password-x")
    assert bad.status_code == 401
    ok = form_login(c, "panel", PASSWORDS["panel"], next="//evil.example")
    assert ok.status_code == 303 and ok.headers["location"] == "/"
    cookie = ok.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie
    page = c.get("/")
    assert page.status_code == 200 and "System view" in page.text
    for h in ("content-security-policy", "x-frame-options", "x-content-type-options"):
        assert h in page.headers
    logout_token = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
    assert c.post("/logout", data={}).status_code == 403  # no CSRF token: still logged in
    assert c.get("/api/me").status_code == 200
    c.post("/logout", data={"csrf": logout_token})
    assert c.get("/api/me").status_code == 401
    d = TestClient(application)
    for _ in range(5):
        form_login(d, "locktest", "not-the-password")
    locked = form_login(d, "locktest", PASSWORDS["panel"])
    assert locked.status_code == 429  # locked out even with the right password
    e = client(application, tokens, "dcc")
    # Found by fuzzing: a NUL byte or a name too long for the file system gave a 500.
    for name in (
        "../om.duckdb",
        "..%2Fom.duckdb",
        "/etc/passwd",
        "datafiles/../../om.duckdb",
        "%00",
        "a" * 300,
    ):
        assert e.get(f"/downloads/{name}").status_code == 404, name
    assert e.get("/downloads/datafiles/cpm.csv").status_code == 200
    assert TestClient(application).get("/api/me", headers={"Authorization": "Bearer nope"}).status_code == 401


def test_csrf_origin_session_fixation_and_client_rate_limit(site):
    application, _, _ = site
    c = TestClient(application)
    c.get("/login")
    before = c.cookies.get("opmetrics_session")
    no_token = c.post("/login", data={"username": "panel", "password": PASSWORDS["panel"]})
    assert no_token.status_code == 403 and c.get("/api/me").status_code == 401
    wrong = c.post("/login", data={"username": "panel", "password": PASSWORDS["panel"], "csrf": "x" * 43})
    assert wrong.status_code == 403 and c.get("/api/me").status_code == 401
    # A page on another site posting the real form (with a stolen token) is refused by origin.
    token = re.search(r'name="csrf" value="([^"]+)"', c.get("/login").text).group(1)
    form = {"username": "panel", "password": PASSWORDS["panel"], "csrf": token}
    cross = c.post("/login", data=form, headers={"Origin": "https://evil.example"})
    assert cross.status_code == 403 and c.get("/api/me").status_code == 401
    assert form_login(c, "panel", PASSWORDS["panel"]).status_code == 303
    after = c.cookies.get("opmetrics_session")
    assert after and after != before  # a fresh session on login
    # The pre-login session cookie (as planted by an attacker) does not carry the login.
    planted = TestClient(application)
    planted.cookies.set("opmetrics_session", before)
    assert planted.get("/api/me").status_code == 401
    # One client spraying many user names is stopped after 20 failures, whatever the names.
    spray = TestClient(application, client=("192.0.2.7", 50000))
    codes = [form_login(spray, f"nobody-{i}", "wrong-password-1").status_code for i in range(21)]
    assert codes[:20] == [401] * 20 and codes[20] == 429


def test_audit_log_records_views_downloads_logins_and_no_secrets(site, caplog):
    application, tokens, base = site
    log = AuditLog(audit_path(base / "om.duckdb"))
    n0 = sum(1 for _ in log.entries())
    e = client(application, tokens, "dcc")
    assert e.get("/api/cpm", params={"period": PERIOD}).status_code == 200
    assert e.get("/downloads/datafiles/cpm.csv").status_code == 200
    b = TestClient(application)
    form_login(b, "supa", "a-wrong-password-1")
    form_login(b, "supa", PASSWORDS["party"])
    b.get("/league")
    new = list(log.entries())[n0:]
    seen = {(x["actor"], x["via"], x["action"], x["target"].split("?")[0]) for x in new}
    assert ("dcc", "api", "view", "/api/cpm") in seen
    assert ("dcc", "api", "download", "/downloads/datafiles/cpm.csv") in seen
    assert ("supa", "web", "login failed", "/login") in seen
    assert ("supa", "web", "login", "/login") in seen
    assert ("supa", "web", "view", "/league") in seen
    text = log.path.read_text() + caplog.text
    for secret in [*PASSWORDS.values(), "a-wrong-password-1", *tokens.values()]:
        assert secret not in text
    assert log.verify() == []
    # Append-only: changing or deleting an earlier entry breaks the chain, and `audit` says so.
    lines = log.path.read_text().splitlines(keepends=True)
    damaged = base / "damaged.audit.jsonl"
    damaged.write_text("".join(lines[:1] + lines[2:]))
    assert any("does not follow" in p for p in AuditLog(damaged).verify())
    damaged.write_text("".join(lines).replace('"actor": "dcc"', '"actor": "someone-else"', 1))
    assert any("do not match its hash" in p for p in AuditLog(damaged).verify())
    wide = {"COLUMNS": "250"}
    res = runner.invoke(cli, ["audit", "--db", str(base / "om.duckdb"), "--action", "download"], env=wide)
    assert res.exit_code == 0 and "/downloads/datafiles/cpm.csv" in res.output, res.output
    shutil.copy(damaged, audit_path(base / "tampered.duckdb"))
    res = runner.invoke(cli, ["audit", "--db", str(base / "tampered.duckdb")], env=wide)
    assert res.exit_code == 1 and "audit log damaged" in res.output


def test_openapi_contract_holds_for_generated_requests(site):
    """schemathesis generates requests for every operation in the OpenAPI spec: none may produce
    a server error, and every response must match the spec."""
    from hypothesis import given

    application, tokens, _ = site
    headers = {"Authorization": f"Bearer {tokens['panel']}"}
    # The description itself is behind the log-in (issue 36, item 7).
    assert TestClient(application).get("/openapi.json", follow_redirects=False).status_code == 303
    schema = schemathesis.openapi.from_asgi("/openapi.json", application, headers=headers)
    operations = [r.ok() for r in schema.get_all_operations()]
    assert len(operations) == len(CALLS)
    for op in operations:

        @given(case=op.as_strategy())
        @settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck))
        def check(case):
            case.call_and_validate(headers=headers)

        check()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(site):
    import uvicorn

    application, _, _ = site
    port = _free_port()
    srv = uvicorn.Server(uvicorn.Config(application, host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    for _ in range(100):
        if srv.started:
            break
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    srv.should_exit = True
    thread.join(5)


def _browser(p):
    if not Path(CHROMIUM).exists():
        pytest.fail(
            "chromium is not installed: .ci/run installs Debian's chromium (apt-get install chromium)"
        )
    return p.chromium.launch(
        executable_path=CHROMIUM,
        args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
              "--disable-background-networking", "--disable-component-update", "--no-first-run"],
    )  # fmt: skip


def _login(page, base: str, user: str, password: str) -> None:
    page.goto(base + "/login")
    page.fill("input[name=username]", user)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    page.wait_for_selector("#avail-today table")


def test_browser_party_walks_the_drill_down_and_sees_no_other_party(server):
    from playwright.sync_api import expect, sync_playwright

    env = os.environ.get("OPMETRICS_SCREENSHOTS")
    shots = Path(env) if env else None
    with sync_playwright() as p:
        browser = _browser(p)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        _login(page, server, "supa", PASSWORDS["party"])
        assert "supa · party (SUP-A)" in page.inner_text("header")
        page.wait_for_selector("#hourly-chart .main-svg")
        if shots:
            page.screenshot(path=str(shots / "dashboard-system.png"), full_page=True)
        page.goto(server + "/process/prepayment")
        page.wait_for_selector("#drill-table tr.click")
        page.wait_for_selector("#daily-chart .main-svg")
        expect(page.locator("#diagnostics")).to_contain_text("SUP-A:")  # its own gap, named
        expect(page.locator("#diagnostics table")).to_contain_text("Failures explained")
        expect(page.locator("#legs-table table")).to_contain_text("To CHF/GPF median (s)")
        if shots:
            page.screenshot(path=str(shots / "dashboard-process.png"), full_page=True)
        for dim, nxt in (
            ("day", "srv"),
            ("srv", "region"),
            ("region", "device_type"),
            ("device_type", "party"),
        ):
            page.click("#drill-table tr.click >> nth=0")
            expect(page.locator("#crumbs")).to_contain_text(f"{dim} ")
            expect(page.locator("#drill-table th").first).to_have_text(nxt)
        text = page.inner_text("#drill-table")
        assert "SUP-A" in text and re.search(r"Supplier [A-Z]", text)
        body = page.content()
        assert not [o for o in OTHERS if o in body]
        rows = page.locator("#drill-table tr.click").count()
        assert rows == 1  # only its own party is drillable
        for path, sel in (
            ("/availability", "#services table"),
            ("/league", "#league table"),
            ("/downloads", "#files table"),
        ):
            page.goto(server + path)
            page.wait_for_selector(sel)
            assert not [o for o in OTHERS if o in page.content()], path
            if shots:
                page.screenshot(path=str(shots / f"dashboard-{path.strip('/')}.png"), full_page=True)
        assert not errors, errors
        browser.close()


@pytest.mark.parametrize("role", ["dcc", "panel"])
def test_browser_from_a_missed_target_to_the_party_behind_it(server, role):
    """The DCC and the Panel follow a missed CPM6A target from the system page into the process
    drill-down (already in that region) and down to the SEC Parties, named; nothing is fetched
    from outside the app."""
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as p:
        browser = _browser(p)
        page = browser.new_page()
        outside: list[str] = []
        page.on("request", lambda r: outside.append(r.url) if not r.url.startswith(server) else None)
        _login(page, server, role, PASSWORDS[role])
        link = page.locator("#missed a").first
        link.wait_for()
        region = link.inner_text().rsplit(" in ", 1)[1]
        link.click()
        page.wait_for_selector("#drill-table tr.click")
        expect(page.locator("#crumbs")).to_contain_text(f"region {region}")
        for nxt in ("srv", "device_type", "party"):
            page.click("#drill-table tr.click >> nth=0")
            expect(page.locator("#drill-table th").first).to_have_text(nxt)
        assert "SUP-" in page.inner_text("#drill-table")
        assert outside == []  # no CDN: every script, style and font comes from the app
        browser.close()


def test_diagnostics_are_the_partys_own_and_all_for_the_dcc(site):
    application, tokens, _ = site
    party = client(application, tokens, "party")
    own = party.get("/api/diagnostics", params={"process": "all"}).json()
    assert own and {r["party_id"] for r in own} == {"SUP-A"}
    assert party.get("/api/diagnostics", params={"party": "SUP-D"}).status_code == 403
    dcc = client(application, tokens, "dcc").get("/api/diagnostics", params={"process": "all"}).json()
    top = {r["party_id"]: r for r in dcc if r["rank"] == 1}
    assert top["SUP-E"]["factor"] == "orchestration" and top["SUP-F"]["value"] == "1.1.0"
    dcc_client = client(application, tokens, "dcc")
    # A well-formed id the methodology does not have is not found; a malformed one is invalid.
    assert dcc_client.get("/api/diagnostics", params={"process": "x"}).status_code == 404
    assert dcc_client.get("/api/diagnostics", params={"process": "X;--"}).status_code == 422


def test_incidents_come_from_the_run_and_open_ones_agree_with_the_system_page(site):
    """/api/incidents lists the incidents the run stored (every category of the period, counted
    independently here from the input table), and its open ones are the System page's."""
    application, tokens, base = site
    c = client(application, tokens, "panel")
    got = c.get("/api/incidents", params={"period": PERIOD}).json()
    first, last = f"{PERIOD}-01", f"{PERIOD}-31"
    with Store(base / "om.duckdb", read_only=True) as store:
        want = store.rows(
            "SELECT incident_id, resolved_at IS NULL AS open FROM incidents "
            "WHERE report_date BETWEEN ? AND ? ORDER BY incident_id",
            [first, last],
        )
    assert sorted(r["incident_id"] for r in got) == [r["incident_id"] for r in want]
    open_api = c.get("/api/incidents", params={"period": PERIOD, "open_only": "true"}).json()
    assert sorted(r["incident_id"] for r in open_api) == [r["incident_id"] for r in want if r["open"]]
    system = c.get("/api/system").json()
    assert sorted(r["incident_id"] for r in system["open_incidents"]) == sorted(
        r["incident_id"] for r in open_api
    )


def test_drill_down_and_system_page_read_the_run_and_a_stale_run_is_marked(site, tmp_path):
    """The drill-down and the System page group the run's stored cubes: with the requests table
    emptied behind the store's back (inputs' fingerprint unchanged) they answer as before. A
    load after the run marks it stale in /api/run and in a banner on every page."""
    application, tokens, base = site
    db = tmp_path / "copy.duckdb"
    shutil.copy(base / "om.duckdb", db)
    m = load_methodology()
    dcc = User("analyst", "dcc", None)
    asks = [
        ("prepayment", "region", {}),
        ("meter_reads", "party", {"region": "North"}),
        ("tariff_updates", "day", {}),
    ]
    with Store(db) as store:
        before = DataService(store, m)
        drilled = [before.drill(PERIOD, dcc, p, by, f) for p, by, f in asks]
        system = before.system(dcc)
        assert all(drilled) and system["hourly"] and before.run(PERIOD)["stale"] == []
        store.con.execute("DELETE FROM service_requests")
        after = DataService(store, m)
        assert [after.drill(PERIOD, dcc, p, by, f) for p, by, f in asks] == drilled
        assert after.system(dcc) == system
        store.con.execute(
            "INSERT INTO loaded_files SELECT file_id + 1000000, table_name, path || '.late', "
            "sha256 || 'x', bytes, rows_read, rows_accepted, rows_quarantined, contract_version, "
            "loaded_at FROM loaded_files LIMIT 1"
        )
        assert "input data changed" in " ".join(after.run(PERIOD)["stale"])
        assert after.stale() == {PERIOD: after.run(PERIOD)["stale"]}
    with Store(db, read_only=True) as store:
        stale_app = create_app(store, m, base / "report", session_secret(store), secure_cookies=False)
        c = TestClient(stale_app)
        assert form_login(c, "dcc", PASSWORDS["dcc"]).status_code == 303
        page = c.get("/availability").text
        assert f"The figures for {PERIOD} are stale" in page
    c = TestClient(application)
    assert form_login(c, "dcc", PASSWORDS["dcc"]).status_code == 303
    fresh = c.get("/availability").text
    assert "/logout" in fresh and "are stale" not in fresh


def test_a_huge_url_or_a_cut_write_cannot_poison_the_audit_log(site, tmp_path):
    """Issue 36, item 1: a request whose query string is longer than the 64 KiB the chain used to
    read back, and an entry of 1 MB, are logged with their fields cut to a bounded size, and the
    service goes on; a last line cut short (a crash mid-write) is reported by `verify` while
    writers chain on from the last whole entry."""
    application, tokens, base = site
    c = client(application, tokens, "dcc")
    huge = "x" * 65_000  # the HTTP client's own limit is 65,536 characters of query
    assert c.get("/api/cpm", params={"period": PERIOD, "segment": huge}).status_code in (200, 404, 422)
    AuditLog(audit_path(base / "om.duckdb")).record("dcc", "view", "/api/cpm?" + "y" * 1_000_000)
    assert c.get("/api/cpm", params={"period": PERIOD}).status_code == 200  # still serving
    log = AuditLog(audit_path(base / "om.duckdb"))
    last = list(log.entries())[-2:]
    assert all(len(json.dumps(e)) < 8_000 for e in last)
    assert any("chars)" in e["target"] for e in last)
    assert log.verify() == []
    # A crash mid-write: the last line is cut short, without its newline.
    copy = AuditLog(tmp_path / "x.audit.jsonl")
    for i in range(3):
        copy.record("dcc", "view", f"/page/{i}")
    with copy.path.open("ab") as fh:
        fh.write(b'{"seq": 4, "at": "2026-12-')
    entry = copy.record("dcc", "view", "/after")  # never fails
    assert entry["seq"] == 4 and entry["prev"] == list(copy.entries())[2]["hash"]
    problems = copy.verify()
    assert problems == ["line 4: not a whole entry (a write cut short or an edit)"]
    assert [e["target"] for e in copy.entries()] == ["/page/0", "/page/1", "/page/2", "/after"]


def test_a_link_cannot_write_on_the_login_page_and_summaries_name_no_other_party(site, tmp_path):
    """Issue 36, item 7: `/login?error=` shows only the app's own messages (by code), never the
    link's words; an incident summary naming another party reaches a party user with that
    party's anonymous name (the DCC sees it as stored)."""
    application, _tokens, base = site
    c = TestClient(application)
    planted = "Call 0800 000 000 to unlock your account"
    assert planted not in c.get("/login", params={"error": planted}).text
    assert "Your session expired" in c.get("/login", params={"error": "expired"}).text
    db = tmp_path / "copy.duckdb"
    shutil.copy(base / "om.duckdb", db)
    with Store(db) as store:
        store.con.execute(
            "UPDATE run_incidents SET summary = 'Gateway of SUP-B and SUP-A down' "
            "WHERE incident_id = (SELECT min(incident_id) FROM run_incidents)"
        )
        data = DataService(store, load_methodology())
        dcc = data.incidents(PERIOD, User("analyst", "dcc", None), open_only=False)
        party = data.incidents(PERIOD, User("supa", "party", "SUP-A"), open_only=False)
        other_name = data.anonymiser(PERIOD, User("supa", "party", "SUP-A")).name("SUP-B")
    assert "Gateway of SUP-B and SUP-A down" in [r["summary"] for r in dcc]
    assert f"Gateway of {other_name} and SUP-A down" in [r["summary"] for r in party]
    assert not any("SUP-B" in (r["summary"] or "") for r in party)
