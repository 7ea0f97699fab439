"""Past PMR values (issue 32, item 9): CPMs, availability and RSVP published before opmetrics
ran are loaded as inputs, so the first computed month has its month-on-month column, its
13-month trends, its consecutive months below target and the summary paper's "vs previous".
A month with its own run uses that run, never the published values."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from opmetrics.cli import app as cli
from opmetrics.engine import history
from opmetrics.engine.store import Store
from opmetrics.measures.availability import previous_period
from opmetrics.methodology import load as load_methodology
from opmetrics.report.pack import build_pack

PERIOD = "2026-10"
SOURCE = "DCC PMR September 2026, issue 1"
runner = CliRunner()


def months_before(period: str, n: int) -> list[str]:
    out = [period]
    for _ in range(n):
        out.append(previous_period(out[-1]))
    return sorted(out[1:])


def uk_start(period: str) -> str:
    """UK midnight on the month's first day, with its offset (BST from April to October)."""
    month = int(period[5:])
    return f"{period}-01T00:00:00{'+01:00' if 4 <= month <= 10 else 'Z'}"


def write_published(folder: Path) -> dict[str, float]:
    """Published values for the twelve months before PERIOD (prepayment's success falls by a
    tenth of a point a month from 99.9 %), CPM1 below target in August and September."""
    folder.mkdir()
    months = months_before(PERIOD, 12)
    rsvp = ["period_start,scope,key,volume,success_pct,within_trt_pct,source"]
    for i, p in enumerate(months):
        rsvp.append(
            f"{uk_start(p)},process,prepayment,{1000 + i},{99.9 - 0.1 * (11 - i):.2f},{97.5:.2f},PMR {p}"
        )
    rsvp.append(f'{uk_start(months[-1])},srv,2.2,5000,91.25,97.00,"{SOURCE}"')
    (folder / "published_rsvp.csv").write_text("\n".join(rsvp) + "\n")
    cpm = ["period_start,cpm,key,segment,pct,status,source"]
    for p, status in ((months[-2], "below target"), (months[-1], "below target")):
        source = f'"{SOURCE}"' if p == months[-1] else f"PMR {p}"
        cpm.append(f"{uk_start(p)},CPM1,all,All,95.125,{status},{source}")
    (folder / "published_cpm.csv").write_text("\n".join(cpm) + "\n")
    avail = [
        "period_start,view,subject,region,band,pct,source",
        f'{uk_start(months[-1])},overall,Overall Service Availability,All,all,99.125,"{SOURCE}"',
        f'{uk_start(months[-1])},service,DCC User Interface,All,all,98.75,"{SOURCE}"',
    ]
    (folder / "published_availability.csv").write_text("\n".join(avail) + "\n")
    return {"cpm1": 95.125, "overall": 99.125, "duis": 98.75, "srv22": 91.25}


@pytest.fixture(scope="module")
def month(tmp_path_factory):
    base = tmp_path_factory.mktemp("history")
    published = write_published(base / "published")
    db = base / "om.duckdb"
    for args in (
        ["simulate", "--scale", "tiny", "--out", str(base / "data")],
        ["ingest", str(base / "data"), str(base / "published"), "--db", str(db)],
        ["compute", "--period", PERIOD, "--db", str(db)],
    ):
        res = runner.invoke(cli, args)
        assert res.exit_code == 0, res.output
    return db, published


def test_published_values_fill_the_first_months_comparisons(month, tmp_path):
    db, published = month
    m = load_methodology()
    with Store(db) as store:
        (cpm1,) = store.rows(
            "SELECT pct, status, months_below_target FROM cpm WHERE cpm = 'CPM1' AND segment = 'All'"
        )
        # Consecutive months below target count the published August and September.
        below = cpm1["status"] in ("below target", "below minimum")
        assert cpm1["months_below_target"] == (3 if below else 0)
        (overall,) = store.rows("SELECT previous_pct FROM availability WHERE view = 'overall'")
        assert overall["previous_pct"] == published["overall"]
        (duis,) = store.rows(
            "SELECT previous_pct FROM availability WHERE view = 'service' AND subject = 'DCC User Interface' "
            "AND region = 'All' AND band = 'all'"
        )
        assert duis["previous_pct"] == published["duis"]
        trend = store.rows("SELECT of_period, key, source FROM run_trend WHERE scope = 'process'")
        assert [r["of_period"] for r in trend] == months_before(PERIOD, 12)
        build_pack(store, m, PERIOD, tmp_path / "pack", pdf=False)
    html = (tmp_path / "pack" / "index.html").read_text(encoding="utf-8")
    mom = html.split("<h3>Month on month</h3>")[1].split("</table>")[0]
    row = re.search(r"<tr><td>CPM1</td>.*?</tr>", mom, re.S).group(0)
    assert "95.12%" in row  # the published value, truncated as every figure is
    assert "Earlier months from: " in html and SOURCE in html
    assert "Prepayment: monthly trend" in html  # 13 points: the trend chart, not "1 month(s)"
    paper = (tmp_path / "pack" / "opsg-summary.html").read_text(encoding="utf-8")
    srv = re.search(r"<tr><td class=\"l\">2.2</td>.*?</tr>", paper, re.S).group(0)
    cells = re.findall(r"<td[^>]*>(.*?)</td>", srv, re.S)
    now = float(cells[3].rstrip("%"))
    delta = re.sub(r"<[^>]+>", "", cells[4])
    assert delta != "–" and abs(float(delta.split()[0]) - (now - published["srv22"])) < 0.011


def test_a_month_with_its_own_run_uses_the_run_not_the_published_values(month, tmp_path):
    """Precedence, on a copy: a stored CPM row for September hides every published September
    CPM value; months without a run still come from the published values."""
    db, published = month
    copy = tmp_path / "om.duckdb"
    copy.write_bytes(db.read_bytes())
    sep = previous_period(PERIOD)
    with Store(copy) as store:
        before = history.cpm_rows(store, "period = ?", [sep]).to_pylist()
        assert [(r["cpm"], r["pct"], r["source"]) for r in before] == [("CPM1", published["cpm1"], SOURCE)]
        store.con.execute(
            "INSERT INTO cpm SELECT * REPLACE ('2026-09' AS period, 'CPM2' AS cpm) FROM cpm "
            "WHERE cpm = 'CPM2' AND segment = 'All'"
        )
        after = history.cpm_rows(store, "period = ?", [sep]).to_pylist()
        assert [r["cpm"] for r in after] == ["CPM2"] and after[0]["source"].startswith(history.RUN_SOURCE)
        august = history.cpm_rows(store, "period = ?", [previous_period(sep)]).to_pylist()
        assert [r["source"] for r in august] == [f"PMR {previous_period(sep)}"]
