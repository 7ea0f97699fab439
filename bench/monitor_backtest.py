"""Backtest of the monitoring rules on a simulated month (issue 8): precision and recall.

Replays, as if live, every injected fault from two hours before it to two hours after, and five
normal days from 07:00 to 19:00 UTC. It counts, per fault, whether an alert opened within 15
minutes of its start, and every alert that opened outside a fault window as a false alarm.
Writes the table to stdout (Markdown) and `bench/results/monitor_backtest.json`.

    .venv/bin/python bench/monitor_backtest.py [--scale small] [--step 3]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from opmetrics.engine.store import Store
from opmetrics.methodology import load
from opmetrics.monitor.engine import Monitor, load_rules, replay

D = dt.datetime
# Injected by the simulator (UTC): name, start, end.
FAULTS = [
    ("misconfigured orchestration (SUP-C)", D(2026, 10, 8, 9, 0), D(2026, 10, 8, 11, 0)),
    ("North WAN outage", D(2026, 10, 12, 13, 5), D(2026, 10, 12, 14, 40)),
    ("SMETS1 service outage (Cat 1)", D(2026, 10, 15, 2, 10), D(2026, 10, 15, 3, 5)),
    ("faulty firmware release (1.3.1)", D(2026, 10, 17, 8, 0), D(2026, 10, 17, 11, 0)),
    ("alert storm (Central)", D(2026, 10, 20, 17, 0), D(2026, 10, 20, 18, 0)),
    ("DSP Core failover", D(2026, 10, 26, 7, 50), D(2026, 10, 26, 8, 37)),
]
NORMAL_DAYS = [5, 14, 21, 22, 28]
WITHIN = dt.timedelta(minutes=15)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--scale", default="small")
    ap.add_argument("--step", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        opm = str(Path(sys.executable).parent / "opmetrics")
        subprocess.run(
            [opm, "simulate", "--scale", args.scale, "--out", str(base / "data")],
            check=True,
            capture_output=True,
        )
        subprocess.run(
            [opm, "ingest", str(base / "data"), "--db", str(base / "om.duckdb")],
            check=True,
            capture_output=True,
        )
        spans = [(a - dt.timedelta(hours=2), b + dt.timedelta(hours=2)) for _, a, b in FAULTS]
        spans += [(D(2026, 10, d, 7, 0), D(2026, 10, d, 19, 0)) for d in NORMAL_DAYS]
        opened = []
        t0 = time.perf_counter()
        evaluations = 0
        with Store(base / "om.duckdb") as store:
            for start, end in spans:
                mon = Monitor(store, load(), load_rules())
                evaluations += int((end - start).total_seconds() // (60 * args.step)) + 1
                opened += [a for e, a in replay(mon, start, end, args.step) if e == "open"]
        secs = time.perf_counter() - t0
    rows = []
    matched: set[str] = set()
    for name, a, b in FAULTS:
        hits = [x for x in opened if a <= x.opened_at <= min(b, a + WITHIN) + dt.timedelta(minutes=1)]
        first = min(hits, key=lambda x: x.opened_at) if hits else None
        matched |= {x.alert_id + x.opened_at.isoformat() for x in opened if a <= x.opened_at <= b + WITHIN}
        rows.append(
            {
                "fault": name,
                "detected": bool(first),
                "minutes": round((first.opened_at - a).total_seconds() / 60, 1) if first else None,
                "rule": first.rule_id if first else None,
                "top_cause": (
                    f"{first.root_cause[0]['dimension']} = {first.root_cause[0]['value']}"
                    if first and first.root_cause
                    else ""
                ),
            }
        )
    false = [x for x in opened if x.alert_id + x.opened_at.isoformat() not in matched]
    detected = sum(r["detected"] for r in rows)
    recall = detected / len(FAULTS)
    precision = (len(opened) - len(false)) / len(opened) if opened else 1.0
    hours = sum((b - a).total_seconds() for a, b in spans) / 3600
    print(f"Replayed {hours:.0f} h every {args.step} min ({evaluations:,} evaluations) in {secs:.0f} s\n")
    print("| Fault | Detected | Minutes after start | Rule | Top root cause |")
    print("|---|---|---|---|---|")
    for r in rows:
        minutes = r["minutes"] if r["minutes"] is not None else "–"
        seen = "yes" if r["detected"] else "no"
        print(f"| {r['fault']} | {seen} | {minutes} | {r['rule'] or '–'} | {r['top_cause'] or '–'} |")
    print(f"\nAlerts opened: {len(opened)}; outside any fault window (false alarms): {len(false)}")
    for x in false:
        print(f"  false alarm: {x.opened_at} {x.rule_id} {x.scope} {x.message}")
    print(f"Recall {recall:.2f} ({detected}/{len(FAULTS)} faults within 15 min); precision {precision:.2f}")
    out = Path(__file__).parent / "results"
    out.mkdir(exist_ok=True)
    (out / "monitor_backtest.json").write_text(
        json.dumps(
            {
                "scale": args.scale,
                "step_minutes": args.step,
                "hours": hours,
                "faults": rows,
                "alerts_opened": len(opened),
                "false_alarms": len(false),
                "recall": recall,
                "precision": precision,
                "seconds": round(secs, 1),
                "evaluations": evaluations,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
