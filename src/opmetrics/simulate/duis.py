"""Write a simulated month as DUIS message logs (issue 9), so the same month can be measured
from the messages and from the canonical tables, and the figures compared.

Each day becomes `duis/<day>.jsonl.gz`: one JSON line per message, as a DCC gateway would log
it: `captured_at` (when the gateway saw the message), the DUIS `xml`, and `dsp`, the DSP's own
facts that no DUIS message carries (report status, retries, quarantine release, the start of a
DSP schedule, alert raise time, suppression). The XML follows DUIS 5.x element names; bodies
carry no GBCS payload (the measures do not read it).
"""

from __future__ import annotations

import datetime as dt
import gzip
import json
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

import pyarrow.dataset as ds

NS = "http://www.dccinterface.co.uk/ServiceUserGateway"
LEGS = ("csp_sent_at", "chf_reached_at", "device_answered_at", "csp_returned_at")
HEAD = '<?xml version="1.0" encoding="UTF-8"?>'


def _iso(t: dt.datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


def request_xml(request_id: str, srv: str, future: dt.datetime | None) -> str:
    sr = srv.rsplit(".", 1)[0] if srv.count(".") == 2 else srv
    body = f"<sr:ExecutionDateTime>{_iso(future)}</sr:ExecutionDateTime>" if future else ""
    return (
        f'{HEAD}<sr:Request xmlns:sr="{NS}" schemaVersion="5.1"><sr:Header>'
        f"<sr:RequestID>{escape(request_id)}</sr:RequestID><sr:CommandVariant>1</sr:CommandVariant>"
        f"<sr:ServiceReference>{sr}</sr:ServiceReference>"
        f"<sr:ServiceReferenceVariant>{srv}</sr:ServiceReferenceVariant></sr:Header>"
        f"<sr:Body>{body}</sr:Body></sr:Request>"
    )


def response_xml(request_id: str, srv: str, code: str, at: dt.datetime, scheduled: bool = False) -> str:
    sr = srv.rsplit(".", 1)[0] if srv.count(".") == 2 else srv
    extra = (
        "<sr:DSPScheduledMessage><sr:DSPScheduleID>1</sr:DSPScheduleID></sr:DSPScheduledMessage>"
        if scheduled
        else ""
    )
    origin, target, counter = request_id.split(":")
    return (
        f'{HEAD}<sr:Response xmlns:sr="{NS}" schemaVersion="5.1"><sr:Header>'
        f"<sr:RequestID>{escape(request_id)}</sr:RequestID>"
        f"<sr:ResponseID>{target}:{origin}:{counter}</sr:ResponseID>"
        f"<sr:ResponseCode>{code}</sr:ResponseCode><sr:ResponseDateTime>{_iso(at)}</sr:ResponseDateTime>"
        f"</sr:Header><sr:Body><sr:ResponseMessage><sr:ServiceReference>{sr}</sr:ServiceReference>"
        f"<sr:ServiceReferenceVariant>{srv}</sr:ServiceReferenceVariant>{extra}</sr:ResponseMessage>"
        f"</sr:Body></sr:Response>"
    )


def alert_xml(
    kind: str, code: str, device: str, user: str, counter: int, at: dt.datetime, request_id: str | None
) -> str:
    rid = f"<sr:RequestID>{escape(request_id)}</sr:RequestID>" if request_id else ""
    if kind == "device":
        body = f"<sr:DeviceAlertMessage><sr:AlertCode>{code}</sr:AlertCode></sr:DeviceAlertMessage>"
    else:
        body = (
            f"<sr:DCCAlertMessage><sr:DCCAlertCode>{code}</sr:DCCAlertCode><sr:DCCAlert/>"
            "</sr:DCCAlertMessage>"
        )
    return (
        f'{HEAD}<sr:Response xmlns:sr="{NS}" schemaVersion="5.1"><sr:Header>{rid}'
        f"<sr:ResponseID>{device}:{user}:{counter}</sr:ResponseID><sr:ResponseCode>I0</sr:ResponseCode>"
        f"<sr:ResponseDateTime>{_iso(at)}</sr:ResponseDateTime></sr:Header>"
        f"<sr:Body>{body}</sr:Body></sr:Response>"
    )


def write_duis_logs(data_dir: Path, out_dir: Path, party: str | None = None, seed: int = 7) -> dict[str, int]:
    """Turn the simulator's Parquet tables in `data_dir` into per-day DUIS logs in `out_dir`.

    `party`: write that SEC Party's own log instead: only its messages, no DSP facts, and
    captured when the party sent or received them (its network adds 40-400 ms each way).
    """
    import random

    rnd = random.Random(seed)
    out_dir.mkdir(parents=True, exist_ok=True)
    parties = {r["party_id"]: r["user_id"] for r in ds.dataset(data_dir / "parties").to_table().to_pylist()}
    counts = {"requests": 0, "responses": 0, "alerts": 0}
    lines: dict[str, list[tuple[dt.datetime, str]]] = {}

    def put(day: str, at: dt.datetime, xml: str, dsp: dict) -> None:
        rec: dict[str, Any] = {"captured_at": _iso(at), "xml": xml}
        if dsp and party is None:
            rec["dsp"] = dsp
        lines.setdefault(day, []).append((at, json.dumps(rec, separators=(",", ":"))))

    sr = ds.dataset(data_dir / "service_requests", format="parquet")
    for batch in sr.to_batches():
        for r in batch.to_pylist():
            if party is not None and (r["party_id"] != party or r["mode"] == "dcc-scheduled"):
                continue
            rid, srv = r["request_id"], r["srv"]
            recv = r["received_at"].replace(tzinfo=None)
            day = recv.date().isoformat()
            dsp = {"report_status": r["report_status"], "attempts": r["dsp_attempts"]}
            if r["quarantine_released_at"] is not None:
                dsp["quarantine_released_at"] = _iso(r["quarantine_released_at"].replace(tzinfo=None))
            for leg in LEGS:  # the DSP's and CSP's timestamps of the legs of the journey
                if r.get(leg) is not None:
                    dsp[leg] = _iso(r[leg].replace(tzinfo=None))
            scheduled = r["mode"] == "dcc-scheduled"
            if scheduled:
                # The DSP generates scheduled requests itself; its gateway log records them too.
                dsp["mode"] = "dcc-scheduled"
            future = recv + dt.timedelta(hours=1) if r["mode"] == "future-dated" else None
            sent = recv - dt.timedelta(milliseconds=rnd.randint(40, 400)) if party else recv
            put(day, sent, request_xml(rid, srv, future), dsp)
            counts["requests"] += 1
            if r["responded_at"] is not None:
                at = r["responded_at"].replace(tzinfo=None)
                got = at + dt.timedelta(milliseconds=rnd.randint(40, 400)) if party else at
                # A log holds what was captured that day: a late response is in the next day's log.
                xml = response_xml(rid, srv, r["response_code"], at, scheduled)
                put(got.date().isoformat(), got, xml, {})
                counts["responses"] += 1
    al = ds.dataset(data_dir / "alerts", format="parquet")
    n = 0
    for batch in al.to_batches():
        for r in batch.to_pylist():
            if party is not None and r["party_id"] != party:
                continue
            raised = r["raised_at"].replace(tzinfo=None)
            delivered = r["delivered_at"].replace(tzinfo=None) if r["delivered_at"] is not None else None
            at = delivered or raised
            n += 1
            dsp = {"alert_id": r["alert_id"], "raised_at": _iso(raised), "suppressed": r["suppressed"]}
            if delivered is None:
                dsp["delivered"] = False
            user = parties[r["party_id"]]
            put(
                raised.date().isoformat(),
                at,
                alert_xml(
                    r["kind"], r["alert_code"], r["device_id"], user, n, raised, r["request_id"] or None
                ),
                dsp,
            )
            counts["alerts"] += 1
    for day, items in lines.items():
        items.sort(key=lambda x: x[0])
        with gzip.open(out_dir / f"{day}.jsonl.gz", "wt", encoding="utf-8", compresslevel=5) as fh:
            for _, line in items:
                fh.write(line + "\n")
    return counts
