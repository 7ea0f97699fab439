"""DUIS message logs in (issue 9): DCC User Interface Specification XML, schema 5.x,
namespace http://www.dccinterface.co.uk/ServiceUserGateway.

Reads service requests, responses (I0, the I99 acknowledgement, E-codes), device alerts
(DeviceAlertMessage / AlertCode) and DCC alerts (DCCAlertMessage / DCCAlertCode) from:

- JSON lines (`.jsonl`, `.jsonl.gz`): `{"captured_at": ISO, "xml": "<sr:...>", "dsp": {...}}`,
  one message per line. A DCC gateway log adds the DSP's own facts in `dsp`: report status,
  retries, quarantine release, schedule start, alert raise time and suppression.
- XML (`.xml`, `.xml.gz`): one message per file (captured at the file's modification time), or
  concatenated messages, each after a line `captured_at: ISO`.

Parsing is per message with defusedxml: no DTDs, so no entity expansion and no external
entities (XXE and billion-laughs messages are rejected). A bad message is quarantined with its
file, line and reason; the rest of the file still loads. Requests and responses are paired by
RequestID; the final response is the last non-acknowledgement one (or the I99 when that is all
there is). The result becomes the canonical `service_requests` and `alerts` rows, which then go
through the normal validation, duplicate checks and quarantine.
"""

from __future__ import annotations

import codecs
import datetime as dt
import gzip
import hashlib
import io
import json
import re
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from xml.etree.ElementTree import Element

import pyarrow as pa
import pyarrow.parquet as pq
from defusedxml import DefusedXmlException
from defusedxml.ElementTree import ParseError, fromstring

from opmetrics.engine.store import Store
from opmetrics.ingest.load import IngestError, LoadResult, load_file, sha256_of
from opmetrics.methodology import Methodology

NS = "http://www.dccinterface.co.uk/ServiceUserGateway"
ACK = "I99"
DEFAULT_REPORT_STATUS = 2  # a party-side log has no DSP report status: counted as delivered
SUFFIXES = (".jsonl", ".jsonl.gz", ".xml", ".xml.gz")
CAPTURE = re.compile(r"^captured_at:\s*(\S+)\s*$")


@dataclass
class Message:
    source: str
    line: int
    captured_at: dt.datetime
    kind: str  # request | response | device_alert | dcc_alert
    request_id: str | None = None
    response_id: str | None = None
    srv: str | None = None
    code: str | None = None
    response_at: dt.datetime | None = None
    future_dated: bool = False
    scheduled: bool = False
    dsp: dict[str, Any] = field(default_factory=dict)


@dataclass
class Bad:
    source: str
    line: int
    reason: str
    raw: str


LEGS = ("csp_sent_at", "chf_reached_at", "device_answered_at", "csp_returned_at")
# Timestamps a gateway log may carry in `dsp`: checked when the line is read, so a bad one
# quarantines its message instead of failing the whole set.
DSP_TIMES = ("quarantine_released_at", "schedule_started_at", "raised_at", *LEGS)


def _time(value: str) -> dt.datetime:
    t = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    if t.tzinfo is not None:
        t = t.astimezone(dt.UTC).replace(tzinfo=None)
    return t.replace(microsecond=t.microsecond // 1000 * 1000)


def _child(el: Element, name: str) -> Element | None:
    return el.find(f"{{{NS}}}{name}")


def _text(el: Element | None, name: str) -> str | None:
    if el is None:
        return None
    c = _child(el, name)
    return c.text.strip() if c is not None and c.text else None


def parse_message(xml: str, source: str, line: int, captured_at: dt.datetime, dsp: dict | None) -> Message:
    """One DUIS message; raises ValueError with the reason it cannot be used. The text is decoded
    already, so an XML declaration's encoding no longer applies and is dropped."""
    xml = _DECLARATION.sub("", xml, count=1)
    try:
        root = fromstring(xml, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except DefusedXmlException as e:
        raise ValueError(
            f"forbidden XML construct ({type(e).__name__}): DTDs and entities are refused"
        ) from None
    except ParseError as e:
        raise ValueError(f"not well-formed XML ({e})") from None
    if not root.tag.startswith(f"{{{NS}}}"):
        raise ValueError(f"root element {root.tag!r} is not in the DUIS namespace {NS}")
    local = root.tag.split("}", 1)[1]
    header = _child(root, "Header")
    body = _child(root, "Body")
    if header is None:
        raise ValueError(f"{local} has no Header")
    msg = Message(source, line, captured_at, "request", dsp=dsp or {})
    msg.request_id = _text(header, "RequestID")
    if local == "Request":
        msg.srv = _text(header, "ServiceReferenceVariant")
        if not msg.request_id or not msg.srv:
            raise ValueError("Request header needs RequestID and ServiceReferenceVariant")
        msg.future_dated = body is not None and any(
            e.tag == f"{{{NS}}}ExecutionDateTime" for e in body.iter()
        )
        return msg
    if local != "Response":
        raise ValueError(f"root element {local!r} is neither Request nor Response")
    msg.response_id = _text(header, "ResponseID")
    msg.code = _text(header, "ResponseCode")
    when = _text(header, "ResponseDateTime")
    if not msg.code or not when:
        raise ValueError("Response header needs ResponseCode and ResponseDateTime")
    try:
        msg.response_at = _time(when)
    except ValueError:
        raise ValueError(f"ResponseDateTime {when!r} is not an ISO 8601 time") from None
    if body is None:
        raise ValueError("Response has no Body")
    device_alert = _child(body, "DeviceAlertMessage")
    dcc_alert = _child(body, "DCCAlertMessage")
    if device_alert is not None:
        msg.kind, msg.code = "device_alert", _text(device_alert, "AlertCode")
    elif dcc_alert is not None:
        msg.kind, msg.code = "dcc_alert", _text(dcc_alert, "DCCAlertCode")
    else:
        rm = _child(body, "ResponseMessage")
        if rm is None:
            raise ValueError("Response Body has no ResponseMessage, DeviceAlertMessage or DCCAlertMessage")
        msg.kind = "response"
        msg.srv = _text(rm, "ServiceReferenceVariant")
        msg.scheduled = _child(rm, "DSPScheduledMessage") is not None
        if not msg.request_id:
            raise ValueError("a ResponseMessage needs the RequestID it answers")
    if msg.kind != "response" and (not msg.code or not msg.response_id):
        raise ValueError("an alert needs its code and a ResponseID")
    return msg


_BOMS = ((b"\xef\xbb\xbf", "utf-8"), (b"\xff\xfe", "utf-16-le"), (b"\xfe\xff", "utf-16-be"))
_DECLARED = re.compile(rb"^\s*<\?xml[^>]*encoding=[\"']([A-Za-z0-9._-]+)[\"']")
_DECLARATION = re.compile(r"^\s*<\?xml[^>]*\?>")


def _open_bytes(path: Path) -> io.BufferedReader:
    raw = gzip.open(path, "rb") if path.name.lower().endswith(".gz") else path.open("rb")  # noqa: SIM115 - returned
    return io.BufferedReader(raw) if not isinstance(raw, io.BufferedReader) else raw


def _encoding(head: bytes) -> tuple[str, int]:
    """The text encoding of a log from its first bytes, and the length of its byte-order mark:
    a BOM (UTF-8, UTF-16 either way round), else an XML declaration's encoding, else UTF-8."""
    for bom, enc in _BOMS:
        if head.startswith(bom):
            return enc, len(bom)
    if head.startswith((b"<\x00", b"\x00<")):  # UTF-16 without a BOM
        return ("utf-16-le" if head[1] == 0 else "utf-16-be"), 0
    m = _DECLARED.match(head)
    return (m.group(1).decode("ascii").lower() if m else "utf-8"), 0


def _lines(path: Path) -> Iterator[tuple[int, str | None, bytes]]:
    """(line number, text or None when the line cannot be decoded, raw bytes) of a log, in its
    own encoding. Single-byte and UTF-8 logs are decoded line by line, so one bad byte costs
    one line (one message), not the file; UTF-16 logs are decoded as a whole stream."""
    with _open_bytes(path) as fh:
        enc, bom = _encoding(fh.peek(256)[:256])
        try:
            codecs.lookup(enc)
        except LookupError:
            raise IngestError(f"{path}: unknown encoding {enc!r} in its XML declaration") from None
        fh.read(bom)
        if enc.startswith("utf-16"):
            text = io.TextIOWrapper(fh, encoding=enc, errors="strict", newline="")
            try:
                for n, line in enumerate(text, start=1):
                    yield n, line, b""
            except UnicodeDecodeError as e:
                raise IngestError(f"{path}: not {enc.upper()} text ({e.reason})") from None
            return
        for n, raw in enumerate(fh, start=1):
            try:
                yield n, raw.decode(enc), raw
            except UnicodeDecodeError:
                yield n, None, raw


def read_messages(path: Path) -> Iterator[Message | Bad]:
    """Stream the messages of one log file, yielding a Message or a Bad per message. Raises
    IngestError when the file as a whole cannot be read (a corrupt .gz, an unknown encoding)."""
    src = str(path)
    try:
        if path.name.lower().endswith((".jsonl", ".jsonl.gz")):
            for n, line, raw in _lines(path):
                if line is None:
                    yield Bad(src, n, "not UTF-8 text", raw[:500].decode("utf-8", "replace"))
                    continue
                if not line.strip():
                    continue
                try:
                    rec = json.loads(line)
                    xml, when = rec["xml"], _time(rec["captured_at"])
                except (ValueError, KeyError, TypeError) as e:
                    yield Bad(src, n, f"not a JSON log line with captured_at and xml ({e})", line[:500])
                    continue
                dsp = rec.get("dsp")
                try:
                    if dsp is not None and not isinstance(dsp, dict):
                        raise ValueError("dsp is not an object")
                    for k in DSP_TIMES:
                        if dsp and dsp.get(k):
                            try:
                                _time(str(dsp[k]))
                            except ValueError:
                                raise ValueError(f"dsp.{k} is not an ISO 8601 timestamp") from None
                    yield parse_message(xml, src, n, when, dsp)
                except ValueError as e:
                    yield Bad(src, n, str(e), xml[:500])
            return
        lines = _lines(path)
        first = next(lines, None)
        if first is None:
            return
        if first[1] is None or not CAPTURE.match(first[1].strip()):
            # One message per file, captured when the file was written.
            parts = [first, *lines]
            if any(text is None for _, text, _ in parts):
                n = next(n for n, text, _ in parts if text is None)
                yield Bad(src, n, "not text in its declared encoding", "")
                return
            text = "".join(t for _, t, _ in parts)
            when = dt.datetime.fromtimestamp(path.stat().st_mtime, dt.UTC).replace(tzinfo=None)
            when = when.replace(microsecond=when.microsecond // 1000 * 1000)
            try:
                yield parse_message(text, src, 1, when, None)
            except ValueError as e:
                yield Bad(src, 1, str(e), text[:500])
            return
        # Concatenated messages, each after a `captured_at:` line: streamed line by line.
        chunk: list[str | None] = []
        when_txt, start = CAPTURE.match(first[1].strip()).group(1), 2
        for n, line, _raw in lines:
            m = CAPTURE.match(line.strip()) if line is not None else None
            if not m:
                chunk.append(line)
                continue
            yield from _concatenated(chunk, src, start, when_txt)
            chunk, start, when_txt = [], n + 1, m.group(1)
        yield from _concatenated(chunk, src, start, when_txt)
    except (OSError, EOFError, zlib.error) as e:
        raise IngestError(f"{path}: cannot be read ({e})") from None


def _concatenated(chunk: list[str | None], src: str, line: int, when_txt: str) -> Iterator[Message | Bad]:
    if any(c is None for c in chunk):
        yield Bad(src, line, "not text in the log's encoding", "")
        return
    body = "".join(c for c in chunk if c is not None)
    if not body.strip():
        return
    try:
        yield parse_message(body, src, line, _time(when_txt), None)
    except ValueError as e:
        yield Bad(src, line, str(e), body[:500])


# --- pairing into canonical rows ----------------------------------------------------------------


@dataclass
class Parsed:
    requests: dict[str, Message] = field(default_factory=dict)
    responses: dict[str, list[Message]] = field(default_factory=dict)
    alerts: list[Message] = field(default_factory=list)
    bad: list[Bad] = field(default_factory=list)
    messages: int = 0
    failed: list[Bad] = field(default_factory=list)  # files that could not be read at all


def parse_files(paths: list[Path]) -> Parsed:
    """Every file on its own: a file that cannot be read as a whole (a corrupt .gz, an unknown
    encoding) is set aside with its reason and contributes nothing; the others load."""
    out = Parsed()
    for path in paths:
        try:
            items = list(read_messages(path))
        except IngestError as e:
            out.failed.append(Bad(str(path), 0, str(e).removeprefix(f"{path}: "), ""))
            continue
        for item in items:
            out.messages += 1
            if isinstance(item, Bad):
                out.bad.append(item)
            elif item.kind == "request":
                if item.request_id in out.requests:
                    out.bad.append(
                        Bad(item.source, item.line, f"second Request with RequestID {item.request_id}", "")
                    )
                else:
                    out.requests[item.request_id] = item
            elif item.kind == "response":
                out.responses.setdefault(item.request_id, []).append(item)
            else:
                out.alerts.append(item)
    return out


def _lookup(store: Store) -> tuple[dict[str, tuple[str, str]], dict[str, dict[str, Any]]]:
    """Party by user EUI-64 (from `parties`) and device attributes (latest `devices` extract)."""
    parties = {
        r["user_id"]: (r["party_id"], r["user_role"])
        for r in store.rows("SELECT user_id, party_id, user_role FROM parties")
    }
    devices = {
        r["device_id"]: r
        for r in store.rows(
            "SELECT device_id, device_type, smets, region FROM devices "
            "QUALIFY row_number() OVER (PARTITION BY device_id ORDER BY extracted_at DESC) = 1"
        )
    }
    return parties, devices


def _final(responses: list[Message]) -> Message:
    real = [r for r in responses if r.code != ACK]
    chosen = real or responses
    return max(chosen, key=lambda r: (r.captured_at, r.line))


def canonical_tables(
    parsed: Parsed, store: Store, m: Methodology
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[Bad]]:
    """(service_requests rows, alerts rows, unpaired messages)."""
    parties, devices = _lookup(store)
    critical = {s.srv: s.critical for s in m.srvs}
    unpaired: list[Bad] = []
    requests: list[dict[str, Any]] = []

    def who(eui: str) -> tuple[str, str]:
        return parties.get(eui, (eui, "OU"))

    for rid, req in parsed.requests.items():
        parts = rid.split(":")
        if len(parts) != 3:
            unpaired.append(
                Bad(req.source, req.line, f"RequestID {rid} is not originator:target:counter", "")
            )
            continue
        resp = parsed.responses.pop(rid, None)
        final = _final(resp) if resp else None
        requests.append(_request_row(req, final, parts, who, devices, critical))
    for rid, resps in parsed.responses.items():
        for r in resps:
            if r.scheduled:  # a DSP-scheduled message: the DSP created the request itself
                parts = rid.split(":")
                if len(parts) == 3:
                    start = (
                        _time(r.dsp["schedule_started_at"])
                        if r.dsp.get("schedule_started_at")
                        else r.response_at
                    )
                    pseudo = Message(r.source, r.line, start, "request", rid, srv=r.srv, dsp=r.dsp)
                    requests.append(_request_row(pseudo, r, parts, who, devices, critical, "dcc-scheduled"))
                    continue
            unpaired.append(
                Bad(r.source, r.line, f"response {r.code} with no Request for RequestID {rid}", "")
            )
    alerts = []
    for a in parsed.alerts:
        parts = (a.response_id or "").split(":")
        if len(parts) != 3:
            unpaired.append(
                Bad(
                    a.source, a.line, f"alert ResponseID {a.response_id} is not originator:target:counter", ""
                )
            )
            continue
        device, user = parts[0], parts[1]
        party, _role = who(user)
        d = devices.get(device, {})
        delivered = a.dsp.get("delivered", True)
        alerts.append(
            {
                "alert_id": a.dsp.get("alert_id") or a.response_id,
                "alert_code": a.code,
                "kind": "device" if a.kind == "device_alert" else "dcc",
                "device_id": device,
                "device_type": d.get("device_type"),
                "smets": d.get("smets"),
                "region": d.get("region"),
                "party_id": party,
                "request_id": a.request_id,
                "raised_at": _time(a.dsp["raised_at"]) if a.dsp.get("raised_at") else a.response_at,
                "delivered_at": a.captured_at if delivered else None,
                "suppressed": bool(a.dsp.get("suppressed", False)),
            }
        )
    return requests, alerts, unpaired


def _request_row(req, final, parts, who, devices, critical, mode=None) -> dict[str, Any]:
    originator, device, _counter = parts
    party, role = who(originator)
    d = devices.get(device, {})
    dsp = req.dsp
    released = dsp.get("quarantine_released_at")
    return {
        "request_id": req.request_id,
        "party_id": party,
        "user_role": role,
        "srv": req.srv,
        "mode": mode or dsp.get("mode") or ("future-dated" if req.future_dated else "on-demand"),
        "critical": critical.get(req.srv, False),
        "device_id": device,
        "device_type": d.get("device_type"),
        "smets": d.get("smets"),
        "region": d.get("region"),
        "received_at": req.captured_at,
        "responded_at": final.captured_at if final else None,
        "response_code": final.code if final else None,
        "report_status": int(dsp.get("report_status", DEFAULT_REPORT_STATUS)),
        "dsp_attempts": int(dsp.get("attempts", 1)),
        "quarantine_released_at": _time(released) if released else None,
        **{leg: _time(dsp[leg]) if dsp.get(leg) else None for leg in LEGS},
    }


SR_TYPES = {
    "critical": pa.bool_(),
    "smets": pa.int8(),
    "report_status": pa.int32(),
    "dsp_attempts": pa.int32(),
}


def _arrow(rows: list[dict[str, Any]], store: Store, table: str) -> pa.Table:
    t = store.contract.table(table)
    cols = {}
    for f in t.fields:
        vals = [r.get(f.name) for r in rows]
        if f.type == "timestamp":
            cols[f.name] = pa.array(vals, pa.timestamp("ms"))
        elif f.type == "integer":
            cols[f.name] = pa.array(vals, pa.int64())
        elif f.type == "number":
            cols[f.name] = pa.array(vals, pa.float64())
        elif f.type == "boolean":
            cols[f.name] = pa.array(vals, pa.bool_())
        else:
            cols[f.name] = pa.array([None if v is None else str(v) for v in vals], pa.string())
    return pa.table(cols)


@dataclass
class DuisResult:
    messages: int
    bad: int
    unpaired: int
    loads: list[LoadResult]
    already: bool = False
    failed: list[tuple[str, str]] = field(default_factory=list)  # (file, reason): nothing loaded from it


def ingest_duis(store: Store, m: Methodology, paths: list[Path], staging: Path) -> DuisResult:
    """Parse, pair and load a set of DUIS logs (pairing is within the set). Loading the same set
    again changes nothing."""
    h = hashlib.sha256()
    for p in sorted(paths):
        h.update(sha256_of(p).encode())  # streamed: a file is never read whole to hash it
    set_id = h.hexdigest()[:16]
    parsed = parse_files(paths)
    requests, alerts, unpaired = canonical_tables(parsed, store, m)
    staging.mkdir(parents=True, exist_ok=True)
    loads = []
    for name, rows in (("service_requests", requests), ("alerts", alerts)):
        if not rows:
            continue
        out = staging / f"duis-{set_id}.{name}.parquet"
        pq.write_table(_arrow(rows, store, name), out)
        loads.append(load_file(store, out, name))
    _record_rejects(store, set_id, [*parsed.failed, *parsed.bad], unpaired)
    return DuisResult(
        parsed.messages,
        len(parsed.bad),
        len(unpaired),
        loads,
        all(r.status == "already loaded" for r in loads),
        [(b.source, b.reason) for b in parsed.failed],
    )


def _record_rejects(store: Store, set_id: str, bad: list[Bad], unpaired: list[Bad]) -> None:
    """Malformed messages go to the quarantine; unpaired ones to `duis_unpaired`. Both keep the
    file, the line and the reason."""
    con = store.con
    con.execute(
        "CREATE TABLE IF NOT EXISTS duis_unpaired (set_id VARCHAR, path VARCHAR, line BIGINT, reason VARCHAR)"
    )
    done = con.execute("SELECT count(*) FROM duis_unpaired WHERE set_id = ?", [set_id]).fetchall()[0][0]
    q_done = con.execute(
        "SELECT count(*) FROM quarantine WHERE table_name = 'duis' AND raw LIKE ?", [f"set {set_id}%"]
    ).fetchall()[0][0]
    if not done and unpaired:
        con.executemany(
            "INSERT INTO duis_unpaired VALUES (?, ?, ?, ?)",
            [[set_id, b.source, b.line, b.reason] for b in unpaired],
        )
    if not q_done and bad:
        con.executemany(
            "INSERT INTO quarantine VALUES (0, 'duis', ?, ?, 'message', NULL, ?, ?, ?)",
            [[b.source, b.line, b.reason, b.reason, f"set {set_id}: {b.raw}"] for b in bad],
        )


# --- party-side measurement ---------------------------------------------------------------------

_PARTY_DDL = """
CREATE TABLE IF NOT EXISTS party_rtt (
    request_id VARCHAR PRIMARY KEY, party_id VARCHAR, srv VARCHAR, mode VARCHAR, smets TINYINT,
    sent_at TIMESTAMP, received_at TIMESTAMP, response_code VARCHAR, source VARCHAR, line BIGINT
)"""


def load_party_logs(
    store: Store, m: Methodology, paths: list[Path], party: str, failed: list[Bad] | None = None
) -> tuple[int, int, int]:
    """A SEC Party's own DUIS log: when it sent each request and received the final response.
    Stored in `party_rtt` (re-loading replaces the same requests). Returns (requests, bad,
    requests of another party); files that could not be read are added to `failed`."""
    parsed = parse_files(paths)
    if failed is not None:
        failed.extend(parsed.failed)
    parties, devices = _lookup(store)
    store.con.execute(_PARTY_DDL)
    rows, foreign = [], 0
    for rid, req in parsed.requests.items():
        parts = rid.split(":")
        if len(parts) != 3:
            continue
        owner = parties.get(parts[0], (parts[0], "OU"))[0]
        if owner != party:
            foreign += 1
            continue
        final = _final(parsed.responses[rid]) if rid in parsed.responses else None
        d = devices.get(parts[1], {})
        rows.append(
            [rid, party, req.srv, "future-dated" if req.future_dated else "on-demand", d.get("smets"),
             req.captured_at, final.captured_at if final else None, final.code if final else None,
             req.source, req.line]
        )  # fmt: skip
    if rows:
        store.con.executemany("INSERT OR REPLACE INTO party_rtt VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
    return len(rows), len(parsed.bad), foreign
