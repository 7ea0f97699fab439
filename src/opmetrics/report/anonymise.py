"""Anonymised league tables (001 l.6462 "report is included, as part of the PMR", the "12 pager"; 003).

Parties appear as "Supplier A", "Supplier B", ... The letters are assigned per period by a
keyed hash (HMAC-SHA256 of period and party id), so they are stable within a period, change
between periods, and cannot be guessed or ordered by size without the key. Other parties'
volumes are never shown. A per-party edition names only that party.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
import string
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import duckdb

from opmetrics import format as fmt
from opmetrics.engine.store import Store
from opmetrics.measures.run import latest_run
from opmetrics.methodology import League

ROLE_LABEL = {
    "IS": "Supplier",
    "ES": "Supplier",
    "GS": "Supplier",
    "ED": "Network Operator",
    "GT": "Network Operator",
}
KEY_ENV = "OPMETRICS_LEAGUE_KEY"


def league_key(store: Store) -> bytes:
    """The anonymisation key: $OPMETRICS_LEAGUE_KEY, else one generated once per database."""
    if os.environ.get(KEY_ENV):
        return os.environ[KEY_ENV].encode()
    return stored_secret(store, "league").encode()


def stored_secret(store: Store, name: str) -> str:
    """A random secret generated once per database (`report_secrets`); readable read-only."""
    con = store.con
    try:
        got = con.execute("SELECT value FROM report_secrets WHERE name = ?", [name]).fetchall()
    except duckdb.CatalogException:
        got = []
    if got:
        return got[0][0]
    if store.read_only:
        raise ValueError(f"{store.path}: no '{name}' secret yet; open the database once read-write")
    con.execute(
        "CREATE TABLE IF NOT EXISTS report_secrets (name VARCHAR PRIMARY KEY, value VARCHAR NOT NULL)"
    )
    value = secrets.token_hex(32)
    con.execute("INSERT INTO report_secrets VALUES (?, ?)", [name, value])
    return value


def party_roles(store: Store, period: str, run_id: str | None = None) -> dict[str, str]:
    """Each party's label from the DUIS User Role it mostly sends under, as the period's run
    stored them (`measures/context.py`); the latest run when `run_id` is not given."""
    if run_id is None:
        run = latest_run(store, period)
        if run is None:
            raise ValueError(f"no computed results for {period}; run `opmetrics compute --period {period}`")
        run_id = run.run_id
    try:
        rows = store.rows(
            "SELECT party_id, user_role FROM run_parties WHERE period = ? AND run_id = ? ORDER BY party_id",
            [period, run_id],
        )
    except duckdb.CatalogException:
        rows = []
    if not rows:
        raise ValueError(
            f"the {period} results were computed before their SEC Parties were stored with the run; "
            f"run `opmetrics compute --period {period}` again"
        )
    return {r["party_id"]: ROLE_LABEL.get(r["user_role"], "Party") for r in rows}


def _letters(n: int) -> list[str]:
    out = list(string.ascii_uppercase)
    while len(out) < n:
        out += [a + b for a in string.ascii_uppercase for b in string.ascii_uppercase]
    return out[:n]


@dataclass
class Anonymiser:
    """Maps party ids to anonymous names; `own` (a per-party edition) keeps its real name."""

    key: bytes
    period: str
    roles: dict[str, str]
    own: str | None = None
    # Another party's rate resting on fewer records than this is not given at all (methodology
    # `publication.min_cell`); 1 gives every rate, still at the printed precision.
    min_cell: int = 1
    names: dict[str, str] = field(init=False)

    def __post_init__(self) -> None:
        self.names = {}
        by_role: dict[str, list[str]] = {}
        for party, role in self.roles.items():
            by_role.setdefault(role, []).append(party)
        for role, parties in by_role.items():
            ranked = sorted(
                parties,
                key=lambda p: hmac.new(self.key, f"{self.period}|{p}".encode(), hashlib.sha256).hexdigest(),
            )
            for party, letter in zip(ranked, _letters(len(ranked)), strict=True):
                self.names[party] = f"{role} {letter}"
        if self.own is not None and self.own not in self.names:
            raise ValueError(
                f"party {self.own!r} sent no Service Requests; known parties: {sorted(self.names)}"
            )
        # Longest ids first, so an id that contains another is replaced whole.
        ids = sorted(self.names, key=len, reverse=True)
        self._pattern = re.compile("|".join(re.escape(p) for p in ids)) if ids else None

    def name(self, party: str) -> str:
        if party == self.own:
            return party
        return self.names.get(party, party)

    def is_other(self, party: str) -> bool:
        return party in self.names and party != self.own

    def rate(self, value: float | None, records: int | None) -> float | None:
        """Another party's percentage as given out (issue 36, item 3): truncated to the
        decimals its volume allows (`format.anonymised_places`: 2 above 10,000 records, 1
        above 1,000, 0 above 100) and none below `min_cell`, so its counts cannot be worked
        back from it."""
        if records is None or records < self.min_cell:
            return None
        places = fmt.anonymised_places(records)
        return None if places is None else fmt.shown_pct(value, places)

    @property
    def withheld_below(self) -> int:
        """The fewest records on which another party's rate is given at all."""
        return max(self.min_cell, 101)

    def seconds(self, value: float | None, records: int | None) -> float | None:
        """Another party's mean time, as `rate` gives its percentages."""
        if records is None or records < self.min_cell:
            return None
        return fmt.shown_seconds(value)

    def scrub(self, text: Any) -> Any:
        """Replace every other party's id inside a text with its anonymous name."""
        if not isinstance(text, str) or self._pattern is None:
            return text
        return self._pattern.sub(lambda mt: self.name(mt.group(0)), text)


def league_tables(
    rows: Iterable[dict[str, Any]], anon: Anonymiser, league: League, process_names: dict[str, str]
) -> list[dict[str, Any]]:
    """Per business process: ranked parties (success rate), industry average and best in class."""
    by_proc: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        if r["measure"] == "LT1" and r["key2"] == "success" and r["denominator"]:
            by_proc.setdefault(r["breakdown"], []).append(r)
    out = []
    for pid in process_names:
        mine = by_proc.get(pid)
        if not mine:
            continue
        total_n = sum(r["denominator"] for r in mine)
        total_ok = sum(r["numerator"] for r in mine)
        ranked = sorted(
            (r for r in mine if r["denominator"] >= league.min_volume),
            key=lambda r: (-r["value"], anon.name(r["key1"])),
        )
        entries = [
            {
                "rank": i,
                "party": anon.name(r["key1"]),
                "own": r["key1"] == anon.own,
                "pct": anon.rate(r["value"], r["denominator"]) if anon.is_other(r["key1"]) else r["value"],
            }
            for i, r in enumerate(ranked, start=1)
        ]
        unranked = [r for r in mine if r["denominator"] < league.min_volume]
        own_unranked = next((r for r in unranked if r["key1"] == anon.own), None)
        out.append(
            {
                "process_id": pid,
                "process": process_names[pid],
                "entries": entries,
                "industry_pct": 100.0 * total_ok / total_n if total_n else None,
                "best_pct": league.best(e["pct"] for e in entries),
                "unranked": len(unranked),
                "own_unranked_pct": own_unranked["value"] if own_unranked else None,
            }
        )
    return out
