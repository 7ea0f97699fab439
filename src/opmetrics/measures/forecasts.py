"""Users' forecasts against what they sent (SEC H3.24; issue 12): each SEC Party's Service
Requests in the month as a share of its forecast, flagged when outside the tolerance."""

from __future__ import annotations

import ibis

from opmetrics.measures.outcome import Context, Row, count_row, day_cells, rows_of, share_row
from opmetrics.measures.records import Scope, in_scope


def day_sent(s: Scope) -> ibis.Table:
    """Every Service Request received (whatever its status) per day and party: what FC1 holds
    against the forecasts, and IC2 notes per day."""
    sr = in_scope(s, s.con.table("service_requests"))
    return sr.group_by(["report_date", "party_id"]).aggregate(n=sr.count())


def fc1(s: Scope, ctx: Context) -> list[Row]:
    tol = s.m.measure("FC1").params.get("tolerance_pct", 10.0)
    f = s.con.table("forecasts")
    f = f.filter(f.report_date.between(s.first, s.last))
    forecast = {r["party_id"]: r["requests"] for r in rows_of(f.select("party_id", "requests"))}
    t = day_cells(s, ctx, "day_sent", day_sent)
    sent = {
        r["party_id"]: r["n"] for r in rows_of(t.group_by("party_id").aggregate(n=t.n.sum().cast("int64")))
    }
    out: list[Row] = []
    for party in sorted(set(forecast) | set(sent)):
        actual, fc = sent.get(party, 0), forecast.get(party)
        if fc is None:
            out.append(count_row("party", party, actual, key2="no forecast", note="no forecast submitted"))
            continue
        ratio = 100 * actual / fc if fc else None
        note = ""
        if ratio is None or ratio > 100 + tol:
            note = f"more than {tol:g} % above forecast"
        elif ratio < 100 - tol:
            note = f"more than {tol:g} % below forecast"
        row = share_row("party", party, actual, fc, key2="sent as % of forecast", note=note)
        row["unit"] = "% of forecast"  # may exceed 100: not a share of a whole
        out.append(row)
    return out


MEASURES = {"FC1": fc1}
CELLS = {"day_sent": day_sent}
