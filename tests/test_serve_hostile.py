"""The dashboard under hostile use (issue 36): downloads per edition and role, no inference of
withheld counts, the server beside writers (the serving snapshot), sessions that end, a
lock-out nobody can turn against someone else, X-Forwarded-For believed only from a named
proxy, HEAD, and the API description behind the log-in. The app is built as `serve` builds it:
over the snapshots that writing commands publish."""

from __future__ import annotations

import csv
import http.client
import json
import re
import socket
import threading
import time
from fractions import Fraction
from urllib.parse import urlencode

import pytest
from fastapi.testclient import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from opmetrics import format as fmt
from opmetrics.cli import app as cli
from opmetrics.engine.serving import Snapshots, current, serving_dir
from opmetrics.engine.store import Store
from opmetrics.methodology import load as load_methodology
from opmetrics.report.anonymise import Anonymiser, league_key, party_roles
from opmetrics.serve.app import create_app, uvicorn_config
from opmetrics.serve.auth import User
from opmetrics.serve.views.downloads import edition_of, may_download

runner = CliRunner()
PERIOD = "2026-10"
PW = {"dcc": "dcc-password-0001", "panel": "panel-password-01", "supa": "party-password-01"}


def run(*args: str) -> str:
    res = runner.invoke(cli, list(args))
    assert res.exit_code == 0, res.output
    return res.output


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """A computed tiny month; the public pack, the confidential edition and two party editions
    laid out as `serve` offers them; users added with the CLI (each publishing a snapshot)."""
    base = tmp_path_factory.mktemp("hostile")
    db = str(base / "om.duckdb")
    run("simulate", "--scale", "tiny", "--out", str(base / "data"))
    run("ingest", str(base / "data"), "--db", db)
    run("compute", "--period", PERIOD, "--db", db)
    pack = base / "report"
    run("report", "--period", PERIOD, "--db", db, "--out", str(pack), "--no-pdf")
    run(
        "report",
        "--period",
        PERIOD,
        "--db",
        db,
        "--out",
        str(pack / "confidential"),
        "--no-pdf",
        "--confidential",
    )
    for party in ("SUP-A", "SUP-B"):
        run("report", "--period", PERIOD, "--db", db, "--out", str(pack / "parties" / party), "--no-pdf",
            "--party", party)  # fmt: skip
    tokens = {}
    for name, role, party in (("dcc", "dcc", None), ("panel", "panel", None), ("supa", "party", "SUP-A")):
        out = run("users", "add", name, "--role", role, *(["--party", party] if party else []),
                  "--password", PW[name], "--db", db)  # fmt: skip
        tokens[name] = re.search(r"token \(shown once; stored hashed\): (\S+)", out).group(1)
    snapshots = Snapshots(base / "om.duckdb")
    m = load_methodology()
    application = create_app(snapshots, m, pack, "test-secret", secure_cookies=False)
    yield application, tokens, base, snapshots
    snapshots.close()


def api(application, tokens, who: str) -> TestClient:
    c = TestClient(application)
    c.headers["Authorization"] = f"Bearer {tokens[who]}"
    return c


def form_login(c: TestClient, username: str, password: str):
    token = re.search(r'name="csrf" value="([^"]+)"', c.get("/login").text).group(1)
    return c.post("/login", data={"username": username, "password": password, "csrf": token},
                  follow_redirects=False)  # fmt: skip


# --- item 2: downloads per role --------------------------------------------------------------


def test_editions_by_place_and_role():
    party, panel = User("p", "party", "SUP-A"), User("q", "panel", None)
    assert edition_of("datafiles/outcomes.csv") == "public"
    assert edition_of("confidential/datafiles/outcomes.csv") == "confidential"
    assert edition_of("parties/SUP-A/index.html") == "party:SUP-A"
    assert may_download(party, "index.html") and may_download(party, "parties/SUP-A/figures.json")
    assert not may_download(party, "parties/SUP-B/figures.json")
    assert not may_download(party, "confidential/index.html")
    assert may_download(panel, "confidential/index.html") and may_download(panel, "parties/SUP-B/x.csv")


def test_a_party_cannot_download_the_throttling_report_or_another_partys_edition(site):
    application, tokens, base, _ = site
    pack = base / "report"
    # The public pack and the party editions carry no throttling row; the confidential one does.
    for edition in (pack, pack / "parties" / "SUP-A", pack / "parties" / "SUP-B"):
        with (edition / "datafiles" / "outcomes.csv").open(encoding="utf-8") as fh:
            measures = {r["measure"] for r in csv.DictReader(fh)}
        assert measures and not any(x.startswith("THR1") for x in measures), edition
        figures = json.loads((edition / "figures.json").read_text(encoding="utf-8"))
        assert not any(r["measure"].startswith("THR1") for r in figures["outcomes"])
        assert (
            "Confidential:</b> reported to the DCC and the SEC Panel only"
            in (edition / "index.html").read_text()
        )
    with (pack / "confidential" / "datafiles" / "outcomes.csv").open(encoding="utf-8") as fh:
        assert any(r["measure"] == "THR1.events" for r in csv.DictReader(fh))

    party = api(application, tokens, "supa")
    listed = {f["name"] for f in party.get("/api/downloads").json()}
    assert "datafiles/outcomes.csv" in listed and "parties/SUP-A/datafiles/outcomes.csv" in listed
    assert not any(n.startswith(("confidential/", "parties/SUP-B/")) for n in listed)
    refused = ("confidential/datafiles/outcomes.csv", "confidential/figures.json", "confidential/index.html",
               "parties/SUP-B/figures.json", "parties/SUP-B/../SUP-B/index.html")  # fmt: skip
    for name in refused:
        assert party.get(f"/downloads/{name}").status_code == 403, name
    assert party.get("/downloads/parties/SUP-A/figures.json").status_code == 200
    panel = api(application, tokens, "panel")
    got = panel.get("/downloads/confidential/datafiles/outcomes.csv")
    assert got.status_code == 200 and "THR1.events" in got.text
    assert any(f["edition"] == "confidential" for f in panel.get("/api/downloads").json())


# --- item 3: no inference --------------------------------------------------------------------


def smallest_fraction(lo: Fraction, hi: Fraction) -> Fraction:
    """The fraction with the smallest denominator in [lo, hi) (Stern-Brocot descent): the best
    guess of an attacker who knows only that the rate was cut to two decimals."""
    a, b, c, d = 0, 1, 1, 0  # the interval's bracketing fractions a/b < x < c/d
    while True:
        p, q = a + c, b + d
        x = Fraction(p, q)
        if x < lo:
            a, b = p, q
        elif x >= hi:
            c, d = p, q
        else:
            return x


def recovered(rate_pct: float, true_n: int, true_k: int) -> bool:
    """Whether an attacker gets a withheld volume back from a published rate: the guess (by
    `Fraction.limit_denominator` at every plausible bound, or the smallest denominator
    consistent with the printed two decimals, the stronger attack) must be the true rate with
    the true volume as its denominator; a rate of 100 % says nothing about the volume."""
    x, want = Fraction(rate_pct) / 100, Fraction(true_k, true_n)
    guesses = [x.limit_denominator(b) for b in (true_n, 10 * true_n, 1000, 10**6)]
    step = Fraction(1, 10 ** (getattr(rate_pct, "places", 2) + 2))  # the printed step, as a share
    lo = Fraction(round(rate_pct * 100), 10000)
    guesses.append(smallest_fraction(lo, lo + step))
    return any(g == want and g.denominator == true_n for g in guesses)


@settings(max_examples=400, deadline=None)
@given(n=st.integers(1, 2_000_000), data=st.data())
def test_no_rate_as_given_out_leads_back_to_its_volume(n, data):
    """The precision rule (format.anonymised_places) against both attacks, for any volume and
    any count of successes: the volume never comes back."""
    k = data.draw(st.integers(0, n))
    places = fmt.anonymised_places(n)
    if places is None:
        assert n <= 100
        return
    assert not recovered(fmt.shown_pct(100 * k / n, places), n, k)


def test_anonymised_rates_give_no_withheld_count_back(site):
    """Every other party's rate a party user can read (drill by party for each process, for the
    month and for single days; outcome rows; league tables) is checked against its true counts,
    read independently from the stored cube and outcomes: none is recovered. The same attack
    on the unrounded rates recovers many (so the attack is real)."""
    application, tokens, base, _ = site
    m = load_methodology()
    party = api(application, tokens, "supa")
    with Store(base / "om.duckdb", read_only=True) as store:
        run_id = store.rows("SELECT run_id FROM runs WHERE period = ?", [PERIOD])[0]["run_id"]
        anon = Anonymiser(league_key(store), PERIOD, party_roles(store, PERIOD), own="SUP-A")
        cube = store.rows(
            "SELECT process_id, party_id, CAST(report_date AS VARCHAR) AS day, sum(volume) AS n, "
            "sum(volume) - sum(failures) AS ok FROM run_drill WHERE run_id = ? GROUP BY ALL",
            [run_id],
        )
        outcome_rows = store.rows(
            "SELECT measure, breakdown, key1, key2, numerator, denominator FROM outcomes "
            "WHERE run_id = ? AND unit = '%' AND denominator > 0",
            [run_id],
        )
    party_of = {v: k for k, v in anon.names.items()}
    counts: dict[tuple[str, str, str | None], list[int]] = {}
    for r in cube:
        for day in (None, r["day"]):
            t = counts.setdefault((r["process_id"], r["party_id"], day), [0, 0])
            t[0], t[1] = t[0] + int(r["n"]), t[1] + int(r["ok"])
    days = sorted({r["day"] for r in cube})[:3]

    checked = exposed_before = withheld = 0
    for p in m.processes:
        for day in [None, *days]:
            params = {"process": p.id, "by": "party", **({"day": day} if day else {})}
            for row in party.get("/api/drill", params=params).json():
                if row["volume"] is not None:
                    assert row["own"] and row["key"] == "SUP-A"  # its own row, named
                    continue
                assert not row["own"] and party_of[row["key"]] != "SUP-A"  # a letter: never itself
                n, ok = counts[(p.id, party_of[row["key"]], day)]
                exposed_before += recovered(100.0 * ok / n, n, ok)
                if row["success_pct"] is None:
                    assert n < m.publication.min_cell
                    withheld += 1
                    continue
                assert n >= m.publication.min_cell
                assert not recovered(row["success_pct"], n, ok), (p.id, day, row, n, ok)
                checked += 1
    truth = {(t["measure"], t["breakdown"], t["key1"], t["key2"]): t for t in outcome_rows}
    for r in party.get("/api/outcomes", params={"period": PERIOD}).json():
        anonymised = r["key1"] in party_of or r["key2"] in party_of
        if anonymised and r["unit"] == "%" and r["value"] is not None:
            key1, key2 = party_of.get(r["key1"], r["key1"]), party_of.get(r["key2"], r["key2"])
            t = truth[(r["measure"], r["breakdown"], key1, key2)]
            assert not recovered(r["value"], t["denominator"], t["numerator"]), (r, t)
            exposed_before += recovered(
                100.0 * t["numerator"] / t["denominator"], t["denominator"], t["numerator"]
            )
            checked += 1
    for table in party.get("/api/league", params={"period": PERIOD}).json():
        for e in table["entries"]:
            assert e["own"] == (e["party"] == "SUP-A")
            if not e["own"]:
                assert party_of[e["party"]] != "SUP-A" and e["pct"] == round(e["pct"], 2)
                checked += 1
    assert checked > 100 and exposed_before > 50 and withheld > 0, (checked, exposed_before, withheld)


# --- items 4, 5: beside writers; sessions; lock-out; forwarded headers ------------------------


def test_writers_run_beside_the_server_and_it_moves_to_what_they_publish(site, tmp_path):
    """While the app serves, `users add` (a writer) runs, which it could not when the server
    held the database: the new user can log in at once, and re-adding a user (new password)
    ends that user's live session. Logout ends a session on the server: the old cookie is
    refused afterwards. The snapshot folder keeps only the last few snapshots."""
    application, tokens, base, snapshots = site
    db = str(base / "om.duckdb")
    before = snapshots.generation
    c = TestClient(application)
    assert form_login(c, "newcomer", "newcomer-password-1").status_code == 401
    run("users", "add", "newcomer", "--role", "panel", "--password", "newcomer-password-1", "--db", db)
    assert form_login(c, "newcomer", "newcomer-password-1").status_code == 303
    assert c.get("/api/me").json()["username"] == "newcomer" and snapshots.generation > before
    cookie = c.cookies.get("opmetrics_session")
    run("users", "add", "newcomer", "--role", "panel", "--password", "changed-password-1", "--db", db)
    assert c.get("/api/me").status_code == 401  # the user changed: the session is over
    # Logout: a copy of the cookie taken before it opens nothing afterwards.
    d = TestClient(application)
    assert form_login(d, "panel", PW["panel"]).status_code == 303
    stolen = d.cookies.get("opmetrics_session")
    page = d.get("/")
    token = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
    d.post("/logout", data={"csrf": token})
    thief = TestClient(application)
    thief.cookies.set("opmetrics_session", stolen)
    assert thief.get("/api/me").status_code == 401
    assert cookie != stolen
    assert len(list(serving_dir(db).glob("*.duckdb"))) <= 3 and current(db) is not None


def test_the_systems_alerts_move_while_serving(site):
    """The System page's live alerts: an alert a writer stores (as `watch` does) shows in
    /api/alerts once it publishes, with no restart."""
    application, tokens, base, _ = site
    dcc = api(application, tokens, "dcc")
    assert not any(a["alert_id"] == "test-live" for a in dcc.get("/api/alerts").json())
    from opmetrics.engine.serving import publish
    from opmetrics.monitor.engine import _DDL as MONITOR_DDL  # the table `watch` writes

    with Store(base / "om.duckdb") as store:
        store.con.execute(MONITOR_DDL)
        cols = [r[0] for r in store.con.execute("DESCRIBE monitor_alerts").fetchall()]
        row = {c: None for c in cols}
        row.update(alert_id="test-live", status="open", opened_at=dt_now(), scope="{}", message="test alert",
                   rule_id="test", severity="warning")  # fmt: skip
        row = {k: v for k, v in row.items() if k in cols}
        store.con.execute(
            f"INSERT INTO monitor_alerts ({', '.join(row)}) VALUES ({', '.join('?' for _ in row)})",
            list(row.values()),
        )
        publish(store)
    assert any(a["alert_id"] == "test-live" for a in dcc.get("/api/alerts").json())


def dt_now():
    import datetime as dt

    return dt.datetime(2026, 10, 31, 12, 0)


def test_nobody_can_lock_out_someone_else_and_unknown_names_cost_the_same(site):
    application, _, _, _ = site
    attacker = TestClient(application, client=("198.51.100.9", 40000))
    codes = [form_login(attacker, "dcc", f"guess-{i}-xxxxxxxx").status_code for i in range(6)]
    assert codes[:5] == [401] * 5 and codes[5] == 429  # the attacker's own address is locked
    victim = TestClient(application, client=("192.0.2.44", 40000))
    assert form_login(victim, "dcc", PW["dcc"]).status_code == 303  # from elsewhere: unaffected
    # An unknown name takes an Argon2 verification like a known one (timing tells nothing).
    t = {}
    for name in ("dcc", "no-such-user"):
        probe = TestClient(application, client=(f"203.0.113.{len(t) + 1}", 40000))
        start = time.perf_counter()
        for _ in range(3):
            form_login(probe, name, "wrong-password-xx")
        t[name] = time.perf_counter() - start
    assert 0.5 < t["no-such-user"] / t["dcc"] < 2.0, t


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_forwarded_for_is_believed_only_from_a_named_proxy_and_head_answers(site):
    """Through a real uvicorn server as `serve` runs it: X-Forwarded-For from the loopback peer
    does not change the client address (the per-address block holds), HEAD answers as GET
    without a body, and a slow drill does not hold up a light call (handlers off the loop)."""
    import uvicorn

    application, tokens, _, _ = site
    port = _free_port()
    srv = uvicorn.Server(uvicorn_config(application, "127.0.0.1", port))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    for _ in range(100):
        if srv.started:
            break
        time.sleep(0.05)
    try:
        codes = []
        for i in range(21):
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            conn.request("GET", "/login")
            res = conn.getresponse()
            page, cookie = res.read().decode(), res.getheader("set-cookie").split(";")[0]
            token = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
            body = urlencode({"username": f"spray-{i}", "password": "wrong-password-1", "csrf": token})
            conn.request("POST", "/login", body=body, headers={
                "Content-Type": "application/x-www-form-urlencoded", "Cookie": cookie,
                "X-Forwarded-For": f"10.9.{i}.1"})  # fmt: skip
            codes.append(conn.getresponse().status)
            conn.close()
        assert codes[:20] == [401] * 20 and codes[20] == 429, codes
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        conn.request("HEAD", "/api/me", headers={"Authorization": f"Bearer {tokens['dcc']}"})
        res = conn.getresponse()
        assert res.status == 200 and res.read() == b""
        conn.request("HEAD", "/login")
        res = conn.getresponse()
        assert res.status == 200 and res.read() == b"" and "text/html" in res.getheader("content-type")
        conn.close()
    finally:
        srv.should_exit = True
        thread.join(5)


def test_the_api_description_is_behind_the_login_and_needs_no_cdn(site):
    application, tokens, _, _ = site
    anon = TestClient(application)
    for path in ("/docs", "/openapi.json", "/redoc"):
        res = anon.get(path, follow_redirects=False)
        assert res.status_code in (303, 404), path
    panel = TestClient(application)
    assert form_login(panel, "panel", PW["panel"]).status_code == 303
    page = panel.get("/docs")
    assert page.status_code == 200 and "/api/drill" in page.text and "by" in page.text
    assert not re.search(r'(src|href)="https?://', page.text)  # nothing from another origin
    assert api(application, tokens, "dcc").get("/openapi.json").json()["paths"]["/api/drill"]
