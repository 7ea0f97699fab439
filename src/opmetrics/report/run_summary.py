"""What a run stored, summed up for the terminal: one line per CPM and the availability headline.

`compute` prints these; they read only the run's result tables, never the inputs."""

from __future__ import annotations

from dataclasses import dataclass

from opmetrics import format as fmt
from opmetrics.engine.store import Store
from opmetrics.methodology import Methodology
from opmetrics.methodology.status import Status

# Worst first: a CPM's line shows the worst status among its measures.
_SEVERITY: dict[str, int] = {
    Status.BELOW_MINIMUM: 0,
    Status.BELOW_TARGET: 1,
    Status.MISSING_INPUT: 2,
    Status.NO_EVENTS: 3,
    Status.TARGET_MET: 4,
}


@dataclass(frozen=True)
class CpmLine:
    cpm: str
    measures: int
    target_met: int
    lowest_pct: float | None
    target: float
    minimum: float
    worst: str
    credit_gbp: float


def worst_status(statuses: list[str]) -> str:
    """The most severe status in a list (unknown statuses count as the most severe but one)."""
    return min(statuses, key=lambda s: _SEVERITY.get(s, 9))


def cpm_lines(store: Store, period: str, run_id: str) -> list[CpmLine]:
    """One line per CPM of the run, in the order the run stored them."""
    return [
        CpmLine(
            r["cpm"],
            r["n"],
            r["met"],
            r["low"],
            r["target"],
            r["minimum"],
            worst_status(r["statuses"]),
            r["credit"] or 0.0,
        )  # fmt: skip
        for r in store.rows(
            "SELECT cpm, count(*) AS n, count(*) FILTER (WHERE status = ?) AS met, min(pct) AS low, "
            "any_value(target) AS target, any_value(minimum) AS minimum, list(status) AS statuses, "
            "sum(service_credit_gbp) AS credit FROM cpm WHERE period = ? AND run_id = ? AND instance "
            "GROUP BY cpm ORDER BY min(rowid)",
            [Status.TARGET_MET.value, period, run_id],
        )
    ]


def availability_headline(store: Store, m: Methodology, period: str, run_id: str) -> str | None:
    """Overall Service Availability, the lowest Service and planned maintenance, in one sentence."""
    ov = store.rows(
        "SELECT pct, planned_min, planned_over_allowance_min FROM availability "
        "WHERE period = ? AND run_id = ? AND view = 'overall'",
        [period, run_id],
    )
    worst = store.rows(
        "SELECT subject, pct, unplanned_min FROM availability WHERE period = ? AND run_id = ? "
        "AND view = 'service' AND region = 'All' AND band = 'all' ORDER BY pct LIMIT 1",
        [period, run_id],
    )
    if not (ov and worst):
        return None
    o, w = ov[0], worst[0]
    over = (
        f", {o['planned_over_allowance_min']} min beyond the allowance"
        if o["planned_over_allowance_min"]
        else ""
    )
    svc = m.availability.service(w["subject"])
    # A regional Service's headline from its minutes sums its regions' downtime.
    unit = "region-hours" if svc and svc.regional and m.availability.headline == "minutes" else "h"
    return (
        f"Overall Service Availability {fmt.pct(o['pct'])}; lowest {w['subject']} "
        f"{fmt.pct(w['pct'])} ({w['unplanned_min'] / 60:.2f} {unit} unplanned); planned "
        f"maintenance {o['planned_min']} min excluded{over}."
    )
