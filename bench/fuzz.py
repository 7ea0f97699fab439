"""Fuzzing every parser and validator with generated bad input (issue 10).

Each target takes valid input made from a simulated month, breaks it in one of many ways, feeds it
to the real parser and checks what came out against expectations computed here, independently of
the code under test:

- csv, parquet: `load_file` either refuses the file with an IngestError naming it (and stores
  nothing from it), or every row read is accepted or quarantined with a reason and row number;
  rows read equals the data lines written; a row given a value Python itself rejects for the
  field's type is quarantined naming that field; untouched rows are accepted.
- duis: the DUIS reader and pairing never crash; every non-blank log line is counted as a
  message; each malformed one is reported with line and reason; untouched request/response
  pairs still become service requests. XML bombs and external entities are refused.
- methodology: `methodology.load` either loads or raises MethodologyError; nothing else.
- commentary: a Markdown file either loads or raises CommentaryError naming file and line; the
  HTML never carries raw tags from the input.
- cli: random arguments to every command exit 0, 1 or 2 with a message, never a traceback.
- api: random query parameters to every endpoint never give a 5xx.

A crash is any other exception, or a broken expectation. The benchmark run feeds 10 000 inputs
to each target; the test suite runs the same code with a few hundred.

    .venv/bin/python bench/fuzz.py [--n 10000] [--only csv,duis] [--json bench/results/fuzz.json]
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import datetime as dt
import gzip
import io
import json
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import yaml

from opmetrics import methodology as methodology_mod
from opmetrics.engine.store import Store
from opmetrics.ingest.load import IngestError, load_file
from opmetrics.methodology.contract import load_contract
from opmetrics.report.commentary import CommentaryError, load_commentary

PERIOD = "2026-10"
CONTRACT = load_contract()
# Values any field may be given. Some are valid for some fields; the oracle decides which.
GARBAGE = [
    "", " ", "null", "NaN", "-1", "0", "1.5", "1e309", "9" * 30, "true", "maybe", "ÿÿ", "😀", "\u202e",
    "=cmd|' /C calc'!A0", "+1", "@SUM(A1)", "-2+3", "'", '"', '""', "a,b", "\\", "\x00", "\t",
    "2026-13-45T25:61:00Z", "2026-10-05", "2026-10-05T10:00:00", "2026-10-05T10:00:00+14:00",
    "yesterday", "1970-01-01T00:00:00Z", "9999-12-31T23:59:59Z", "<script>alert(1)</script>",
    "x" * 5000, "North", "I0", "E62", "2", "1", "SUP-A", "4.1.1", "ESME", "GSME",
]  # fmt: skip


@dataclass
class Tally:
    target: str
    inputs: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    crashes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def crash(self, what: str) -> None:
        self.outcomes["CRASH"] += 1
        if len(self.crashes) < 20:
            self.crashes.append(what)


# --- an independent oracle for field values -------------------------------------------------


def python_rejects(table: str, name: str, value: str) -> bool:
    """Whether a value is certainly invalid for a field, judged by Python's own parsers."""
    f = CONTRACT.table(table).field(name)
    v = value.strip(" \t\n\v\f\r")  # the loader's idea of blank
    if "\x00" in value:
        return False  # the CSV reader's business; checked separately
    if not v:
        return f.required
    if f.type == "integer":
        try:
            n = int(v)
        except ValueError:
            return True
        return (f.min is not None and n < f.min) or (f.max is not None and n > f.max) or abs(n) >= 10**18
    if f.type == "boolean":
        return v.lower() not in ("true", "t", "1", "yes", "y", "false", "f", "0", "no", "n")
    if f.type == "timestamp":
        try:
            dt.datetime.fromisoformat(v.replace("Z", "+00:00"))
        except ValueError:
            return not re.fullmatch(r"\d{4}-\d\d-\d\d[ T]\d\d:\d\d(:\d\d(\.\d+)?)?(Z|[+-]\d\d(:?\d\d)?)?", v)
        return False
    if f.enum is not None:
        return v not in [str(e) for e in f.enum]
    if f.pattern is not None:
        return re.fullmatch(f.pattern, v) is None
    return False


# --- base data ----------------------------------------------------------------------------------


@dataclass
class Base:
    rows: dict[str, list[dict[str, str]]]  # table -> valid rows as strings
    duis_lines: list[str]
    store_seed: Path  # a database holding parties and devices for DUIS enrichment


def make_base(work: Path, rows_per_table: int = 12) -> Base:
    sim = work / "sim"
    subprocess.run(
        [sys.executable, "-m", "opmetrics.cli", "simulate", "--scale", "tiny", "--out", str(sim), "--duis"],
        check=True,
        capture_output=True,
    )
    rows: dict[str, list[dict[str, str]]] = {}
    for t in CONTRACT.tables.values():
        files = sorted((sim / t.name).glob("*.parquet"))
        if not files:
            continue
        tab = pq.read_table(files[0], columns=t.field_names).slice(0, rows_per_table)
        cols = [c.cast(pa.string()) for c in tab.columns]
        strs = pa.Table.from_arrays(cols, names=tab.column_names).to_pylist()
        rows[t.name] = [{k: ("" if v is None else v) for k, v in r.items()} for r in strs]
    with gzip.open(sorted((sim / "duis").glob("*.jsonl.gz"))[1], "rt", encoding="utf-8") as fh:
        lines = [next(fh) for _ in range(400)]
    seed_db = work / "seed.duckdb"
    with Store(seed_db) as s:
        for t in ("parties", "devices"):
            for f in sorted((sim / t).glob("*.parquet")):
                load_file(s, f, t)
    return Base(rows, lines, seed_db)


# --- csv and parquet ----------------------------------------------------------------------------


def _check_load(
    tally: Tally,
    store: Store,
    path: Path,
    table: str,
    lines: int | None,
    bad_rows: dict[int, str],
    good_rows: set[int],
) -> None:
    before = {t: store.count(t) for t in (table, "quarantine")}
    try:
        res = load_file(store, path, table)
    except IngestError as e:
        kept = store.con.execute("SELECT count(*) FROM loaded_files WHERE path = ?", [str(path)]).fetchall()
        if str(path) not in str(e) or kept[0][0] or store.count(table) != before[table]:
            tally.crash(f"{path.name}: refused but not cleanly: {e}")
        tally.outcomes["file refused (IngestError)"] += 1
        return
    except Exception:  # noqa: BLE001 - the point of the exercise
        tally.crash(f"{path.name}: {traceback.format_exc(limit=3)}")
        return
    q = store.rows(
        "SELECT row_number, field, reason, all_reasons FROM quarantine WHERE file_id = ?", [res.file_id]
    )
    problems = []
    if res.rows_read != res.accepted + res.quarantined:
        problems.append(f"read {res.rows_read} != {res.accepted} + {res.quarantined}")
    if store.count(table) - before[table] != res.accepted or len(q) != res.quarantined:
        problems.append("stored counts differ from the load result")
    if lines is not None and res.rows_read != lines:
        problems.append(f"{lines} data lines written, {res.rows_read} read")
    if any(not r["reason"] or r["row_number"] is None for r in q):
        problems.append("a quarantined row without reason or row number")
    by_row = {r["row_number"]: r["all_reasons"] for r in q}
    for row, fld in bad_rows.items():
        if row not in by_row:
            problems.append(f"row {row}: invalid {fld} accepted")
        elif fld not in by_row[row]:
            problems.append(f"row {row}: quarantined but not for {fld}: {by_row[row]}")
    for row in good_rows:
        if row in by_row:
            problems.append(f"row {row}: valid row quarantined: {by_row[row]}")
    if problems:
        tally.crash(f"{path.name} ({table}): " + "; ".join(problems))
    else:
        tally.outcomes["loaded, some rows quarantined" if res.quarantined else "loaded, all rows"] += 1


def _load_once(
    tally: Tally, path: Path, table: str, lines: int | None, bad: dict[int, str], good: set[int]
) -> None:
    """Load one generated file into a fresh database, check it, and remove the file."""
    store = Store(":memory:", CONTRACT)
    try:
        _check_load(tally, store, path, table, lines, bad, good)
    finally:
        store.close()
        path.unlink()
    tally.inputs += 1


def _mutate_rows(rng: random.Random, table: str, base: list[dict[str, str]]):
    """Copies of the base rows with some fields broken: (rows, {row: field broken}, untouched)."""
    rows = [dict(r) for r in base]
    names = CONTRACT.table(table).field_names
    changed: set[tuple[int, str]] = set()
    for _ in range(rng.randint(1, 4)):
        i = rng.randrange(len(rows))
        fld = rng.choice(names)
        if rng.random() < 0.8:
            value = rng.choice(GARBAGE)
        else:
            value = rows[rng.randrange(len(rows))][rng.choice(names)]
        rows[i][fld] = value
        changed.add((i, fld))
    # Judged on the final values (a field may have been changed twice).
    bad = {i + 1: fld for i, fld in changed if python_rejects(table, fld, rows[i][fld])}
    touched = {i + 1 for i, _ in changed}
    if rng.random() < 0.2:  # a duplicate of another row: its key repeats
        j = rng.randrange(len(rows))
        rows.append(dict(rows[j]))
        touched.update({j + 1, len(rows)})
    # A copied value can repeat another row's key: every row sharing a key is a duplicate case.
    keys = [tuple(r[k].strip(" \t\n\v\f\r") for k in CONTRACT.table(table).key) for r in rows]
    shared = {k for k in keys if keys.count(k) > 1}
    touched.update(i + 1 for i, k in enumerate(keys) if k in shared)
    good = {n for n in range(1, len(rows) + 1) if n not in touched}
    return rows, bad, good


def fuzz_csv(n: int, base: Base, work: Path, seed: int = 1) -> Tally:
    rng, tally = random.Random(seed), Tally("csv")
    tables = sorted(base.rows)
    for i in range(n):
        table = rng.choice(tables)
        rows, bad, good = _mutate_rows(rng, table, base.rows[table])
        names = CONTRACT.table(table).field_names
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=names, lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
        text = buf.getvalue()
        lines: int | None = len(rows)
        if any(c in v for r in rows for v in r.values() for c in "\n\r\x00"):
            lines, bad, good = None, {}, set()  # the reader's own line rules apply
        kind = rng.random()
        data = text.encode()
        if kind < 0.25:  # break the file itself
            lines, bad, good = None, {}, set()
            choice = rng.randrange(8)
            if choice == 0:
                data = data[: rng.randrange(len(data))]
            elif choice == 1:
                b = bytearray(data)
                for _ in range(rng.randint(1, 20)):
                    b[rng.randrange(len(b))] = rng.randrange(256)
                data = bytes(b)
            elif choice == 2:
                data = b""
            elif choice == 3:
                data = "\ufeff".encode() + data  # a byte-order mark
                lines, good = len(rows), set()
            elif choice == 4:  # a line with too few or too many fields
                parts = text.split("\n")
                k = rng.randrange(1, max(2, len(parts) - 1))
                parts[k] = parts[k] + ",extra" if rng.random() < 0.5 else parts[k].rsplit(",", 1)[0]
                data = "\n".join(parts).encode()
            elif choice == 5:  # the header renamed, reordered or cut
                head, _, body = text.partition("\n")
                cols = head.split(",")
                rng.shuffle(cols) if rng.random() < 0.5 else cols.pop(rng.randrange(len(cols)))
                data = (",".join(cols) + "\n" + body).encode()
            elif choice == 6:
                data = data.replace(b"\n", b"\r\n")
                lines, good = len(rows), set()
            else:
                data = data + bytes(rng.randrange(256) for _ in range(rng.randint(1, 200)))
        path = work / f"{table}-{i}.csv"
        path.write_bytes(data)
        _load_once(tally, path, table, lines, bad, good)
    return tally


PARQUET_VALUES: list[Callable[[random.Random, int], pa.Array]] = [
    lambda r, n: pa.array([r.randint(-(2**62), 2**62) for _ in range(n)], pa.int64()),
    lambda r, n: pa.array([r.random() * 1e6 for _ in range(n)], pa.float64()),
    lambda r, n: pa.array([r.random() < 0.5 for _ in range(n)], pa.bool_()),
    lambda r, n: pa.array([dt.datetime(2026, 10, 1, second=r.randrange(60)) for _ in range(n)]),
    lambda r, n: pa.array([r.choice(GARBAGE) for _ in range(n)], pa.string()),
    lambda r, n: pa.array([None] * n, pa.string()),
    lambda r, n: pa.array([bytes(r.randrange(256) for _ in range(8)) for _ in range(n)], pa.binary()),
    lambda r, n: pa.array([[1, 2]] * n, pa.list_(pa.int64())),
    lambda r, n: pa.array([r.choice(GARBAGE) for _ in range(n)]).dictionary_encode(),
]  # fmt: skip


def fuzz_parquet(n: int, base: Base, work: Path, seed: int = 2) -> Tally:
    rng, tally = random.Random(seed), Tally("parquet")
    tables = sorted(base.rows)
    for i in range(n):
        table = rng.choice(tables)
        rows, bad, good = _mutate_rows(rng, table, base.rows[table])
        names = CONTRACT.table(table).field_names
        cols = {c: pa.array([r[c] for r in rows], pa.string()) for c in names}
        lines: int | None = len(rows)
        kind = rng.random()
        if kind < 0.3:  # columns of the wrong type
            bad, good = {}, set()
            for c in rng.sample(names, rng.randint(1, 3)):
                cols[c] = rng.choice(PARQUET_VALUES)(rng, len(rows))
        elif kind < 0.4:  # a column missing or one too many
            bad, good, lines = {}, set(), None
            if rng.random() < 0.5:
                cols.pop(rng.choice(names))
            else:
                cols["unexpected"] = pa.array(["x"] * len(rows))
        path = work / f"{table}-{i}.parquet"
        pq.write_table(pa.table(cols), path)
        if rng.random() < 0.15:  # a damaged file
            b = bytearray(path.read_bytes())
            if rng.random() < 0.5:
                del b[rng.randrange(len(b)) :]
            else:
                for _ in range(rng.randint(1, 30)):
                    b[rng.randrange(len(b))] = rng.randrange(256)
            path.write_bytes(bytes(b))
            bad, good, lines = {}, set(), None
        _load_once(tally, path, table, lines, bad, good)
    return tally


# --- DUIS ---------------------------------------------------------------------------------------

XML_ATTACKS = [
    '<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;">'
    '<!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;">]><x>&c;</x>',
    '<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><x>&e;</x>',
    '<?xml version="1.0"?><!DOCTYPE x SYSTEM "http://example.invalid/x.dtd"><x/>',
    "<a>" * 5000,
    "",
    "not xml at all",
]


def _request_id(line: str) -> tuple[str | None, str | None]:
    rec = json.loads(line)
    m = re.search(r"<sr:RequestID>([^<]+)</sr:RequestID>", rec["xml"])
    kind = "request" if "<sr:Request " in rec["xml"] else "response" if "Response" in rec["xml"] else None
    return (m.group(1) if m else None), kind


def fuzz_duis(n: int, base: Base, work: Path, seed: int = 3) -> Tally:
    from opmetrics.ingest.duis_pairing import ingest_duis

    rng, tally = random.Random(seed), Tally("duis")
    m = methodology_mod.load()
    ids = [_request_id(line) for line in base.duis_lines]
    # Each input loads into a fresh copy of the seed store (parties and devices).
    for i in range(n):
        lines = list(base.duis_lines[: rng.randint(20, len(base.duis_lines))])
        touched: set[int] = set()
        for _ in range(rng.randint(1, 5)):
            k = rng.randrange(len(lines))
            if k in touched:
                continue  # already broken (perhaps no longer JSON)
            touched.add(k)
            rec = json.loads(lines[k])
            how = rng.randrange(7)
            if how == 0:
                rec["xml"] = rng.choice(XML_ATTACKS)
            elif how == 1:
                rec["xml"] = rec["xml"][: rng.randrange(len(rec["xml"]))]
            elif how == 2:
                rec["captured_at"] = rng.choice(GARBAGE)
            elif how == 3:
                rec.pop(rng.choice(["xml", "captured_at"]))
            elif how == 4:
                rec["xml"] = re.sub(
                    r">[^<]+<", ">" + rng.choice(GARBAGE).replace("<", "") + "<", rec["xml"], count=1
                )
            elif how == 5:
                lines[k] = lines[k][: rng.randrange(len(lines[k]))] + "\n"
                continue
            else:
                rec["xml"] = rec["xml"].replace("sr:", rng.choice(["", "x:", "sr"]), rng.randint(1, 3))
            lines[k] = json.dumps(rec) + "\n"
        path = work / f"duis-{i}.jsonl"
        path.write_text("".join(lines), encoding="utf-8")
        db = work / f"duis-{i}.duckdb"
        shutil.copy(base.store_seed, db)
        store = Store(db, CONTRACT)
        try:
            res = ingest_duis(store, m, [path], work / f"duis-{i}-stage")
            requests = store.rows("SELECT request_id FROM service_requests")
            bad = store.rows(
                "SELECT row_number AS line, reason, field FROM quarantine WHERE table_name = 'duis'"
            )
        except IngestError as e:
            tally.outcomes["file refused (IngestError)"] += 1
            if str(path) not in str(e):
                tally.crash(f"duis {i}: refusal does not name the file: {e}")
            continue
        except Exception:  # noqa: BLE001
            tally.crash(f"duis {i}: {traceback.format_exc(limit=4)}")
            continue
        finally:
            store.close()
            path.unlink()
            db.unlink(missing_ok=True)
            shutil.rmtree(work / f"duis-{i}-stage", ignore_errors=True)
            tally.inputs += 1
        problems = []
        if res.messages != sum(1 for x in lines if x.strip()):
            problems.append(f"{res.messages} messages counted of {sum(1 for x in lines if x.strip())}")
        if any(not b["reason"] or b["line"] < 1 for b in bad):
            problems.append("a malformed message without line or reason")
        # Untouched pairs (request and every response with its id untouched) must come out.
        got = {r["request_id"] for r in requests}
        pos: dict[str, list[int]] = {}
        for k, (rid, kind) in enumerate(ids[: len(lines)]):
            if rid and kind in ("request", "response"):
                pos.setdefault(rid, []).append(k)
        for rid, ks in pos.items():
            kinds = {ids[k][1] for k in ks}
            if kinds == {"request", "response"} and not touched & set(ks) and rid not in got:
                problems.append(f"untouched pair {rid} lost")
        if problems:
            tally.crash(f"duis {i}: " + "; ".join(problems[:3]))
        else:
            # A request to a device in no extract is quarantined too (field device_id): the seed
            # data has some on purpose; only malformed messages make an input "malformed".
            malformed = [b for b in bad if b["field"] == "message"]
            tally.outcomes["parsed, malformed ones reported" if malformed else "parsed, all good"] += 1
    return tally


# --- methodology, commentary --------------------------------------------------------------------


def _mutate_tree(rng: random.Random, node: Any, depth: int = 0) -> Any:
    if isinstance(node, dict) and node:
        k = rng.choice(list(node))
        action = rng.randrange(5)
        if action == 0 or depth > 6:
            node.pop(k)
        elif action == 1:
            node[k] = rng.choice([None, -1, 0, 1e9, "", "x", [], {}, True, "9" * 40])
        else:
            node[k] = _mutate_tree(rng, node[k], depth + 1)
        return node
    if isinstance(node, list) and node:
        i = rng.randrange(len(node))
        action = rng.randrange(4)
        if action == 0:
            node.pop(i)
        elif action == 1:
            node.append(node[i])  # a repeated entry
        else:
            node[i] = _mutate_tree(rng, node[i], depth + 1)
        return node
    return rng.choice([None, -5, 0, 101, 1e308, "", "garbage", "2026-13-01", [], {}, False])


def fuzz_methodology(n: int, base: Base, work: Path, seed: int = 4) -> Tally:
    rng, tally = random.Random(seed), Tally("methodology")
    text = methodology_mod.default_path().read_text(encoding="utf-8")
    tree = yaml.safe_load(text)
    path = work / "methodology.yaml"
    for _ in range(n):
        if rng.random() < 0.15:  # damage the text
            cut = rng.randrange(len(text))
            data = (
                text[:cut]
                + rng.choice(["", ":", "\t", "- [", "{", "\x00", "\udcff"[:0], "&a *a"])
                + text[cut + rng.randrange(50) :]
            ).encode()
        else:
            t = json.loads(json.dumps(tree, default=str))
            for _ in range(rng.randint(1, 3)):
                t = _mutate_tree(rng, t)
            data = yaml.dump(
                t, Dumper=getattr(yaml, "CSafeDumper", yaml.SafeDumper), sort_keys=False
            ).encode()
        path.write_bytes(data)
        tally.inputs += 1
        try:
            methodology_mod.load(path)
            tally.outcomes["loaded"] += 1
        except methodology_mod.MethodologyError as e:
            tally.outcomes["refused (MethodologyError)"] += 1
            if str(path) not in str(e):
                tally.crash(f"error does not name the file: {e}")
        except Exception:  # noqa: BLE001
            tally.crash(traceback.format_exc(limit=4))
    return tally


def fuzz_commentary(n: int, base: Base, work: Path, seed: int = 5) -> Tally:
    rng, tally = random.Random(seed), Tally("commentary")
    pieces = ["## CPM1", "## CPM1", "## prepayment", "# Title", "text", "<script>alert(1)</script>",
              "<img src=x onerror=alert(1)>", "[x](javascript:alert(1))", "**bold**", "", "##",
              "## ", "    code", "> quote", "\x00", "é", "<!-- c -->", "---", "| a | b |", "&amp;",
              "<b>"]  # fmt: skip
    path = work / "commentary.md"
    for _ in range(n):
        lines = [rng.choice(pieces) for _ in range(rng.randint(0, 30))]
        if rng.random() < 0.7:  # most files start as the format asks, to reach the renderer
            lines.insert(0, "## CPM1")
        text = "\n".join(lines)
        data = text.encode()
        if rng.random() < 0.05:
            data += b"\xff\xfe"
        path.write_bytes(data)
        tally.inputs += 1
        try:
            out = load_commentary(path)
        except CommentaryError as e:
            tally.outcomes["refused (CommentaryError)"] += 1
            if str(path) not in str(e):
                tally.crash(f"error does not name the file: {e}")
            continue
        except Exception:  # noqa: BLE001
            tally.crash(traceback.format_exc(limit=4))
            continue
        html = " ".join(out.values())
        if re.search(r"<(script|img)\b", html) or 'href="javascript:' in html:
            tally.crash(f"active content reached the HTML: {html[:200]}")
        else:
            tally.outcomes["loaded"] += 1
    return tally


# --- CLI and API ----------------------------------------------------------------------------------

CLI_COMMANDS = [
    ["compute"], ["report"], ["explain"], ["exceptions", "add"], ["exceptions", "withdraw"],
    ["exceptions", "list"], ["check-methodology"], ["ingest"], ["users", "add"], ["users", "list"],
    ["audit"], ["party-rtt"], ["ingest-duis"], ["simulate"], ["contract", "docs"],
]  # fmt: skip
CLI_OPTIONS = ["--period", "--db", "--out", "--party", "--table", "--role", "--password", "--methodology",
               "--scale", "--month", "--seed", "--reason", "--by", "--limit", "--action", "--commentary",
               "--bad-rows", "--no-pdf", "--pdf", "--help", "--nonsense", "-x", "--"]  # fmt: skip
CLI_VALUES = ["2026-10", "2026-13", "1999-01", "", "x", "-1", "0", "99999999999", "../../etc/passwd",
              "/dev/null", "nonexistent.duckdb", "dcc", "party", "SUP-A", "é", "'; DROP TABLE x;--",
              "national", "tiny", "a" * 300]  # fmt: skip


def fuzz_cli(n: int, base: Base, work: Path, seed: int = 6) -> Tally:
    from typer.testing import CliRunner

    from opmetrics.cli import app

    rng, tally = random.Random(seed), Tally("cli")
    runner = CliRunner()
    db = work / "cli.duckdb"
    # Relative paths among the random values (`--db party`) land in `work`, not the checkout.
    with contextlib.chdir(work):
        for _ in range(n):
            _fuzz_cli_once(rng, tally, runner, app, db, work)
    return tally


def _fuzz_cli_once(rng: random.Random, tally: Tally, runner: Any, app: Any, db: Path, work: Path) -> None:
    cmd = list(rng.choice(CLI_COMMANDS))
    args = [*cmd]
    for _ in range(rng.randint(0, 5)):
        args.append(rng.choice(CLI_OPTIONS + CLI_VALUES))
        if rng.random() < 0.6:
            args.append(rng.choice(CLI_VALUES))
    if cmd[0] == "simulate" and "--help" not in args:
        # Never generate a month here: only argument errors are of interest.
        args = [a for a in args if a not in ("tiny", "national")] + ["--scale", "galactic"]
    if "--db" not in args and cmd[0] not in ("simulate", "check-methodology", "contract"):
        args += ["--db", str(db)]
    if cmd[0] == "contract":
        args += [str(work / "contract.md")]
    if "--out" in args:
        k = args.index("--out")
        args[k + 1 : k + 2] = [str(work / "out")]
    tally.inputs += 1
    res = runner.invoke(app, args, env={"COLUMNS": "120"}, catch_exceptions=True)
    if res.exception is not None and not isinstance(res.exception, SystemExit):
        tb = "".join(traceback.format_exception(res.exception, limit=-3))
        tally.crash(f"opmetrics {' '.join(args)[:200]}: {tb[-600:]}")
    elif res.exit_code not in (0, 1, 2):
        tally.crash(f"opmetrics {' '.join(args)[:200]}: exit {res.exit_code}")
    elif res.exit_code and not res.output.strip():
        tally.crash(f"opmetrics {' '.join(args)[:200]}: failed without a message")
    else:
        tally.outcomes[f"exit {res.exit_code}"] += 1


def fuzz_api(n: int, base: Base, work: Path, seed: int = 7) -> Tally:
    from fastapi.testclient import TestClient
    from typer.testing import CliRunner

    from opmetrics.cli import app as cli
    from opmetrics.serve.app import create_app, session_secret, view_routes
    from opmetrics.serve.auth import add_user

    rng, tally = random.Random(seed), Tally("api")
    db = work / "api.duckdb"
    runner = CliRunner()
    # The first three days are enough for every endpoint to have data to answer with.
    files = [
        str(f)
        for f in sorted((work / "sim").rglob("*.parquet"))
        if not re.fullmatch(r"2026-\d\d-\d\d", f.stem) or f.stem <= f"{PERIOD}-03"
    ]
    for args in (
        ["ingest", *files, "--db", str(db)],
        ["compute", "--period", PERIOD, "--db", str(db)],
    ):
        assert runner.invoke(cli, args).exit_code == 0
    with Store(db) as s:
        token = add_user(s, "fuzz", "party", "fuzz-password-1", "SUP-A")
        secret = session_secret(s)
        from opmetrics.report.anonymise import league_key

        league_key(s)
    store = Store(db, read_only=True)
    application = create_app(store, methodology_mod.load(), work, secret, secure_cookies=False)
    client = TestClient(application, raise_server_exceptions=False)
    client.headers["Authorization"] = f"Bearer {token}"
    paths = [r.path for r in view_routes() if r.path.startswith(("/api/", "/downloads/"))]
    assert paths, "no API routes found"
    params = ["period", "process", "by", "day", "srv", "region", "smets", "device_type", "party", "scope",
              "key", "rate", "segment", "measure", "view", "subject", "band", "open_only", "cpm"]  # fmt: skip
    values = [*CLI_VALUES, "prepayment", "party", "region", "2026-10-12", "true", "2", "North", "month",
              "day", "process", "srv", "%00", "<script>", "SUP-B", "../..", "1 OR 1=1"]  # fmt: skip
    try:
        for _ in range(n):
            path = (
                rng.choice(paths)
                .replace("{name:path}", rng.choice(values))
                .replace("{name}", rng.choice(values))
            )
            q = {rng.choice(params): rng.choice(values) for _ in range(rng.randint(0, 5))}
            tally.inputs += 1
            try:
                res = client.get(path, params=q)
            except Exception:  # noqa: BLE001
                tally.crash(f"GET {path} {q}: {traceback.format_exc(limit=3)}")
                continue
            if res.status_code >= 500:
                tally.crash(f"GET {path} {q}: {res.status_code} {res.text[:200]}")
            else:
                tally.outcomes[str(res.status_code)] += 1
    finally:
        store.close()
    return tally


TARGETS: dict[str, Callable[[int, Base, Path], Tally]] = {
    "csv": fuzz_csv,
    "parquet": fuzz_parquet,
    "duis": fuzz_duis,
    "methodology": fuzz_methodology,
    "commentary": fuzz_commentary,
    "cli": fuzz_cli,
    "api": fuzz_api,
}


def run(n: int, only: list[str], work: Path) -> list[Tally]:
    base = make_base(work)
    out = []
    for name in only:
        t0 = time.perf_counter()
        with contextlib.redirect_stderr(io.StringIO()):
            tally = TARGETS[name](n, base, work)
        tally.seconds = round(time.perf_counter() - t0, 1)
        out.append(tally)
        print(
            f"{name:12s} {tally.inputs:6d} inputs in {tally.seconds:6.1f} s: "
            + ", ".join(f"{k} {v}" for k, v in tally.outcomes.most_common()),
            flush=True,
        )
        for c in tally.crashes[:5]:
            print("    " + c.replace("\n", "\n    "))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--only", default=",".join(TARGETS))
    ap.add_argument("--json", type=Path, default=Path("bench/results/fuzz.json"))
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tallies = run(args.n, args.only.split(","), Path(tmp))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(
        json.dumps([{**t.__dict__, "outcomes": dict(t.outcomes)} for t in tallies], indent=1, default=str)
        + "\n"
    )
    crashes = sum(t.outcomes["CRASH"] for t in tallies)
    print(f"{sum(t.inputs for t in tallies)} inputs, {crashes} crashes or broken expectations")
    sys.exit(1 if crashes else 0)


if __name__ == "__main__":
    main()
