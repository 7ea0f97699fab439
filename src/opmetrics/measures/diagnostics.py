"""Diagnostics (issue 12; 003 customer analytics): for each SEC Party and business process, what
explains the party's gap to the rest of the industry, ranked by how many of its failed requests
each explanation accounts for, with the evidence in plain words.

Success is the league tables' (`records.outcome_failed`, `outcomes.success_basis`), so the two
reconcile: under 2027.1 the user's view, answered with its SRV's success code (any other code or
no response is a failure); on included on-demand requests.

Candidate explanations, each scored in failed requests the party would not have had:

- a device set (CH variant x manufacturer and model x firmware), a meter-and-hub combination (any
  firmware), a firmware version, or a region: the party's requests on it, times how much more
  often they fail than the party's requests elsewhere;
- the party's orchestration: on the same device sets, how much more often the party's requests
  fail than other parties' (a gap that follows the party, not its devices).

The share of the gap is the score over the party's excess failures against other parties.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import ibis
import pyarrow as pa

from opmetrics.measures.attribution import process_requests
from opmetrics.measures.records import Scope, in_scope, latest_devices

MIN_VOLUME = 30  # requests behind any rate the diagnostics compare
TOP = 5  # explanations kept per party and process
ALL = "all"  # the row for all business processes together
DIMENSIONS: dict[str, tuple[str, ...]] = {
    "device set": ("ch_variant", "manufacturer", "model", "firmware_version"),
    "meter and hub": ("ch_variant", "manufacturer", "model"),
    "firmware": ("firmware_version",),
    "region": ("region",),
}
UNKNOWN = "unknown"


@dataclass
class Cell:
    n: int = 0
    ok: int = 0

    def add(self, n: int, ok: int) -> None:
        self.n += n
        self.ok += ok

    @property
    def fail(self) -> float:
        return 1 - self.ok / self.n if self.n else 0.0

    @property
    def pct(self) -> float:
        return 100 * self.ok / self.n if self.n else 0.0


def _label(dim: str, value: tuple[str, ...]) -> str:
    if dim == "device set":
        return f"{value[0]} · {value[1]} {value[2]} · firmware {value[3]}"
    if dim == "meter and hub":
        return f"{value[0]} · {value[1]} {value[2]}"
    return value[0]


# What the diagnostics and the benchmarks count by; the day cube adds the UK report day.
COUNT_KEYS = (
    "process_id",
    "party_id",
    "srv",
    "region",
    "ch_variant",
    "manufacturer",
    "model",
    "firmware_version",
)
COUNT_SUMS = ("n", "ok", "rtt_ms_sum", "rtt_n")


def day_counts(s: Scope) -> ibis.Table:
    """Requests and successes per UK day, process, party, SRV, region and device set (a day
    cube: every column a sum, so a month is the sum of its days)."""
    t = process_requests(s)
    t = t.filter(t.mode == "on-demand")
    timed = t.speed_counted.fill_null(False)
    # Each request meets its device directly: summing per device first barely shrank the rows.
    # The join is built on the requests' few narrow columns, not on the extract, and carries
    # flags, not counts: at a national day it outgrows the memory limit and spills, so every
    # column saved per request counts (docs/performance.md, Design choices measured).
    per_request = t.select(
        "report_date",
        "process_id",
        "party_id",
        "srv",
        "region",
        "device_id",
        ok=~t.outcome_failed,
        timed=timed,
        rtt=ibis.ifelse(timed, t.rtt_ms, None).cast("int64"),
    )
    d = latest_devices(s).select("device_id", "ch_variant", "manufacturer", "model", d_fw="firmware_version")
    j = per_request.left_join(d, per_request.device_id == d.device_id)
    cols = {
        "ch_variant": j.ch_variant.fill_null(UNKNOWN),
        "manufacturer": j.manufacturer.fill_null(UNKNOWN),
        "model": j.model.fill_null(UNKNOWN),
        "firmware_version": j.d_fw.fill_null(UNKNOWN),
    }
    return j.group_by(
        [j.report_date, j.process_id, j.party_id, j.srv, j.region, *(v.name(k) for k, v in cols.items())]
    ).aggregate(
        n=j.count(),
        ok=j.ok.cast("int64").sum().cast("int64"),
        rtt_ms_sum=j.rtt.sum().fill_null(0).cast("int64"),
        rtt_n=j.timed.cast("int64").sum().cast("int64"),
    )


def counts(s: Scope, days: ibis.Table | None = None) -> list[dict[str, Any]]:
    """Requests and successes per process, party, SRV, region and device set over the period
    (computed once per run: the diagnostics and the benchmarks both read it), summed from the
    stored day cubes `days` (`day_counts` of every day), or from the records when not given."""
    t = day_counts(s) if days is None else in_scope(s, days)
    g = t.group_by(list(COUNT_KEYS)).aggregate(**{c: t[c].sum().cast("int64") for c in COUNT_SUMS})
    return g.to_pyarrow().to_pylist()


def _explain(rows: list[dict[str, Any]], party: str) -> dict[str, Any] | None:
    """The gap of one party within one process (rows of every party) and its explanations."""
    mine = [r for r in rows if r["party_id"] == party]
    others = [r for r in rows if r["party_id"] != party]
    me, rest = Cell(), Cell()
    for r in mine:
        me.add(r["n"], r["ok"])
    for r in others:
        rest.add(r["n"], r["ok"])
    if me.n < MIN_VOLUME or rest.n < MIN_VOLUME:
        return None
    excess = me.n * (me.fail - rest.fail)
    found: list[dict[str, Any]] = []
    for dim, keys in DIMENSIONS.items():
        by_me: dict[tuple[str, ...], Cell] = defaultdict(Cell)
        by_rest: dict[tuple[str, ...], Cell] = defaultdict(Cell)
        for r in mine:
            by_me[tuple(r[k] for k in keys)].add(r["n"], r["ok"])
        for r in others:
            by_rest[tuple(r[k] for k in keys)].add(r["n"], r["ok"])
        for value, c in by_me.items():
            if c.n < MIN_VOLUME or UNKNOWN in value:
                continue
            elsewhere = Cell(me.n - c.n, me.ok - c.ok)
            if elsewhere.n < MIN_VOLUME:
                continue
            score = c.n * (c.fail - elsewhere.fail)
            if score <= 0:
                continue
            o = by_rest.get(value, Cell())
            share_me, share_rest = 100 * c.n / me.n, 100 * o.n / rest.n if rest.n else 0.0
            others_txt = (
                f"other parties' requests on it succeed {o.pct:.1f} % ({o.n:,})"
                if o.n >= MIN_VOLUME
                else "other parties send too few requests to it to compare"
            )
            evidence = (
                f"Your requests on {dim} {_label(dim, value)} succeed {c.pct:.1f} % ({c.n:,}) against "
                f"{elsewhere.pct:.1f} % on the rest of your traffic; {others_txt}. It carries "
                f"{share_me:.0f} % of your requests and {share_rest:.0f} % of other parties'."
            )
            found.append(
                {
                    "factor": dim,
                    "value": _label(dim, value),
                    "score": score,
                    "party_pct": c.pct,
                    "others_pct": o.pct if o.n >= MIN_VOLUME else None,
                    "party_volume": c.n,
                    "evidence": evidence,
                }
            )
    # Orchestration: the party against other parties on the same device sets.
    sets_me: dict[tuple[str, ...], Cell] = defaultdict(Cell)
    sets_rest: dict[tuple[str, ...], Cell] = defaultdict(Cell)
    keys = DIMENSIONS["device set"]
    for r in mine:
        sets_me[tuple(r[k] for k in keys)].add(r["n"], r["ok"])
    for r in others:
        sets_rest[tuple(r[k] for k in keys)].add(r["n"], r["ok"])
    same_me, same_rest, score = Cell(), Cell(), 0.0
    for value, c in sorted(sets_me.items()):  # a fixed order: the float sum is the same every run
        theirs = sets_rest.get(value)
        if theirs is None or theirs.n < MIN_VOLUME:
            continue
        # Other parties' rate on this set, applied to the party's volume on it.
        score += c.n * (c.fail - theirs.fail)
        same_me.add(c.n, c.ok)
        same_rest.add(int(round(c.n)), int(round(c.n * (1 - theirs.fail))))
    if score > 0 and same_me.n >= MIN_VOLUME:
        found.append(
            {
                "factor": "orchestration",
                "value": "how your requests are sent",
                "score": score,
                "party_pct": same_me.pct,
                "others_pct": same_rest.pct,
                "party_volume": same_me.n,
                "evidence": (
                    f"On the same device sets, your requests succeed {same_me.pct:.1f} % ({same_me.n:,}) "
                    f"where other parties' would succeed {same_rest.pct:.1f} %: the gap follows your "
                    "requests, not your devices."
                ),
            }
        )
    found.sort(key=lambda x: (-x["score"], x["factor"], x["value"]))
    for rank, f in enumerate(found[:TOP], start=1):
        f["rank"] = rank
        f["gap_share_pct"] = 100 * f["score"] / excess if excess > 0 else None
    return {
        "party_pct": me.pct,
        "others_pct": rest.pct,
        "volume": me.n,
        "gap_pts": me.pct - rest.pct,
        "explanations": found[:TOP],
    }


SCHEMA = pa.schema(
    [
        ("process_id", pa.string()),
        ("party_id", pa.string()),
        ("party_pct", pa.float64()),
        ("others_pct", pa.float64()),
        ("gap_pts", pa.float64()),
        ("volume", pa.int64()),
        ("rank", pa.int64()),
        ("factor", pa.string()),
        ("value", pa.string()),
        ("failures_explained", pa.float64()),
        ("gap_share_pct", pa.float64()),
        ("factor_party_pct", pa.float64()),
        ("factor_others_pct", pa.float64()),
        ("factor_volume", pa.int64()),
        ("evidence", pa.string()),
    ]
)


def _without_srv(rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """The counts summed over SRVs (the diagnostics never split by SRV): several times fewer
    rows for the per-party loops below, same integer totals."""
    keys = ("process_id", "party_id", "region", *DIMENSIONS["device set"])
    acc: dict[tuple, dict[str, Any]] = {}
    for r in rows:
        k = tuple(r[c] for c in keys)
        a = acc.get(k)
        if a is None:
            a = acc[k] = {**dict(zip(keys, k, strict=True)), "n": 0, "ok": 0}
        a["n"] += r["n"]
        a["ok"] += r["ok"]
    return list(acc.values())


def diagnose(rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Diagnostics rows for every process (and all processes together) and party."""
    rows = _without_srv(rows)
    by_process: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        by_process[r["process_id"]].append(r)
        by_process[ALL].append(r)
    out: list[dict[str, Any]] = []
    for process in sorted(by_process):
        prow = by_process[process]
        for party in sorted({r["party_id"] for r in prow}):
            res = _explain(prow, party)
            if res is None:
                continue
            head = {
                "process_id": process,
                "party_id": party,
                "party_pct": res["party_pct"],
                "others_pct": res["others_pct"],
                "gap_pts": res["gap_pts"],
                "volume": res["volume"],
            }
            if not res["explanations"]:
                out.append({**head, "rank": 0, "factor": "none", "value": "", "failures_explained": 0.0,
                            "gap_share_pct": None, "factor_party_pct": None, "factor_others_pct": None,
                            "factor_volume": 0, "evidence": "No device set, firmware, region or "
                            "orchestration effect stands out."})  # fmt: skip
            for f in res["explanations"]:
                out.append(
                    {
                        **head,
                        "rank": f["rank"],
                        "factor": f["factor"],
                        "value": f["value"],
                        "failures_explained": f["score"],
                        "gap_share_pct": f["gap_share_pct"],
                        "factor_party_pct": f["party_pct"],
                        "factor_others_pct": f["others_pct"],
                        "factor_volume": f["party_volume"],
                        "evidence": f["evidence"],
                    }
                )
    return out


def compute_diagnostics(rows: list[dict[str, Any]]) -> pa.Table:
    return pa.Table.from_pylist(diagnose(rows), schema=SCHEMA)
