"""Round-trip time as a SEC Party experiences it (its own DUIS log: sent to received) beside the
DCC-side RTT of the same requests.

Both sides are judged by the report's own definitions (`measures.records`): the TRT lookup
(`with_trt`), the on-time test (`within_trt_of`), the period's UK days, and on the DCC side each
matched request's inclusion, RTT (quarantine time removed) and within-TRT flag as the RSVP
figures count them. A matched request the report excludes is counted apart, not compared.
The party's own network and gateway time (party minus DCC) compares with the DCC's elapsed
time, an ADT quarantine hold included, which the reported RTT leaves out:
001 l.749 "DCC propose excluding the time SRV's have been quarantined".
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import ibis

from opmetrics.engine import pmel
from opmetrics.engine.store import Store
from opmetrics.measures.records import Scope, every_request_classified, with_trt, within_trt_of
from opmetrics.methodology import Methodology


def party_rtt_report(store: Store, m: Methodology, party: str, period: str) -> list[dict[str, Any]]:
    """Per SRV and mode: the party's requests in the period's UK days (by when it sent them),
    its own round trip against the TRT, and the DCC-side figures of the same requests."""
    s = Scope(con=store.ibis(), m=m, period=period, as_of=dt.datetime.max, exceptions=pmel.active(store))
    p = s.con.table("party_rtt")
    p = p.filter((p.party_id == party) & s.uk_day(p.sent_at).notnull())
    # A device not in the DCC's inventory has no SMETS: its TRT is looked up as SMETS2's.
    p = with_trt(s, p.mutate(smets=p.smets.fill_null(2)))
    p = p.mutate(party_ms=p.received_at.delta(p.sent_at, unit="millisecond"))
    d = every_request_classified(s)
    d = d.select(
        _rid="request_id",
        dcc_included="included",
        dcc_ms=ibis.ifelse(d.has_response, d.rtt_ms, None),
        dcc_within="within_trt",
        # The DCC's elapsed time, quarantine hold included: the party waited through it too.
        dcc_elapsed_ms=d.responded_at.delta(d.received_at, unit="millisecond"),
    )
    t = p.left_join(d, p.request_id == d._rid)
    inc = t.dcc_included.fill_null(False)
    dcc_ms = ibis.ifelse(inc, t.dcc_ms, None)
    g = (
        t.group_by(["srv", "mode"])
        .aggregate(
            requests=t.count(),
            answered=t.received_at.count(),
            trt_s=t.trt_s.max(),
            party_mean_s=t.party_ms.mean() / 1000,
            party_median_s=t.party_ms.median() / 1000,
            _party_within=within_trt_of(t.party_ms, t.trt_s).fill_null(False).cast("int64").sum(),
            dcc_included=inc.cast("int64").sum(),
            dcc_matched=dcc_ms.count(),
            dcc_excluded=(t._rid.notnull() & ~inc).cast("int64").sum(),
            dcc_mean_s=dcc_ms.mean() / 1000,
            dcc_median_s=dcc_ms.median() / 1000,
            _dcc_within=ibis.ifelse(inc & t.dcc_ms.notnull(), t.dcc_within, None).cast("int64").sum(),
            party_minus_dcc_mean_s=ibis.ifelse(inc, t.party_ms - t.dcc_elapsed_ms, None).mean() / 1000,
        )
        .order_by(["srv", "mode"])
    )
    out = []
    for r in g.to_pyarrow().to_pylist():
        pw, dw = r["_party_within"], r["_dcc_within"] or 0
        # An SRV without a Target Response Time has no share within it: not applicable, not 0 %.
        has_trt = r["trt_s"] is not None
        out.append(
            {
                **{k: r[k] for k in ("srv", "mode", "requests", "answered", "trt_s")},
                "party_mean_s": r["party_mean_s"],
                "party_median_s": r["party_median_s"],
                "party_within_trt_pct": 100.0 * pw / r["answered"] if r["answered"] and has_trt else None,
                "dcc_included": r["dcc_included"],
                "dcc_matched": r["dcc_matched"],
                "dcc_excluded": r["dcc_excluded"],
                "dcc_mean_s": r["dcc_mean_s"],
                "dcc_median_s": r["dcc_median_s"],
                "dcc_within_trt_pct": 100.0 * dw / r["dcc_matched"] if r["dcc_matched"] and has_trt else None,
                "party_minus_dcc_mean_s": r["party_minus_dcc_mean_s"],
            }
        )
    return out
