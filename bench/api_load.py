"""Load test of the JSON API on loopback against the demo database (issues 10 and 36).

Runs `opmetrics demo` (a simulated month at `--scale`, computed, its pack written), adds two
users with `opmetrics users add` (each a writer that publishes a serving snapshot), starts
`opmetrics serve` in its own process on 127.0.0.1 and sends requests *at a fixed rate* (open
loop: request i is due at start + i/rate, and its latency is counted from when it was due, so a
slow server cannot hide its queue), half with a party user's token and half with a DCC user's:

- light: the small calls every page makes (me, periods, run, cpm, incidents, alerts,
  downloads) at `--light-rate` (target 200 req/s, p99 under 200 ms);
- mix: the full page mix, drill-downs included, at `--mix-rate` (target 50 req/s), while
  `users add` publishes new snapshots twice (writers beside the server);
- capacity: the mix from `--concurrency` workers as fast as they go (closed loop).

Writes `bench/results/api_load.json` and prints the tables for docs/reliability.md.

    .venv/bin/python bench/api_load.py [--scale small] [--seconds 20]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlencode

PERIOD = "2026-10"
LIGHT = [
    ("/api/me", {}),
    ("/api/periods", {}),
    ("/api/run", {"period": PERIOD}),
    ("/api/cpm", {"period": PERIOD}),
    ("/api/incidents", {"period": PERIOD}),
    ("/api/alerts", {}),
    ("/api/downloads", {}),
]
# What the dashboard's pages ask for, drill-downs and league included.
MIX = [
    ("/api/system", {}),
    ("/api/cpm", {"period": PERIOD}),
    ("/api/rsvp", {"period": PERIOD, "scope": "process", "rate": "month"}),
    ("/api/rsvp", {"period": PERIOD, "scope": "process", "key": "prepayment", "rate": "day"}),
    ("/api/outcomes", {"period": PERIOD, "process": "prepayment"}),
    ("/api/legs", {"period": PERIOD, "process": "prepayment"}),
    ("/api/availability", {"period": PERIOD}),
    ("/api/league", {"period": PERIOD}),
    ("/api/benchmarks", {"period": PERIOD, "process": "prepayment"}),
    ("/api/diagnostics", {"period": PERIOD, "process": "all"}),
    ("/api/incidents", {"period": PERIOD}),
    ("/api/drill", {"period": PERIOD, "process": "prepayment", "by": "region"}),
    ("/api/drill", {"period": PERIOD, "process": "prepayment", "by": "party"}),
    ("/api/drill", {"period": PERIOD, "process": "meter_reads", "by": "srv", "day": "2026-10-12"}),
]
Result = tuple[str, float, int, float]  # endpoint, latency (s), status, due (s into the phase)


def cli(*args: str) -> str:
    res = subprocess.run(
        [sys.executable, "-m", "opmetrics.cli", *args], check=True, capture_output=True, text=True
    )
    return res.stdout


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def prepare(work: Path, scale: str) -> tuple[Path, dict[str, str]]:
    cli("demo", "--out", str(work), "--scale", scale)
    db = work / "opmetrics.duckdb"
    tokens = {}
    for role, name, extra in (("party", "load-party", ["--party", "SUP-A"]), ("dcc", "load-dcc", [])):
        out = cli(
            "users", "add", name, "--role", role, *extra, "--password", "load-password-01", "--db", str(db)
        )
        tokens[role] = re.search(r"stored hashed\): (\S+)", out).group(1)
    return db, tokens


def _send(conn: http.client.HTTPConnection, path: str, params: dict, token: str) -> int:
    conn.request(
        "GET",
        path + ("?" + urlencode(params) if params else ""),
        headers={"Authorization": f"Bearer {token}"},
    )
    res = conn.getresponse()
    res.read()
    return res.status


def _label(path: str, params: dict) -> str:
    return path + (f" by {params['by']}" if "by" in params else "")


def paced(
    port: int, tokens: dict[str, str], mix: list, rate: float, seconds: float, workers: int = 48
) -> list[Result]:
    """Open loop: request i is due at start + i / rate; latency runs from when it was due."""
    n = int(rate * seconds)
    lock = threading.Lock()
    todo = iter(range(n))
    out: list[Result] = []
    start = time.perf_counter() + 0.2

    def worker() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        while True:
            with lock:
                i = next(todo, None)
            if i is None:
                conn.close()
                return
            due = start + i / rate
            time.sleep(max(0.0, due - time.perf_counter()))
            path, params = mix[i % len(mix)]
            status = _send(conn, path, params, tokens["party" if i % 2 else "dcc"])
            with lock:
                out.append((_label(path, params), time.perf_counter() - due, status, due - start))

    threads = [threading.Thread(target=worker) for _ in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out


def closed(port: int, tokens: dict[str, str], mix: list, n: int, concurrency: int) -> list[Result]:
    """n requests from `concurrency` workers, each sending its next as soon as one returns."""
    lock = threading.Lock()
    todo = iter(range(n))
    out: list[Result] = []
    begin = time.perf_counter()

    def worker() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        while True:
            with lock:
                i = next(todo, None)
            if i is None:
                conn.close()
                return
            path, params = mix[i % len(mix)]
            t0 = time.perf_counter()
            status = _send(conn, path, params, tokens["party" if i % 2 else "dcc"])
            with lock:
                out.append((_label(path, params), time.perf_counter() - t0, status, t0 - begin))

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def summarise(results: list[Result], wall: float, target: float | None) -> dict:
    lat = [r[1] * 1000 for r in results]
    by_path: dict[str, list[float]] = {}
    for path, secs, _, _ in results:
        by_path.setdefault(path, []).append(secs * 1000)
    # p99 per second of the phase (by when each request was due): where a stall falls.
    per_second: dict[int, list[float]] = {}
    for _, secs, _, due in results:
        per_second.setdefault(int(due), []).append(secs * 1000)
    return {
        "requests": len(results),
        "target_rps": target,
        "achieved_rps": round(len(results) / wall, 1),
        "errors": sum(1 for r in results if r[2] != 200),
        "latency_ms": {p: round(pct(lat, float(p[1:])), 1) for p in ("p50", "p95", "p99")}
        | {"max": round(max(lat), 1)},
        "p99_by_second": [round(pct(v, 99), 1) for _, v in sorted(per_second.items())],
        "by_endpoint": {
            k: {"n": len(v), "p50": round(pct(v, 50), 1), "p99": round(pct(v, 99), 1)}
            for k, v in sorted(by_path.items())
        },
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--scale", default="small", help="the demo's scale (its default: small)")
    ap.add_argument("--light-rate", type=float, default=200.0)
    ap.add_argument("--mix-rate", type=float, default=50.0)
    ap.add_argument("--seconds", type=float, default=20.0, help="length of each paced phase")
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--json", type=Path, default=Path("bench/results/api_load.json"))
    args = ap.parse_args()
    phases: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp) / "demo"
        db, tokens = prepare(work, args.scale)
        port = free_port()
        server = subprocess.Popen(
            [sys.executable, "-m", "opmetrics.cli", "serve", "--db", str(db), "--port", str(port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env={**os.environ, "OPMETRICS_SESSION_SECRET": "load-test"},
        )
        try:
            for _ in range(600):
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    time.sleep(0.1)
            closed(port, tokens, LIGHT + MIX, 2 * len(LIGHT + MIX), 1)  # warm-up: each once per role
            t0 = time.perf_counter()
            phases["light"] = summarise(
                paced(port, tokens, LIGHT, args.light_rate, args.seconds),
                time.perf_counter() - t0,
                args.light_rate,
            )

            # Writers beside the server: two `users add` publish new snapshots during the mix.
            def writer() -> None:
                for k in range(2):
                    time.sleep(args.seconds / 3)
                    cli(
                        "users",
                        "add",
                        f"writer-{k}",
                        "--role",
                        "panel",
                        "--password",
                        "writer-password-1",
                        "--db",
                        str(db),
                    )

            w = threading.Thread(target=writer)
            w.start()
            t0 = time.perf_counter()
            phases["mix"] = summarise(
                paced(port, tokens, MIX, args.mix_rate, args.seconds), time.perf_counter() - t0, args.mix_rate
            )
            w.join()
            phases["mix"]["snapshots_published_during"] = 2
            n = int(args.mix_rate * args.seconds)
            t0 = time.perf_counter()
            phases["capacity"] = summarise(
                closed(port, tokens, MIX, n, args.concurrency), time.perf_counter() - t0, None
            )
            phases["capacity"]["concurrency"] = args.concurrency
        finally:
            server.terminate()
            server.wait(10)
    summary = {
        "scale": args.scale,
        "cores": os.cpu_count(),
        "seconds_per_phase": args.seconds,
        "phases": phases,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(summary, indent=1) + "\n")
    print("| phase | target | achieved | requests | p50 ms | p95 ms | p99 ms | max ms | errors |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, ph in phases.items():
        lat, tgt = ph["latency_ms"], ph["target_rps"]
        print(
            f"| {name} | {f'{tgt:g} req/s' if tgt else 'as fast as it goes'} | {ph['achieved_rps']} req/s | "
            f"{ph['requests']} | {lat['p50']} | {lat['p95']} | {lat['p99']} | {lat['max']} | {ph['errors']} |"
        )
    for name, ph in phases.items():
        print(f"{name}: p99 ms by second: {ph['p99_by_second']}")
    for name in ("light", "mix"):
        print(f"\n{name}: | endpoint | requests | p50 ms | p99 ms |")
        for k, v in phases[name]["by_endpoint"].items():
            print(f"| `{k}` | {v['n']} | {v['p50']} | {v['p99']} |")
    sys.exit(1 if any(ph["errors"] for ph in phases.values()) else 0)


if __name__ == "__main__":
    main()
