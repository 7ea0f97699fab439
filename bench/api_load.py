"""Bounded local load test of the JSON API (issue 10): loopback only, a fixed number of requests.

Builds a computed month (simulated, `--scale tiny` by default), starts `opmetrics serve` in its own
process on 127.0.0.1, then sends `--requests` GETs from `--concurrency` workers, as a party user
(the scoped, more expensive path) and as a DCC user, over a fixed mix of endpoints. Reports
throughput, latency percentiles per endpoint and overall, and any error; writes
`bench/results/api_load.json`.

    .venv/bin/python bench/api_load.py [--requests 3000] [--concurrency 8] [--scale tiny]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlencode

PERIOD = "2026-10"
# (path, params): what a dashboard page load asks for, plus the drill-down.
MIX = [
    ("/api/system", {}),
    ("/api/cpm", {"period": PERIOD}),
    ("/api/rsvp", {"period": PERIOD, "scope": "process", "rate": "month"}),
    ("/api/rsvp", {"period": PERIOD, "scope": "process", "key": "prepayment", "rate": "day"}),
    ("/api/outcomes", {"period": PERIOD, "process": "prepayment"}),
    ("/api/availability", {"period": PERIOD}),
    ("/api/league", {"period": PERIOD}),
    ("/api/incidents", {"period": PERIOD}),
    ("/api/drill", {"period": PERIOD, "process": "prepayment", "by": "region"}),
    ("/api/drill", {"period": PERIOD, "process": "meter_reads", "by": "srv", "day": "2026-10-12"}),
]


def cli(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "opmetrics.cli", *args], check=True, capture_output=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def prepare(work: Path, scale: str) -> tuple[Path, dict[str, str]]:
    db = work / "om.duckdb"
    cli("simulate", "--scale", scale, "--out", str(work / "data"))
    cli("ingest", str(work / "data"), "--db", str(db))
    cli("compute", "--period", PERIOD, "--db", str(db))
    from opmetrics.engine.store import Store
    from opmetrics.serve.auth import add_user

    with Store(db) as s:
        tokens = {
            "party": add_user(s, "load-party", "party", "load-password-01", "SUP-A"),
            "dcc": add_user(s, "load-dcc", "dcc", "load-password-02"),
        }
    return db, tokens


def fire(port: int, tokens: dict[str, str], n: int, concurrency: int) -> list[tuple[str, float, int]]:
    """n requests from `concurrency` threads, each with its own keep-alive connection."""
    lock = threading.Lock()
    todo = iter(range(n))
    out: list[tuple[str, float, int]] = []

    def worker() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        while True:
            with lock:
                i = next(todo, None)
            if i is None:
                conn.close()
                return
            path, params = MIX[i % len(MIX)]
            role = "party" if i % 2 else "dcc"
            t0 = time.perf_counter()
            conn.request(
                "GET", path + "?" + urlencode(params), headers={"Authorization": f"Bearer {tokens[role]}"}
            )
            res = conn.getresponse()
            res.read()
            label = path + (f" by {params['by']}" if "by" in params else "")
            with lock:
                out.append((label, time.perf_counter() - t0, res.status))

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--requests", type=int, default=3000)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--scale", default="tiny")
    ap.add_argument("--json", type=Path, default=Path("bench/results/api_load.json"))
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        db, tokens = prepare(work, args.scale)
        port = free_port()
        server = subprocess.Popen(
            [sys.executable, "-m", "opmetrics.cli", "serve", "--db", str(db), "--port", str(port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env={**os.environ, "OPMETRICS_SESSION_SECRET": "load-test"},
        )
        try:
            for _ in range(300):
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    time.sleep(0.1)
            # Warm-up: one of each (the first drill-down builds its cached tables).
            fire(port, tokens, len(MIX) * 2, 1)
            t0 = time.perf_counter()
            results = fire(port, tokens, args.requests, args.concurrency)
            wall = time.perf_counter() - t0
        finally:
            server.terminate()
            server.wait(10)
    lat = [r[1] * 1000 for r in results]
    errors = [r for r in results if r[2] != 200]
    by_path: dict[str, list[float]] = {}
    for path, secs, _ in results:
        by_path.setdefault(path, []).append(secs * 1000)
    summary = {
        "requests": len(results),
        "concurrency": args.concurrency,
        "scale": args.scale,
        "seconds": round(wall, 2),
        "throughput_rps": round(len(results) / wall, 1),
        "errors": len(errors),
        "latency_ms": {p: round(pct(lat, float(p[1:])), 1) for p in ("p50", "p95", "p99")}
        | {"max": round(max(lat), 1)},
        "by_endpoint": {
            k: {"n": len(v), "p50": round(statistics.median(v), 1), "p99": round(pct(v, 99), 1)}
            for k, v in sorted(by_path.items())
        },
        "cores": os.cpu_count(),
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(summary, indent=1) + "\n")
    print(f"{summary['requests']} requests, {args.concurrency} concurrent, in {summary['seconds']} s: "
          f"{summary['throughput_rps']} req/s, p50 {summary['latency_ms']['p50']} ms, "
          f"p99 {summary['latency_ms']['p99']} ms, {summary['errors']} errors")  # fmt: skip
    print("| endpoint | requests | p50 ms | p99 ms |\n|---|---:|---:|---:|")
    for k, v in summary["by_endpoint"].items():
        print(f"| `{k}` | {v['n']} | {v['p50']} | {v['p99']} |")
    sys.exit(1 if errors else 0)


if __name__ == "__main__":
    main()
