"""`opmetrics what-if`: one period under two methodology versions over the same stored inputs,
side by side, without touching what was published (issue 31)."""

from __future__ import annotations

import hashlib

import pytest
from conftest import VERSIONS, load_rows
from test_golden import ALERTS, REQUESTS
from typer.testing import CliRunner

from opmetrics.cli import app
from opmetrics.measures import whatif
from opmetrics.measures.run import compute


def _published(store) -> str:
    """A digest of every result row the store holds (what a what-if must leave alone)."""
    h = hashlib.sha256()
    for table in ("rsvp", "cpm", "outcomes", "availability", "runs"):
        for r in store.con.execute(f"SELECT * FROM {table} ORDER BY ALL").fetchall():
            h.update(repr(r).encode())
    return h.hexdigest()


def test_what_if_lists_the_figures_that_moved_with_their_rules(store, tmp_path, meths):
    """The golden month, published under 2026.4. Tried under 2027.1: prepayment North's RSVP
    success goes from 6 of 9 (r5 no response, r6 E21, r7 N13 alert failed) to 8 of 9 (only r5),
    CPM1 All from 7 of 11 to 8 of 12 (the 6.23, critical as input, is not critical in DUIS's
    catalogue), each with the settings behind it; figures that did not move are not listed; the
    published tables do not change by one byte."""
    assert load_rows(store, tmp_path, "service_requests", REQUESTS).quarantined == 0
    assert load_rows(store, tmp_path, "alerts", ALERTS).quarantined == 0
    compute(store, meths["2026.4"], "2026-10")
    before = _published(store)
    store.close()
    db = tmp_path / "test.duckdb"
    w = whatif.what_if(db, "2026-10", meths["2027.1"], meths["2026.4"], work=tmp_path)
    moved = {(c.figure, c.scope): c for c in w.changes}
    success = moved[("RSVP prepayment success %", "North")]
    assert success.before == pytest.approx(100 * 6 / 9) and success.after == pytest.approx(100 * 8 / 9)
    assert "payload.rsvp_success" in success.rules and "availability.headline" not in success.rules
    cpm1 = moved[("CPM1 %", "All")]
    assert cpm1.before == pytest.approx(100 * 7 / 11) and cpm1.after == pytest.approx(100 * 8 / 12)
    assert "critical_from" in cpm1.rules
    assert ("RSVP prepayment volume", "North") not in moved  # 9 under both
    # Settings: switches listed, prose (sources, definitions) left out.
    paths = [p for p, _, _ in w.settings]
    assert "payload.rsvp_success" in paths and "cpms[CPM6A].numerator" in paths
    assert not any(p.endswith(".source") or p.endswith(".definition") for p in paths)
    text = whatif.markdown(w)
    # 6 of 9 and 8 of 9, printed as the pack prints them: truncated, never rounded.
    assert "| RSVP prepayment success % | North | 66.66 | 88.88 |" in text
    from opmetrics.engine.store import Store

    with Store(db) as again:
        assert _published(again) == before


def test_what_if_command_writes_markdown_and_csv(store, tmp_path, meths):
    assert load_rows(store, tmp_path, "service_requests", REQUESTS).quarantined == 0
    store.close()
    out = tmp_path / "wi" / "what-if.md"
    res = CliRunner().invoke(
        app,
        [
            "what-if", "--period", "2026-10", "--methodology", str(VERSIONS["2027.1"]),
            "--against", str(VERSIONS["2026.4"]), "--db", str(tmp_path / "test.duckdb"), "--out", str(out),
        ],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "figures moved" in " ".join(res.output.split())
    assert out.read_text().startswith("### What if: 2026-10 under 2026.4 and under 2027.1")
    assert "value_2026.4" in out.with_suffix(".csv").read_text().splitlines()[0]
    missing = CliRunner().invoke(
        app,
        ["what-if", "--period", "2026-10", "--methodology", str(VERSIONS["2027.1"]),
         "--against", str(VERSIONS["2026.4"]), "--db", str(tmp_path / "nope.duckdb")],
    )  # fmt: skip
    assert missing.exit_code == 1 and "no such database" in missing.output
