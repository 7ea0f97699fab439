"""DUIS parsing speed (issue 33, item 5): CPU per message of opmetrics' safe parse against plain
`xml.etree` and plain `lxml` over the same real-shaped messages, side by side in one run.

The messages are shaped as DUIS 5.x carries them: a signed Request (an XML-DSig Signature with
its SignedInfo, digest, signature value and X.509 key info after the Body) and its Response.
They are written here from the structure of the public DUIS schema, not copied.

    python bench/duis_parse.py --messages 20000    # prints a Markdown table of ratios
    python bench/duis_parse.py --rss 100000 1000000 # peak memory of ingest-duis and party-rtt per log size
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import hashlib
import time
import xml.etree.ElementTree as ET

from lxml import etree

from opmetrics.ingest.duis import parse_message

NS = "http://www.dccinterface.co.uk/ServiceUserGateway"
DS = "http://www.w3.org/2000/09/xmldsig#"


def _signature(seed: str) -> str:
    digest = base64.b64encode(hashlib.sha256(seed.encode()).digest()).decode()
    value = base64.b64encode(hashlib.sha512(seed.encode()).digest() * 2).decode()
    cert = base64.b64encode(hashlib.sha512(b"cert" + seed.encode()).digest() * 6).decode()
    return (
        f'<ds:Signature xmlns:ds="{DS}"><ds:SignedInfo>'
        '<ds:CanonicalizationMethod Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/>'
        '<ds:SignatureMethod Algorithm="http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256"/>'
        '<ds:Reference URI=""><ds:Transforms>'
        '<ds:Transform Algorithm="http://www.w3.org/2000/09/xmldsig#enveloped-signature"/>'
        '</ds:Transforms><ds:DigestMethod Algorithm="http://www.w3.org/2001/04/xmlenc#sha256"/>'
        f"<ds:DigestValue>{digest}</ds:DigestValue></ds:Reference></ds:SignedInfo>"
        f"<ds:SignatureValue>{value}</ds:SignatureValue>"
        f"<ds:KeyInfo><ds:X509Data><ds:X509IssuerSerial><ds:X509IssuerName>CN=DCC Org CA</ds:X509IssuerName>"
        f"<ds:X509SerialNumber>{int(hashlib.md5(seed.encode()).hexdigest()[:12], 16)}</ds:X509SerialNumber>"
        f"</ds:X509IssuerSerial><ds:X509Certificate>{cert}</ds:X509Certificate></ds:X509Data></ds:KeyInfo>"
        "</ds:Signature>"
    )


def device(i: int) -> str:
    return f"00-DB-00-00-00-{i // 65536 % 256:02X}-{i // 256 % 256:02X}-{i % 256:02X}"


def messages(n: int, first: int = 0) -> list[str]:
    """n messages: signed 4.1.1 read requests and their responses, alternating; the i-th pair
    (counting from `first`) to its own device, answered i seconds after 10:00."""
    out = []
    t0 = dt.datetime(2026, 10, 5, 10, 0)
    for i in range(first, first + n // 2):
        dev = device(i)
        rid = f"90-B3-D5-1F-30-01-00-0A:{dev}:{i}"
        out.append(
            f'<?xml version="1.0" encoding="UTF-8"?><sr:Request xmlns:sr="{NS}" schemaVersion="5.1">'
            f"<sr:Header><sr:RequestID>{rid}</sr:RequestID><sr:CommandVariant>1</sr:CommandVariant>"
            "<sr:ServiceReference>4.1</sr:ServiceReference><sr:ServiceReferenceVariant>4.1.1"
            "</sr:ServiceReferenceVariant></sr:Header><sr:Body><sr:ReadInstantaneousImportRegisters/>"
            f"</sr:Body>{_signature(rid)}</sr:Request>"
        )
        at = (t0 + dt.timedelta(seconds=i)).isoformat(timespec="milliseconds") + "Z"
        out.append(
            f'<?xml version="1.0" encoding="UTF-8"?><sr:Response xmlns:sr="{NS}" schemaVersion="5.1">'
            f"<sr:Header><sr:RequestID>{rid}</sr:RequestID><sr:ResponseID>{rid}</sr:ResponseID>"
            f"<sr:ResponseCode>I0</sr:ResponseCode><sr:ResponseDateTime>{at}</sr:ResponseDateTime>"
            "</sr:Header><sr:Body><sr:ResponseMessage><sr:ServiceReference>4.1</sr:ServiceReference>"
            "<sr:ServiceReferenceVariant>4.1.1</sr:ServiceReferenceVariant>"
            "<sr:MeterReading><sr:ImportRegister>123456</sr:ImportRegister></sr:MeterReading>"
            f"</sr:ResponseMessage></sr:Body>{_signature('r' + rid)}</sr:Response>"
        )
    return out


def cpu(fn, items: list) -> float:
    start = time.process_time()
    for x in items:
        fn(x)
    return time.process_time() - start


def whole_load(n: int) -> float:
    """CPU of loading the n messages as one JSON-lines log into a store that holds the parties
    and devices they name (loaded first, not timed), every thread."""
    import tempfile
    from pathlib import Path

    from opmetrics.engine.store import Store
    from opmetrics.ingest.duis_pairing import ingest_duis
    from opmetrics.ingest.load import find_files, load_file
    from opmetrics.methodology import load

    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "log.jsonl"
        write_log(log, n)
        m = load()
        with Store(Path(tmp) / "x.duckdb") as store:
            for f in find_files([Path(tmp) / "side"]):
                load_file(store, f)
            start = time.process_time()
            ingest_duis(store, m, [log], Path(tmp) / "stage")
            return time.process_time() - start


def write_log(path, n: int) -> int:
    """A JSON-lines log of n messages, written in chunks (the generator holds one chunk), each
    captured half a second after the one before: a response half a second after its
    ResponseDateTime. Beside it, `side/` holds the parties and devices extract that maps them."""
    import json

    t0, size = dt.datetime(2026, 10, 5, 10), 0
    with path.open("w", encoding="utf-8") as fh:
        for start in range(0, n, 10_000):
            chunk = messages(min(10_000, n - start), first=start // 2)
            for i, x in enumerate(chunk):
                at = (t0 + dt.timedelta(milliseconds=500 * (start + i))).isoformat(timespec="milliseconds")
                line = json.dumps({"captured_at": at + "Z", "xml": x}) + "\n"
                size += len(line)
                fh.write(line)
    side = path.parent / "side"
    (side / "parties").mkdir(parents=True)
    (side / "devices").mkdir()
    (side / "parties" / "p.csv").write_text(
        "user_id,party_id,user_role,valid_from\n90-B3-D5-1F-30-01-00-0A,SUP-A,IS,2026-01-01T00:00:00Z\n"
    )
    with (side / "devices" / "d.csv").open("w") as fh:
        fh.write(
            "device_id,extracted_at,device_type,smets,region,party_id,ch_id,installed_at,"
            "commissioned_at,status,firmware_version,last_communicated_at\n"
        )
        for i in range(n // 2):
            fh.write(
                f"{device(i)},2026-10-01T00:00:00Z,ESME,2,North,SUP-A,,2025-01-01T00:00:00Z,"
                "2025-01-01T01:00:00Z,commissioned,1.0,\n"
            )
    return size


def peak_rss(sizes: list[int], only: list[str] | None = None) -> None:
    """Peak resident memory of `opmetrics ingest-duis`, and of `party-rtt` reading the same log as
    the sender's own, on logs of each size (GNU time), each into an empty store."""
    import subprocess
    import sys
    import tempfile
    from pathlib import Path

    cli = Path(sys.executable).parent / "opmetrics"
    print("| Messages | Log size | Command | Peak RSS | CPU s |")
    print("|---|---|---|---|---|")
    for n in sizes:
        with tempfile.TemporaryDirectory(dir=".") as tmp:
            log = Path(tmp) / "log.jsonl"
            size = write_log(log, n)
            commands = {
                "ingest-duis": ["ingest-duis", str(log), "--db", str(Path(tmp) / "a.duckdb")],
                "party-rtt": [
                    "party-rtt", str(log), "--party", "SUP-A", "--period", "2026-10",
                    "--db", str(Path(tmp) / "b.duckdb"), "--out", str(Path(tmp) / "report"),
                ],
            }  # fmt: skip
            for name, args in commands.items():
                if only and name not in only:
                    continue
                db = args[args.index("--db") + 1]
                subprocess.run(
                    [str(cli), "ingest", str(Path(tmp) / "side"), "--db", db], check=True, capture_output=True
                )
                run = subprocess.run(
                    ["/usr/bin/time", "-f", "%M %U %S", str(cli), *args], capture_output=True, text=True
                )
                if run.returncode:
                    last = (run.stdout + run.stderr).strip().splitlines()
                    why = next((x for x in reversed(last) if "rror" in x), last[-2] if len(last) > 1 else "")
                    print(f"| {n:,} | {size / 2**20:,.0f} MiB | `{name}` | failed: {why[:200]} | |")
                    continue
                kb, user, system = run.stderr.strip().splitlines()[-1].split()
                cpu_s = float(user) + float(system)
                mib = int(kb) / 2**10
                print(f"| {n:,} | {size / 2**20:,.0f} MiB | `{name}` | {mib:,.0f} MiB | {cpu_s:.0f} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--messages", type=int, default=20_000)
    ap.add_argument("--rss", type=int, nargs="*", help="log sizes (messages) to measure peak memory at")
    ap.add_argument("--only", nargs="*", help="with --rss: only these commands (ingest-duis, party-rtt)")
    args = ap.parse_args()
    if args.rss:
        peak_rss(args.rss, args.only)
        return
    items = messages(args.messages)
    # Each message captured as the logs capture it: half a second after the one before.
    t0 = dt.datetime(2026, 10, 5, 10)
    captured = [(x, t0 + dt.timedelta(milliseconds=500 * i)) for i, x in enumerate(items)]
    plain = etree.XMLParser()
    safe = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    runs = {
        "xml.etree (plain, unsafe)": lambda x: ET.fromstring(x),
        "lxml (plain)": lambda x: etree.fromstring(x.encode(), plain),
        "lxml (entities and network off)": lambda x: etree.fromstring(x.encode(), safe),
    }
    cpu(runs["lxml (plain)"], items[:500])  # warm up
    times = {name: cpu(fn, items) for name, fn in runs.items()}
    times["opmetrics parse_message"] = cpu(lambda p: parse_message(p[0], "bench", 1, p[1], None), captured)
    times["opmetrics ingest-duis (read, pair, validate, store)"] = whole_load(len(items))
    base = times["lxml (entities and network off)"]
    kb = sum(len(x) for x in items) / len(items) / 1024
    print(f"{len(items):,} messages, {kb:.1f} KB each on average; CPU seconds and ratio to safe lxml\n")
    print("| Parser | CPU s | messages/s | ratio |")
    print("|---|---|---|---|")
    for name, t in times.items():
        print(f"| {name} | {t:.2f} | {len(items) / t:,.0f} | {t / base:.2f} |")


if __name__ == "__main__":
    main()
