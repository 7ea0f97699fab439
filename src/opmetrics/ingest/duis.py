"""DUIS message logs in (issue 9): DCC User Interface Specification XML, schema 5.x,
namespace http://www.dccinterface.co.uk/ServiceUserGateway.

Reads service requests, responses (I0, the I99 acknowledgement, E-codes), device alerts
(DeviceAlertMessage / AlertCode) and DCC alerts (DCCAlertMessage / DCCAlertCode) from:

- JSON lines (`.jsonl`, `.jsonl.gz`): `{"captured_at": ISO, "xml": "<sr:...>", "dsp": {...}}`,
  one message per line. A DCC gateway log adds the DSP's own facts in `dsp`: report status,
  retries, quarantine release, schedule start, alert raise time and suppression.
- XML (`.xml`, `.xml.gz`): one message per file (captured at the file's modification time), or
  concatenated messages, each after a line `captured_at: ISO`.

Parsing is per message with lxml, no DTD loaded, no entity resolved and no network access; a
message declaring a DOCTYPE or an ENTITY is refused before parsing (XXE and billion-laughs
messages are rejected). A bad message is quarantined with its
file, line and reason; the rest of the file still loads. Pairing requests with their responses
across loads, loading the canonical rows and a party's own log (`load_party_logs`) is
`duis_pairing`; this module reads messages.
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

from lxml import etree

from opmetrics.ingest.load import IngestError

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
    key: str = ""  # the message's identity: the same message in two overlapping logs is one


@dataclass
class Bad:
    source: str
    line: int
    reason: str
    raw: str


# A response generated more than this before or after it was captured says that one of the two
# clocks is wrong (an alert may be delivered hours after it was raised: not checked).
PLAUSIBLE_CLOCK = dt.timedelta(hours=1)
LEGS = ("csp_sent_at", "chf_reached_at", "device_answered_at", "csp_returned_at")
# Timestamps a gateway log may carry in `dsp`: checked when the line is read, so a bad one
# quarantines its message instead of failing the whole set.
DSP_TIMES = ("quarantine_released_at", "schedule_started_at", "raised_at", *LEGS)


def _time(value: str) -> dt.datetime:
    """An ISO 8601 time as naive UTC, floored to the millisecond."""
    if value.endswith("Z"):  # the common case, read without an offset conversion
        t = dt.datetime.fromisoformat(value[:-1])
        if t.tzinfo is None:
            return t.replace(microsecond=t.microsecond // 1000 * 1000) if t.microsecond % 1000 else t
    t = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    if t.tzinfo is not None:
        t = t.astimezone(dt.UTC).replace(tzinfo=None)
    return t.replace(microsecond=t.microsecond // 1000 * 1000)


# No DTD is loaded, no entity resolved and nothing fetched from the network; a message with a
# DOCTYPE or ENTITY declaration is refused before parsing (XXE, billion laughs).
_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)


_PREFIX = f"{{{NS}}}"


def _kids(el: etree._Element | None) -> dict[str, etree._Element]:
    """An element's DUIS children by local name (the first of each): one pass over the children
    instead of a path search per field."""
    out: dict[str, etree._Element] = {}
    if el is not None:
        for c in el:
            tag = c.tag
            if isinstance(tag, str) and tag.startswith(_PREFIX):
                out.setdefault(tag[len(_PREFIX) :], c)
    return out


def _text(kids: dict[str, etree._Element], name: str) -> str | None:
    c = kids.get(name)
    return c.text.strip() if c is not None and c.text else None


def parse_message(
    xml: str,
    source: str,
    line: int,
    captured_at: dt.datetime,
    dsp: dict | None,
    coarse: bool = False,
    schema: etree.XMLSchema | None = None,
) -> Message:
    """One DUIS message; raises ValueError with the reason it cannot be used. The text is decoded
    already, so an XML declaration's encoding no longer applies and is dropped.

    `coarse`: the capture time is only a file's modification time in whole seconds; a response's
    own ResponseDateTime within that second is then the better time. `schema`: a DUIS XSD the
    message must be valid against (`ingest-duis --xsd`)."""
    head = xml[:120]
    if "<?xml" in head and "encoding" in head and not _UTF8_DECLARED.search(head):
        xml = _DECLARATION.sub("", xml, count=1)  # lxml reads the UTF-8 bytes by their declaration
    data = xml.strip().encode()
    key = hashlib.sha256(captured_at.isoformat().encode() + b"|" + data).hexdigest()[:32]
    if b"<!DOCTYPE" in data or b"<!ENTITY" in data:
        raise ValueError("forbidden XML construct (DTD): DTDs and entities are refused")
    try:
        root = etree.fromstring(data, _PARSER)
    except etree.XMLSyntaxError as e:
        raise ValueError(f"not well-formed XML ({e})") from None
    if not isinstance(root.tag, str):
        raise ValueError("not well-formed XML (no root element)")
    if not root.tag.startswith(_PREFIX):
        raise ValueError(f"root element {root.tag!r} is not in the DUIS namespace {NS}")
    if schema is not None and not schema.validate(root):
        err = schema.error_log.last_error
        raise ValueError(f"not valid against the DUIS schema (line {err.line}: {err.message})")
    local = root.tag[len(_PREFIX) :]
    top = _kids(root)
    body = top.get("Body")
    if "Header" not in top:
        raise ValueError(f"{local} has no Header")
    header = _kids(top["Header"])
    msg = Message(source, line, captured_at, "request", dsp=dsp or {}, key=key)
    msg.request_id = _text(header, "RequestID")
    if local == "Request":
        msg.srv = _text(header, "ServiceReferenceVariant")
        if not msg.request_id or not msg.srv:
            raise ValueError("Request header needs RequestID and ServiceReferenceVariant")
        msg.future_dated = (
            body is not None and next(body.iter(f"{_PREFIX}ExecutionDateTime"), None) is not None
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
    parts = _kids(body)
    if "DeviceAlertMessage" in parts:
        msg.kind, msg.code = "device_alert", _text(_kids(parts["DeviceAlertMessage"]), "AlertCode")
    elif "DCCAlertMessage" in parts:
        msg.kind, msg.code = "dcc_alert", _text(_kids(parts["DCCAlertMessage"]), "DCCAlertCode")
    else:
        if "ResponseMessage" not in parts:
            raise ValueError("Response Body has no ResponseMessage, DeviceAlertMessage or DCCAlertMessage")
        rm = _kids(parts["ResponseMessage"])
        msg.kind = "response"
        msg.srv = _text(rm, "ServiceReferenceVariant")
        msg.scheduled = "DSPScheduledMessage" in rm
        if not msg.request_id:
            raise ValueError("a ResponseMessage needs the RequestID it answers")
    if msg.kind != "response" and (not msg.code or not msg.response_id):
        raise ValueError("an alert needs its code and a ResponseID")
    if msg.kind == "response":
        gap = msg.response_at - captured_at
        if abs(gap) > PLAUSIBLE_CLOCK:
            raise ValueError(
                f"implausible clock: ResponseDateTime {when} is {gap.total_seconds() / 60:+,.0f} min from "
                f"the capture time {captured_at.isoformat()}"
            )
        if coarse and abs(gap) < dt.timedelta(seconds=1):
            msg.captured_at = msg.response_at  # the same second, to the millisecond
    return msg


_BOMS = ((b"\xef\xbb\xbf", "utf-8"), (b"\xff\xfe", "utf-16-le"), (b"\xfe\xff", "utf-16-be"))
_DECLARED = re.compile(rb"^\s*<\?xml[^>]*encoding=[\"']([A-Za-z0-9._-]+)[\"']")
_DECLARATION = re.compile(r"^\s*<\?xml[^>]*\?>")
_UTF8_DECLARED = re.compile(r"encoding=[\"']utf-8[\"']", re.I)


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


def load_schema(xsd: Path) -> etree.XMLSchema:
    """A DUIS XSD (with the schemas it imports beside it), read without network access."""
    parser = etree.XMLParser(resolve_entities=False, no_network=True)
    try:
        return etree.XMLSchema(etree.parse(str(xsd), parser))
    except (OSError, etree.XMLSyntaxError, etree.XMLSchemaParseError) as e:
        raise IngestError(f"{xsd}: not a usable XML schema ({e})") from None


def read_messages(path: Path, schema: etree.XMLSchema | None = None) -> Iterator[Message | Bad]:
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
                    yield parse_message(xml, src, n, when, dsp, schema=schema)
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
            text = "".join(t or "" for _, t, _ in parts)  # none is None: checked above
            when = dt.datetime.fromtimestamp(path.stat().st_mtime, dt.UTC).replace(tzinfo=None)
            when = when.replace(microsecond=when.microsecond // 1000 * 1000)
            try:
                yield parse_message(text, src, 1, when, None, coarse=when.microsecond == 0, schema=schema)
            except ValueError as e:
                yield Bad(src, 1, str(e), text[:500])
            return
        # Concatenated messages, each after a `captured_at:` line: streamed line by line.
        chunk: list[str | None] = []
        capture = CAPTURE.match(first[1].strip())
        assert capture is not None  # the branch above took every file that does not start so
        when_txt, start = capture.group(1), 2
        for n, line, _raw in lines:
            m = CAPTURE.match(line.strip()) if line is not None else None
            if not m:
                chunk.append(line)
                continue
            yield from _concatenated(chunk, src, start, when_txt, schema)
            chunk, start, when_txt = [], n + 1, m.group(1)
        yield from _concatenated(chunk, src, start, when_txt, schema)
    except (OSError, EOFError, zlib.error) as e:
        raise IngestError(f"{path}: cannot be read ({e})") from None


def _concatenated(
    chunk: list[str | None], src: str, line: int, when_txt: str, schema: etree.XMLSchema | None
) -> Iterator[Message | Bad]:
    if any(c is None for c in chunk):
        yield Bad(src, line, "not text in the log's encoding", "")
        return
    body = "".join(c for c in chunk if c is not None)
    if not body.strip():
        return
    try:
        yield parse_message(body, src, line, _time(when_txt), None, schema=schema)
    except ValueError as e:
        yield Bad(src, line, str(e), body[:500])
