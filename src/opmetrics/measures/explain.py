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
    requests = store.ibis().table("service_requests")
    found = requests.filter(requests.request_id == request_id).select("report_date").limit(1).to_pyarrow()
    if not found.num_rows:
        return None
    period = found["report_date"][0].as_py().strftime("%Y-%m")
    scope = Scope(store.ibis(), m, period, default_as_of(store, period), pmel.active(store))
    t = classified_requests(scope)
    r = t.filter(t.request_id == request_id).to_pyarrow().to_pylist()[0]
    att = attributed(scope, t.filter(t.included))
    procs = sorted(x["process_id"] for x in att.filter(att._rec == r["_rec"]).to_pyarrow().to_pylist())
    files = store.ibis().table("loaded_files")
    source = files.filter(files.file_id == r["_file_id"]).select("path").limit(1).to_pyarrow()
    r["source"] = f"{source['path'][0].as_py() if source.num_rows else '?'} row {r['_row']}"
    r["business_processes"] = procs
    r["methodology"] = m.version
    for k in ("_file_id", "_row", "_rec"):
        r.pop(k)
    return r
