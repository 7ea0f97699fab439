"""How one service request was classified: the rules that included or excluded it, its outcome,
the business processes it counts in, and the file and row it came from."""

from __future__ import annotations

from typing import Any

from opmetrics.engine import pmel
from opmetrics.engine.store import Store
from opmetrics.measures.attribution import attributed
from opmetrics.measures.records import Scope, classified_requests
from opmetrics.measures.run import default_as_of
from opmetrics.methodology import Methodology


def explain_request(store: Store, m: Methodology, request_id: str) -> dict[str, Any] | None:
    """The classified record of a stored request, or None when no request has that id."""
    found = store.rows("SELECT report_date FROM service_requests WHERE request_id = ?", [request_id])
    if not found:
        return None
    period = found[0]["report_date"].strftime("%Y-%m")
    scope = Scope(store.ibis(), m, period, default_as_of(store, period), pmel.active(store))
    t = classified_requests(scope)
    r = t.filter(t.request_id == request_id).to_pyarrow().to_pylist()[0]
    att = attributed(scope, t.filter(t.included))
    procs = sorted(x["process_id"] for x in att.filter(att._rec == r["_rec"]).to_pyarrow().to_pylist())
    source = store.rows("SELECT path FROM loaded_files WHERE file_id = ?", [r["_file_id"]])
    r["source"] = f"{source[0]['path'] if source else '?'} row {r['_row']}"
    r["business_processes"] = procs
    r["methodology"] = m.version
    for k in ("_file_id", "_row", "_rec"):
        r.pop(k)
    return r
