"""Benchmarks (issue 12; 003 customer analytics): for every business process, SRV, region and
device set, the industry's success, the best party's, and each party's own with its position.

Success is the user's view, as in the diagnostics (answered with a success code, on-demand).
A party is ranked only with at least `MIN_VOLUME` requests on the value; the best is the best
ranked party's (the methodology's `league.best_in_class`). Stored with party ids; a party sees
its own rows, other parties never by name.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import pyarrow as pa

from opmetrics.measures.diagnostics import ALL, MIN_VOLUME, UNKNOWN, Cell, _label
from opmetrics.methodology import League

DIMENSIONS: dict[str, tuple[str, ...]] = {
    "srv": ("srv",),
    "region": ("region",),
    "device set": ("ch_variant", "manufacturer", "model", "firmware_version"),
}
SCHEMA = pa.schema(
    [
        ("process_id", pa.string()),
        ("dimension", pa.string()),
        ("value", pa.string()),
        ("party_id", pa.string()),
        ("party_pct", pa.float64()),
        ("party_volume", pa.int64()),
        ("industry_pct", pa.float64()),
        ("industry_volume", pa.int64()),
        ("best_pct", pa.float64()),
        ("party_rtt_mean_s", pa.float64()),
        ("industry_rtt_mean_s", pa.float64()),
        ("best_rtt_mean_s", pa.float64()),
        ("rank", pa.int64()),
        ("ranked_parties", pa.int64()),
    ]
)


def _mean_s(t: list[float]) -> float | None:
    return t[0] / t[1] / 1000 if t[1] else None


def benchmark(rows: list[dict[str, Any]], league: League) -> list[dict[str, Any]]:
    """Success and mean RTT (on requests with a timed response) per value and party."""
    cells: dict[tuple[str, str, tuple[str, ...]], dict[str, Cell]] = defaultdict(lambda: defaultdict(Cell))
    rtt: dict[tuple[str, str, tuple[str, ...]], dict[str, list[float]]] = defaultdict(
        lambda: defaultdict(lambda: [0.0, 0])
    )
    for r in rows:
        for process in (r["process_id"], ALL):
            for dim, keys in DIMENSIONS.items():
                value = tuple(str(r[k]) for k in keys)
                if UNKNOWN in value:
                    continue
                cells[(process, dim, value)][r["party_id"]].add(r["n"], r["ok"])
                acc = rtt[(process, dim, value)][r["party_id"]]
                acc[0] += r.get("rtt_ms_sum") or 0
                acc[1] += r.get("rtt_n") or 0
    out = []
    for (process, dim, value), parties in sorted(cells.items()):
        industry = Cell()
        for c in parties.values():
            industry.add(c.n, c.ok)
        ranked = sorted(
            ((p, c) for p, c in parties.items() if c.n >= MIN_VOLUME), key=lambda x: (-x[1].pct, x[0])
        )
        rank = {p: i for i, (p, _) in enumerate(ranked, start=1)}
        best = league.best(c.pct for _, c in ranked)
        times = rtt[(process, dim, value)]
        all_t = [sum(t[0] for t in times.values()), sum(t[1] for t in times.values())]
        means = [_mean_s(times[p]) for p, _ in ranked if times[p][1] >= MIN_VOLUME]
        fastest = [t for t in means if t is not None]
        label = _label(dim, value) if dim == "device set" else value[0]
        for p, c in sorted(parties.items()):
            out.append(
                {
                    "process_id": process,
                    "dimension": dim,
                    "value": label,
                    "party_id": p,
                    "party_pct": c.pct,
                    "party_volume": c.n,
                    "industry_pct": industry.pct,
                    "industry_volume": industry.n,
                    "best_pct": best,
                    "party_rtt_mean_s": _mean_s(times[p]),
                    "industry_rtt_mean_s": _mean_s(all_t),
                    "best_rtt_mean_s": min(fastest) if fastest else None,
                    "rank": rank.get(p),
                    "ranked_parties": len(ranked),
                }
            )
    return out


def compute_benchmarks(rows: list[dict[str, Any]], league: League) -> pa.Table:
    return pa.Table.from_pylist(benchmark(rows, league), schema=SCHEMA)
