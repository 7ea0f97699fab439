"""DUIS messages kept in the store and paired across loads (issue 33, items 1-4).

Logs arrive a day (or an hour) at a time, and a request's response is often in the next file.
So every message is kept in `duis_messages`, keyed by its identity (capture time and text: the
same message in two overlapping logs is one), and after each load the requests whose pairing can
change are paired with their responses in DuckDB, against everything loaded so far:

- the final response is the last one that is not an I99 acknowledgement; the I99 is kept apart;
- a request without a final response stays open: its row carries no response (the measures
  count it as pending while its TRT runs) and a later load that brings the response corrects
  the row (a corrections load: the old row is kept in `superseded`);
- an open request is settled only when its TRT plus a grace period has passed at the data
  cut-off (the latest capture time loaded): then it keeps its I99 if that is all it got (an 11.1
  is acknowledged, its outcome comes as an alert), else it has no response;
- a response whose ServiceReferenceVariant is not its request's is not paired (kept in
  `duis_unpaired` with both values);
- a request of an SRV the methodology marks `non_device` whose target is no device in the
  inventory is addressed to the DCC itself (8.2, 12.2 to the DCC's EUI-64): it has no device,
  region or SMETS, so it is kept with its pairing and TRT in `duis_non_device`, outside the
  regional measures; any other request to an unknown device is quarantined.

Nothing is held in Python beyond one batch of one file: memory stays flat however long the log.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
from lxml import etree

from opmetrics.engine.store import Store
from opmetrics.ingest.duis import ACK, LEGS, Bad, Message, load_schema, read_messages
from opmetrics.ingest.load import IngestError, LoadResult, load_file, sha256_of
from opmetrics.methodology import Methodology

# DuckDB's memory limit while DUIS logs load: staging, pairing and the anti-joins spill to disk
# beyond it, so peak memory stays flat however long the log (issue 33; docs/duis.md, Memory).
DUIS_MEMORY_LIMIT = os.environ.get("OPMETRICS_DUIS_MEMORY_LIMIT", "500MB")
GRACE = dt.timedelta(hours=1)  # after its TRT, how long a response may still arrive in the logs
BATCH = 50_000  # messages staged at a time

_DDL = """
CREATE TABLE IF NOT EXISTS duis_files (
    sha256 VARCHAR PRIMARY KEY, path VARCHAR, messages BIGINT, bad BIGINT, loaded_at TIMESTAMP);
CREATE TABLE IF NOT EXISTS duis_messages (
    msg_key VARCHAR, kind VARCHAR, request_id VARCHAR, response_id VARCHAR,
    srv VARCHAR, code VARCHAR, captured_at TIMESTAMP, response_at TIMESTAMP,
    future_dated BOOLEAN, scheduled BOOLEAN, dsp VARCHAR, source VARCHAR, line BIGINT);
CREATE TABLE IF NOT EXISTS duis_emitted (
    record_id VARCHAR, responded_at TIMESTAMP, response_code VARCHAR);
CREATE TABLE IF NOT EXISTS duis_unpaired (set_id VARCHAR, path VARCHAR, line BIGINT, reason VARCHAR);
CREATE TABLE IF NOT EXISTS duis_non_device (
    request_id VARCHAR PRIMARY KEY, party_id VARCHAR, user_role VARCHAR, srv VARCHAR, mode VARCHAR,
    target VARCHAR, received_at TIMESTAMP, responded_at TIMESTAMP, response_code VARCHAR,
    trt_s DOUBLE, still_open BOOLEAN);
"""

_STAGE_SCHEMA = pa.schema(
    [
        ("msg_key", pa.string()),
        ("kind", pa.string()),
        ("request_id", pa.string()),
        ("response_id", pa.string()),
        ("srv", pa.string()),
        ("code", pa.string()),
        ("captured_at", pa.timestamp("ms")),
        ("response_at", pa.timestamp("ms")),
        ("future_dated", pa.bool_()),
        ("scheduled", pa.bool_()),
        ("dsp", pa.string()),
        ("source", pa.string()),
        ("line", pa.int64()),
    ]
)


@dataclass
class DuisResult:
    messages: int
    bad: int
    unpaired: int
    loads: list[LoadResult]
    already: bool = False
    failed: list[tuple[str, str]] = field(default_factory=list)  # (file, reason): nothing loaded from it
    files_already: list[str] = field(default_factory=list)  # files loaded before: skipped
    open_requests: int = 0  # requests still waiting for a final response
    non_device: int = 0  # requests answered by the DCC itself, kept in `duis_non_device`
    # User IDs not in `parties`, among the requests this load paired (new, answered or open)
    unknown_originators: list[str] = field(default_factory=list)


def _append(cols: dict[str, list], msg: Message) -> None:
    """One message's staging row, added column by column (Arrow builds a table from columns
    without a dict per row)."""
    cols["msg_key"].append(msg.key)
    cols["kind"].append(msg.kind)
    cols["request_id"].append(msg.request_id)
    cols["response_id"].append(msg.response_id)
    cols["srv"].append(msg.srv)
    cols["code"].append(msg.code)
    cols["captured_at"].append(msg.captured_at)
    cols["response_at"].append(msg.response_at)
    cols["future_dated"].append(msg.future_dated)
    cols["scheduled"].append(msg.scheduled)
    cols["dsp"].append(json.dumps(msg.dsp, sort_keys=True, default=str) if msg.dsp else None)
    cols["source"].append(msg.source)
    cols["line"].append(msg.line)


def _ids_ok(msg: Message) -> str | None:
    """Why a message's identifiers cannot be used, or None."""
    rid = msg.request_id if msg.kind in ("request", "response") else msg.response_id
    if rid is not None and len(rid.split(":")) != 3:
        what = "RequestID" if msg.kind in ("request", "response") else "alert ResponseID"
        return f"{what} {rid} is not originator:target:counter"
    return None


def _stage_schema(store: Store) -> None:
    store.con.register("_duis_empty", _STAGE_SCHEMA.empty_table())
    store.con.execute("CREATE OR REPLACE TEMP TABLE _duis_schema AS SELECT * FROM _duis_empty")
    store.con.unregister("_duis_empty")


def _stage_file(store: Store, path: Path, schema: etree.XMLSchema | None) -> tuple[int, list[Bad]]:
    """Read one file into the temp table `_duis_stage` in batches; its bad messages returned.
    Raises IngestError when the file cannot be read as a whole."""
    con = store.con
    con.execute("CREATE OR REPLACE TEMP TABLE _duis_stage AS SELECT * FROM _duis_schema")
    bad: list[Bad] = []
    batch: dict[str, list] = {name: [] for name in _STAGE_SCHEMA.names}
    n = 0

    def flush() -> None:
        if batch["msg_key"]:
            con.register("_duis_batch", pa.Table.from_pydict(batch, schema=_STAGE_SCHEMA))
            con.execute("INSERT INTO _duis_stage SELECT * FROM _duis_batch")
            con.unregister("_duis_batch")
            for values in batch.values():
                values.clear()

    for item in read_messages(path, schema):
        n += 1
        if isinstance(item, Bad):
            bad.append(item)
            continue
        why = _ids_ok(item)
        if why:
            bad.append(Bad(item.source, item.line, why, ""))
            continue
        _append(batch, item)
        if len(batch["msg_key"]) >= BATCH:
            flush()
    flush()
    return n, bad


def _second_requests(store: Store) -> list[Bad]:
    """Staged requests whose RequestID is already another request's (in the store or earlier in
    the file): refused, the first one stands."""
    rows = store.rows(
        """
        SELECT s.source, s.line, s.request_id FROM _duis_stage s
        WHERE s.kind = 'request' AND (
            EXISTS (SELECT 1 FROM duis_messages d WHERE d.kind = 'request'
                    AND d.request_id = s.request_id AND d.msg_key <> s.msg_key)
            OR EXISTS (SELECT 1 FROM _duis_stage t WHERE t.kind = 'request'
                       AND t.request_id = s.request_id AND t.msg_key <> s.msg_key AND t.line < s.line))
        """
    )
    if rows:
        store.con.execute(
            "DELETE FROM _duis_stage WHERE (source, line) IN (SELECT (source, line) FROM "
            "(SELECT unnest(?) AS source, unnest(?) AS line))",
            [[r["source"] for r in rows], [r["line"] for r in rows]],
        )
    return [Bad(r["source"], r["line"], f"second Request with RequestID {r['request_id']}", "") for r in rows]


def _insert_new(store: Store) -> None:
    """Store the staged messages the store does not hold yet (a message's key covers its capture
    time, so only stored messages captured within the file's span are compared), each once.
    A set-based anti-join instead of a key index: an index on every message ever loaded is held
    in memory, and memory has to stay flat however much has been loaded (issue 33)."""
    span = store.con.execute("SELECT min(captured_at), max(captured_at) FROM _duis_stage").fetchall()[0]
    store.con.execute(
        """INSERT INTO duis_messages
           SELECT * FROM _duis_stage s
           WHERE s.msg_key NOT IN (SELECT msg_key FROM duis_messages WHERE captured_at BETWEEN ? AND ?)
           QUALIFY row_number() OVER (PARTITION BY s.msg_key ORDER BY s.line) = 1""",
        list(span),
    )


def _quarantine(store: Store, bad: list[Bad]) -> None:
    if bad:
        store.con.executemany(
            "INSERT INTO quarantine VALUES (0, 'duis', ?, ?, 'message', NULL, ?, ?, ?)",
            [[b.source, b.line, b.reason, b.reason, b.raw] for b in bad],
        )


def _lookups(store: Store, m: Methodology) -> None:
    """Temp tables the pairing joins: the SRV catalogue's TRT and critical flag, each mode's
    default TRT (for an SRV the catalogue does not have), the parties and the devices."""
    con = store.con
    con.register("_duis_cat", pa.Table.from_pylist(m.catalogue_rows()))
    con.execute("CREATE OR REPLACE TEMP TABLE _duis_trt AS SELECT * FROM _duis_cat")
    con.unregister("_duis_cat")
    defaults = [{"mode": k, "trt_s": v} for k, v in m.trt_defaults_seconds.items()]
    con.register("_duis_def", pa.Table.from_pylist(defaults))
    con.execute("CREATE OR REPLACE TEMP TABLE _duis_trt_default AS SELECT * FROM _duis_def")
    con.unregister("_duis_def")
    # Each User ID's latest party mapping and each device's latest extract, once per load for
    # the requests, the DSP-scheduled requests and the alerts alike.
    con.execute(
        "CREATE OR REPLACE TEMP TABLE _duis_party AS SELECT user_id, party_id, user_role FROM parties "
        "QUALIFY row_number() OVER (PARTITION BY user_id ORDER BY valid_from DESC) = 1"
    )
    con.execute(
        "CREATE OR REPLACE TEMP TABLE _duis_device AS SELECT device_id, device_type, smets, region "
        "FROM devices QUALIFY row_number() OVER (PARTITION BY device_id ORDER BY extracted_at DESC) = 1"
    )
    # The SRVs the DCC answers itself (the methodology's `non_device`): a request of one of them
    # whose target is no device in the inventory is addressed to the DCC, not an unknown device.
    nd = pa.table({"srv": pa.array([s.srv for s in m.srvs if s.non_device], pa.string())})
    con.register("_duis_nd", nd)
    con.execute("CREATE OR REPLACE TEMP TABLE _duis_non_device_srv AS SELECT * FROM _duis_nd")
    con.unregister("_duis_nd")


def _dsp(key: str) -> str:
    return f"json_extract_string(r.dsp, '$.{key}')"


def _ts(expr: str) -> str:
    return f"CAST(TRY_CAST({expr} AS TIMESTAMPTZ) AS TIMESTAMP)"


# What a gateway log's `dsp` adds to a request row (a party's own log has none: the defaults).
_REQUEST_DSP = f"""
       coalesce(TRY_CAST({_dsp("report_status")} AS INTEGER), 2) AS report_status,
       coalesce(TRY_CAST({_dsp("attempts")} AS INTEGER), 1) AS dsp_attempts,
       {_ts(_dsp("quarantine_released_at"))} AS quarantine_released_at,
       {", ".join(f"{_ts(_dsp(leg))} AS {leg}" for leg in LEGS)}"""

_PAIRED = f"""
WITH cut AS (SELECT max(captured_at) AS cutoff_at FROM duis_messages),
req AS (SELECT * FROM duis_messages WHERE kind = 'request'
        AND request_id IN (SELECT request_id FROM _duis_repair)),
resp AS (
    SELECT p.* FROM duis_messages p JOIN req q USING (request_id)
    WHERE p.kind = 'response' AND (p.srv IS NULL OR p.srv = q.srv)),
fin AS (
    SELECT request_id, arg_max(code, (captured_at, source, line)) AS code, max(captured_at) AS last_at
    FROM resp WHERE code <> '{ACK}' GROUP BY request_id),
ack AS (
    SELECT request_id, arg_max(code, (captured_at, source, line)) AS code, max(captured_at) AS last_at
    FROM resp WHERE code = '{ACK}' GROUP BY request_id),
base AS (
    SELECT r.*, split_part(r.request_id, ':', 1) AS originator, split_part(r.request_id, ':', 2) AS target,
           coalesce({_dsp("mode")}, CASE WHEN r.future_dated THEN 'future-dated' ELSE 'on-demand' END) AS mode
    FROM req r),
rows AS (
    SELECT r.request_id,
           coalesce(p.party_id, r.originator) AS party_id,
           coalesce(p.user_role, 'OU') AS user_role,
           r.srv, r.mode,
           coalesce(c.critical, false) AS critical,
           r.target AS device_id, d.device_type, d.smets, d.region,
           r.captured_at AS received_at,
           f.last_at AS final_at, f.code AS final_code, a.last_at AS ack_at, a.code AS ack_code,
           r.captured_at + to_seconds(coalesce(c.trt_s, t.trt_s, 0)) + INTERVAL {{grace}} SECOND
               <= (SELECT cutoff_at FROM cut) AS settled,{_REQUEST_DSP},
           p.user_id IS NULL AS unknown_originator,
           coalesce(c.trt_s, t.trt_s) AS trt_s, r.source, r.line, d.device_id IS NOT NULL AS device_known,
           d.device_id IS NULL AND r.srv IN (SELECT srv FROM _duis_non_device_srv) AS dcc_target
    FROM base r
    LEFT JOIN _duis_party p ON p.user_id = r.originator
    LEFT JOIN _duis_device d ON d.device_id = r.target
    LEFT JOIN _duis_trt c ON c.srv = r.srv AND c.smets = coalesce(d.smets, 2) AND c.mode = r.mode
    LEFT JOIN _duis_trt_default t ON t.mode = r.mode
    LEFT JOIN fin f USING (request_id)
    LEFT JOIN ack a USING (request_id))
SELECT * EXCLUDE (final_at, final_code, ack_at, ack_code),
       CASE WHEN final_code IS NOT NULL THEN final_at WHEN settled THEN ack_at END AS responded_at,
       CASE WHEN final_code IS NOT NULL THEN final_code WHEN settled THEN ack_code END AS response_code,
       final_code IS NULL AND NOT settled AS still_open
FROM rows
"""

_SCHEDULED = f"""
SELECT r.request_id,
       coalesce(p.party_id, split_part(r.request_id, ':', 1)) AS party_id,
       coalesce(p.user_role, 'OU') AS user_role, r.srv, 'dcc-scheduled' AS mode,
       coalesce(c.critical, false) AS critical,
       split_part(r.request_id, ':', 2) AS device_id, d.device_type, d.smets, d.region,
       coalesce({_ts(_dsp("schedule_started_at"))}, r.response_at) AS received_at,
       r.captured_at AS responded_at, r.code AS response_code,{_REQUEST_DSP}
FROM duis_messages r
LEFT JOIN _duis_party p ON p.user_id = split_part(r.request_id, ':', 1)
LEFT JOIN _duis_device d ON d.device_id = split_part(r.request_id, ':', 2)
LEFT JOIN _duis_trt c ON c.srv = r.srv AND c.smets = coalesce(d.smets, 2) AND c.mode = 'dcc-scheduled'
WHERE r.kind = 'response' AND r.scheduled
  AND NOT EXISTS (SELECT 1 FROM duis_messages q WHERE q.kind = 'request' AND q.request_id = r.request_id)
QUALIFY row_number() OVER (PARTITION BY r.request_id ORDER BY r.captured_at DESC, r.line DESC) = 1
"""

_ALERTS = f"""
SELECT coalesce({_dsp("alert_id")}, r.response_id) AS alert_id, r.code AS alert_code,
       CASE WHEN r.kind = 'device_alert' THEN 'device' ELSE 'dcc' END AS kind,
       split_part(r.response_id, ':', 1) AS device_id, d.device_type, d.smets, d.region,
       coalesce(p.party_id, split_part(r.response_id, ':', 2)) AS party_id,
       r.request_id,
       coalesce({_ts(_dsp("raised_at"))}, r.response_at) AS raised_at,
       CASE WHEN coalesce(TRY_CAST({_dsp("delivered")} AS BOOLEAN), true)
            THEN r.captured_at END AS delivered_at,
       coalesce(TRY_CAST({_dsp("suppressed")} AS BOOLEAN), false) AS suppressed,
       'alert:' || r.msg_key AS record_id
FROM duis_messages r
LEFT JOIN _duis_party p ON p.user_id = split_part(r.response_id, ':', 2)
LEFT JOIN _duis_device d ON d.device_id = split_part(r.response_id, ':', 1)
WHERE r.kind IN ('device_alert', 'dcc_alert')
  AND NOT EXISTS (SELECT 1 FROM duis_emitted e WHERE e.record_id = 'alert:' || r.msg_key)
"""

_UNPAIRED = """
SELECT p.source AS path, p.line,
       CASE WHEN q.request_id IS NULL
            THEN 'response ' || p.code || ' with no Request for RequestID ' || p.request_id
            ELSE 'response ' || p.code || ' for RequestID ' || p.request_id || ': ServiceReferenceVariant '
                 || p.srv || ' is not the request''s ' || q.srv END AS reason
FROM duis_messages p
LEFT JOIN (SELECT request_id, srv FROM duis_messages WHERE kind = 'request') q USING (request_id)
WHERE p.kind = 'response' AND NOT p.scheduled
  AND (q.request_id IS NULL OR (p.srv IS NOT NULL AND p.srv <> q.srv))
ORDER BY p.source, p.line
"""


def _copy(store: Store, sql: str, columns: list[str], target: Path) -> None:
    store.con.execute(
        f"COPY (SELECT {', '.join(columns)} FROM ({sql})) TO '{target.as_posix()}' (FORMAT parquet)"
    )


def ingest_duis(
    store: Store,
    m: Methodology,
    paths: list[Path],
    staging: Path,
    grace: dt.timedelta = GRACE,
    xsd: Path | None = None,
) -> DuisResult:
    """Load DUIS logs into the message store, each file on its own, then pair and write the
    requests and alerts that are new or changed. Loading the same logs again changes nothing.
    With `xsd`, every message must also be valid against that DUIS schema."""
    with store.memory_limited(DUIS_MEMORY_LIMIT):
        return _ingest_duis(store, m, paths, staging, grace, xsd)


def _ingest_duis(
    store: Store, m: Methodology, paths: list[Path], staging: Path, grace: dt.timedelta, xsd: Path | None
) -> DuisResult:
    schema = load_schema(xsd) if xsd else None
    con = store.con
    con.execute(_DDL)
    _stage_schema(store)
    con.execute("CREATE OR REPLACE TEMP TABLE _duis_touched (request_id VARCHAR)")
    res = DuisResult(0, 0, 0, [])
    digests = []
    for path in paths:
        digest = sha256_of(path)
        digests.append(digest)
        if con.execute("SELECT 1 FROM duis_files WHERE sha256 = ?", [digest]).fetchall():
            res.files_already.append(str(path))
            continue
        try:
            n, bad = _stage_file(store, path, schema)
        except IngestError as e:
            reason = str(e).removeprefix(f"{path}: ")
            res.failed.append((str(path), reason))
            seen = con.execute(
                "SELECT 1 FROM quarantine WHERE table_name = 'duis' AND path = ? AND reason = ?",
                [str(path), reason],
            ).fetchall()
            if not seen:
                _quarantine(store, [Bad(str(path), 0, reason, "")])
            continue
        con.execute("BEGIN TRANSACTION")
        try:
            bad += _second_requests(store)
            _insert_new(store)
            con.execute(  # the requests whose pairing this file may change
                "INSERT INTO _duis_touched SELECT DISTINCT request_id FROM _duis_stage "
                "WHERE kind IN ('request', 'response') AND request_id IS NOT NULL"
            )
            _quarantine(store, bad)
            con.execute(
                "INSERT INTO duis_files VALUES (?, ?, ?, ?, now()::TIMESTAMP)",
                [digest, str(path), n, len(bad)],
            )
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        res.messages += n
        res.bad += len(bad)
    _lookups(store, m)
    load_id = hashlib.sha256("|".join(sorted(digests)).encode()).hexdigest()[:16]
    res.loads = _emit(store, staging, load_id, grace)
    unpaired = store.rows(_UNPAIRED)
    con.execute("DELETE FROM duis_unpaired")
    if unpaired:
        con.executemany(
            "INSERT INTO duis_unpaired VALUES (?, ?, ?, ?)",
            [[load_id, r["path"], r["line"], r["reason"]] for r in unpaired],
        )
    res.unpaired = len(unpaired)
    stats = store.rows(
        "SELECT count(*) FILTER (WHERE still_open) AS open, "
        "list(DISTINCT split_part(request_id, ':', 1)) FILTER (WHERE unknown_originator) AS unknown "
        "FROM _duis_paired"
    )[0]
    res.open_requests = int(stats["open"] or 0)
    res.non_device = store.count("duis_non_device")
    res.unknown_originators = sorted(stats["unknown"] or [])
    res.already = not res.loads and len(res.files_already) == len(paths)
    return res


def _emit(store: Store, staging: Path, load_id: str, grace: dt.timedelta) -> list[LoadResult]:
    """Write the requests and alerts that are new since the last load, and corrections of those
    whose response changed (arrived later, or settled); record what was written."""
    con = store.con
    staging.mkdir(parents=True, exist_ok=True)
    req_cols = store.contract.table("service_requests").field_names
    alert_cols = store.contract.table("alerts").field_names
    paired = _PAIRED.format(grace=int(grace.total_seconds()))
    # Only the requests whose pairing can have changed are paired again, not every request ever
    # loaded: those this load brought or answered, those still open or settled on an I99 alone,
    # and those never written (an unknown device, a request to the DCC). A request written with
    # its final response keeps it unless a later message for it arrives.
    con.execute(
        """CREATE OR REPLACE TEMP TABLE _duis_repair AS
           SELECT request_id FROM _duis_touched
           UNION SELECT record_id FROM duis_emitted
                 WHERE (response_code IS NULL OR response_code = ?) AND NOT starts_with(record_id, 'alert:')
           UNION SELECT request_id FROM duis_messages m WHERE kind = 'request' AND NOT EXISTS
                 (SELECT 1 FROM duis_emitted e WHERE e.record_id = m.request_id)""",
        [ACK],
    )
    con.execute(f"CREATE OR REPLACE TEMP TABLE _duis_paired AS {paired}")  # also read for the counts
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE _duis_out AS SELECT {', '.join(req_cols)} FROM _duis_paired "
        f"WHERE device_known UNION ALL SELECT {', '.join(req_cols)} FROM ({_SCHEDULED})"
    )
    # Requests to the DCC itself have no device, region or SMETS: kept apart with their pairing
    # and TRT (the party-side report and `duis_non_device` show them), never quarantined.
    con.execute(
        "INSERT OR REPLACE INTO duis_non_device SELECT request_id, party_id, user_role, srv, mode, "
        "device_id, received_at, responded_at, response_code, trt_s, still_open "
        "FROM _duis_paired WHERE dcc_target"
    )
    con.execute(  # a target a later devices extract names is a device after all
        "DELETE FROM duis_non_device "
        "WHERE request_id IN (SELECT request_id FROM _duis_paired WHERE device_known)"
    )
    # Any other request to a target in no devices extract is quarantined at its log line (once),
    # and not recorded as written: a load after the devices extract arrives writes it.
    con.execute(
        """INSERT INTO quarantine
           SELECT 0, 'duis', source, line, 'device_id', device_id, reason, reason,
                  to_json({'request_id': request_id})::VARCHAR
           FROM (SELECT *, 'target ' || device_id || ' is in no devices extract (load `devices` first; '
                           || srv || ' is not a non-device SRV)' AS reason
                 FROM _duis_paired WHERE NOT device_known AND NOT dcc_target) x
           WHERE NOT EXISTS (SELECT 1 FROM quarantine q WHERE q.table_name = 'duis'
                             AND q.path = x.source AND q.row_number = x.line AND q.reason = x.reason)"""
    )
    con.execute(
        """CREATE OR REPLACE TEMP TABLE _duis_changes AS
           SELECT o.*, e.record_id IS NOT NULL AS correction FROM _duis_out o
           LEFT JOIN duis_emitted e ON e.record_id = o.request_id
           WHERE e.record_id IS NULL OR e.response_code IS DISTINCT FROM o.response_code
              OR e.responded_at IS DISTINCT FROM o.responded_at"""
    )
    con.execute(f"CREATE OR REPLACE TEMP TABLE _duis_alerts AS {_ALERTS}")
    loads = []
    for name, sql, cols, corrections in (
        ("service_requests", "SELECT * FROM _duis_changes WHERE NOT correction", req_cols, False),
        ("service_requests", "SELECT * FROM _duis_changes WHERE correction", req_cols, True),
        ("alerts", "SELECT * FROM _duis_alerts", alert_cols, False),
    ):
        if not con.execute(f"SELECT count(*) FROM ({sql})").fetchall()[0][0]:
            continue
        tag = "corrections." if corrections else ""
        out = staging / f"duis-{load_id}.{tag}{name}.parquet"
        _copy(store, f"{sql} ORDER BY ALL", cols, out)
        loads.append(load_file(store, out, name, corrections=corrections))
    con.execute(
        "DELETE FROM duis_emitted WHERE record_id IN (SELECT request_id FROM _duis_changes WHERE correction)"
    )
    con.execute("INSERT INTO duis_emitted SELECT request_id, responded_at, response_code FROM _duis_changes")
    con.execute("INSERT INTO duis_emitted SELECT record_id, NULL, NULL FROM _duis_alerts")
    return loads


# --- a party's own log -------------------------------------------------------------------------

_PARTY_DDL = """
CREATE TABLE IF NOT EXISTS party_rtt (
    request_id VARCHAR PRIMARY KEY, party_id VARCHAR, srv VARCHAR, mode VARCHAR, smets TINYINT,
    sent_at TIMESTAMP, received_at TIMESTAMP, response_code VARCHAR, source VARCHAR, line BIGINT
)"""

# A party's requests (the first of each RequestID; the same message twice is one) with the final
# response it received: the latest that is not an I99 acknowledgement, else the latest I99.
_PARTY_PAIRED = f"""
WITH msgs AS (
    SELECT * FROM _party_msgs
    QUALIFY row_number() OVER (PARTITION BY msg_key ORDER BY source, line) = 1),
req AS (
    SELECT *, row_number() OVER (PARTITION BY request_id ORDER BY source, line) AS nth
    FROM msgs WHERE kind = 'request'),
fin AS (
    SELECT request_id, arg_max(captured_at, (code <> '{ACK}', captured_at, line)) AS received_at,
           arg_max(code, (code <> '{ACK}', captured_at, line)) AS response_code
    FROM msgs WHERE kind = 'response' GROUP BY request_id)
SELECT r.request_id, coalesce(p.party_id, split_part(r.request_id, ':', 1)) AS party_id, r.srv,
       CASE WHEN r.future_dated THEN 'future-dated' ELSE 'on-demand' END AS mode, d.smets,
       r.captured_at AS sent_at, f.received_at, f.response_code, r.source, r.line, r.nth
FROM req r
LEFT JOIN _duis_party p ON p.user_id = split_part(r.request_id, ':', 1)
LEFT JOIN _duis_device d ON d.device_id = split_part(r.request_id, ':', 2)
LEFT JOIN fin f USING (request_id)
"""


def load_party_logs(
    store: Store, m: Methodology, paths: list[Path], party: str, failed: list[Bad] | None = None
) -> tuple[int, int, int]:
    """A SEC Party's own DUIS log: when it sent each request and received the final response.
    Stored in `party_rtt` (re-loading replaces the same requests). Messages are staged and
    paired in DuckDB, one batch of one file in Python at a time. Returns (requests, bad
    messages, requests of another party); files that cannot be read are added to `failed`."""
    with store.memory_limited(DUIS_MEMORY_LIMIT):
        return _load_party_logs(store, m, paths, party, failed)


def _load_party_logs(
    store: Store, m: Methodology, paths: list[Path], party: str, failed: list[Bad] | None
) -> tuple[int, int, int]:
    con = store.con
    con.execute(_PARTY_DDL)
    _stage_schema(store)
    _lookups(store, m)
    con.execute("CREATE OR REPLACE TEMP TABLE _party_msgs AS SELECT * FROM _duis_schema")
    bad = 0
    for path in paths:
        try:
            _n, bad_here = _stage_file(store, path, None)
        except IngestError as e:
            if failed is not None:
                failed.append(Bad(str(path), 0, str(e).removeprefix(f"{path}: "), ""))
            continue
        bad += len(bad_here)
        con.execute("INSERT INTO _party_msgs SELECT * FROM _duis_stage")
    con.execute(f"CREATE OR REPLACE TEMP TABLE _party_paired AS {_PARTY_PAIRED}")
    again, foreign, mine = con.execute(
        "SELECT count(*) FILTER (WHERE nth > 1), count(*) FILTER (WHERE nth = 1 AND party_id <> $party), "
        "count(*) FILTER (WHERE nth = 1 AND party_id = $party) FROM _party_paired",
        {"party": party},
    ).fetchall()[0]
    con.execute(
        "INSERT OR REPLACE INTO party_rtt SELECT * EXCLUDE (nth) FROM _party_paired "
        "WHERE nth = 1 AND party_id = ?",
        [party],
    )
    con.execute("DROP TABLE _party_msgs")
    con.execute("DROP TABLE _party_paired")
    return int(mine), bad + int(again), int(foreign)
