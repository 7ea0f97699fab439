"""The Ofgem Operational Performance Regime view: the OPR's CPM cells month by month
(003 l.153 "CPM 6 (service availability) and CPM 6A"). Ofgem's guidance scores any month
without a reported value as zero, so a month that was never computed, or a cell with no value
(missing input), shows the missing score, marked."""

from __future__ import annotations

from typing import Any

import duckdb

from opmetrics.engine.store import Store
from opmetrics.measures.availability import previous_period
from opmetrics.methodology import Methodology


def months_back(period: str, n: int) -> list[str]:
    out = [period]
    while len(out) < n:
        out.append(previous_period(out[-1]))
    return out[::-1]


def opr_view(store: Store, m: Methodology, period: str) -> dict[str, Any]:
    cfg = m.opr
    try:
        rows = store.rows(
            "SELECT c.period, c.cpm, c.key, c.segment, c.pct FROM cpm c JOIN runs r "
            "ON r.period = c.period AND r.run_id = c.run_id WHERE c.cpm IN ? AND c.instance",
            [list(cfg.cpms)],
        )
    except duckdb.CatalogException:
        rows = []
    wanted = [r for r in rows if cfg.cpms[r["cpm"]] == "all" or r["key"] in cfg.cpms[r["cpm"]]]
    months = months_back(period, cfg.months)
    # Only months from the first one computed: earlier ones predate opmetrics' records.
    computed = sorted({r["period"] for r in wanted if r["period"] <= period})
    if computed:
        months = [p for p in months if p >= computed[0]]
    cells = sorted({(r["cpm"], r["key"], r["segment"]) for r in wanted if r["period"] in months})
    value = {(r["period"], r["cpm"], r["key"], r["segment"]): r["pct"] for r in wanted}
    out_rows = []
    for cpm, key, segment in cells:
        vals = []
        for p in months:
            pct = value.get((p, cpm, key, segment))
            vals.append({"period": p, "pct": pct, "reported": pct is not None,
                         "score": pct if pct is not None else cfg.missing_score})  # fmt: skip
        out_rows.append({"cpm": cpm, "key": key, "segment": segment, "values": vals})
    scores = {p: [r["values"][i]["score"] for r in out_rows] for i, p in enumerate(months)}
    return {
        "months": months,
        "rows": out_rows,
        "month_score": {p: (sum(v) / len(v) if v else None) for p, v in scores.items()},
        "unreported": sum(1 for r in out_rows for v in r["values"] if not v["reported"]),
    }
