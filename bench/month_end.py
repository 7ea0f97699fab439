"""Month-end benchmark (issue 11): a month that lands day by day, computed after each day.

    python bench/month_end.py                          # 0.1 of national volume, 30 days
    python bench/month_end.py --fraction 0.03 --days 8 # quicker

It simulates the month's first `days` UK days at `fraction` of a national day's volume (33 M
service requests, about 53 M alerts, a 50 M-device estate at 1.0), loads the inputs that are
not per day (devices, incidents, forecasts...), then for each day loads that day's requests and
alerts and computes the period (every measure), as an operator would when each day lands.
Side by side on the same store, in the same run:

- **month end, incremental**: the last day's compute: that day's cubes are reduced and the
  month is merged from every day's cubes and folds;
- **nothing changed**: the same compute again (the fixed cost of a run: fingerprints, merges);
- **from scratch**: the day cubes cleared and the month computed in one go, which is what
  every month-end run would cost without the day cubes.

Each step runs in its own process (wall time and peak RSS are its own). Writes
`bench/results/month_end.json` and `docs/month-end.md`.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from scale import machine  # bench/ is the script's directory, so on its path

ROOT = Path(__file__).resolve().parents[1]
NATIONAL_REQUESTS = 33_000_000
NATIONAL_DEVICES = 50_000_000
MONTH = "2026-10"
AS_OF = dt.datetime(2026, 11, 1, 12)
PER_DAY = ("service_requests", "alerts")


# ---- steps (each runs in a child process) ---------------------------------------------------


def step_simulate(work: Path, fraction: str, days: str) -> dict:
    from opmetrics.simulate import generator as g

    fr = float(fraction)
    g.SCALES["bench"] = g.Scale(int(NATIONAL_DEVICES * fr), int(NATIONAL_REQUESTS * fr))
    man = g.simulate_month(
        MONTH, work / "data", "bench", seed=2026, faults=g.Faults(enabled=False), days=int(days)
    )
    return man["rows"]


def step_load(work: Path, day: str) -> dict:
    """Load one day's per-day files, or (`day` = "static") every other input."""
    from opmetrics.engine.store import Store
    from opmetrics.ingest.load import find_files, load_file

    files = find_files([work / "data"])
    if day == "static":
        files = [f for f in files if f.parent.name not in PER_DAY]
    else:
        files = [f for f in files if f.parent.name in PER_DAY and f.stem == day]
    with Store(work / "om.duckdb") as store:
        return {"rows": sum(load_file(store, f).accepted for f in files)}


def step_compute(work: Path, scratch: str = "") -> dict:
    from opmetrics.engine.store import Store
    from opmetrics.measures.incremental import clear
    from opmetrics.measures.run import compute
    from opmetrics.methodology import load

    with Store(work / "om.duckdb") as store:
        if scratch:
            clear(store)
            store.con.execute("CHECKPOINT")
        t0 = time.perf_counter()
        info = compute(store, load(None), MONTH, as_of=AS_OF)
        seconds = time.perf_counter() - t0
        outcomes = store.rows("SELECT count(*) AS n FROM outcomes WHERE period = ?", [MONTH])[0]["n"]
    return {
        "requests": info.requests_in_period,
        "alerts": info.alerts_in_period,
        "days_reduced": info.days_reduced,
        "outcome_rows": outcomes,
        "seconds_compute": round(seconds, 2),
    }


STEPS = {"simulate": step_simulate, "load": step_load, "compute": step_compute}


# ---- the harness ----------------------------------------------------------------------------


def run_step(name: str, work: Path, *args: str) -> dict:
    """One step in a child process; wall time and peak RSS measured from outside."""
    cmd = [sys.executable, __file__, "_step", name, str(work), *args]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - t0
    out = proc.stdout.read() if proc.stdout else ""
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"step {name} {' '.join(args)} failed (exit {os.waitstatus_to_exitcode(status)})")
    result = json.loads(out.strip().splitlines()[-1])
    return {"seconds": round(seconds, 2), "peak_rss_mib": round(usage.ru_maxrss / 1024), **result}


def _row(what: str, step: dict) -> str:
    gib = step["peak_rss_mib"] / 1024
    return f"| {what} | {step['seconds']:.1f} s | {gib:.1f} GiB | {step['days_reduced']} |"


def write_doc(r: dict, path: Path) -> None:
    days = r["days"]
    per_day = "\n".join(
        f"| {d['day']} | {d['load']['rows']:,} | {d['load']['seconds']:.1f} s | "
        f"{d['compute']['days_reduced']} | {d['compute']['seconds']:.1f} s | "
        f"{d['compute']['peak_rss_mib'] / 1024:.1f} GiB |"
        for d in days
    )
    last, again, scratch = days[-1]["compute"], r["again"], r["scratch"]
    mach = r["machine"]
    path.write_text(
        f"""# Month end, day by day

Generated by `python bench/month_end.py --fraction {r["fraction"]:g} --days {len(days)}` on
{r["date"]} ({mach["cores"]} cores, {mach["memory_gib"]} GiB, Python {mach["python"]}); every
figure below comes from that one run. Do not edit by hand: run it again.

{len(days)} UK days at {r["fraction"]:g} of a national day: {last["requests"]:,} service requests
and {last["alerts"]:,} alerts in the month. Each day's requests and alerts are loaded, then the
period is computed (every measure, {last["outcome_rows"]:,} outcome rows), as an operator would
when each day lands. Wall time and peak RSS of each step, each in its own process. The
simulator writes into a day's alerts file the alerts its requests raise on the next five days
(firmware verification, late failure alerts), so each load touches up to six UK days, and
`compute` reduces those days again (a few rows each, besides the day that landed).

| | wall time | peak RSS | days reduced |
|---|---|---|---|
{_row("month end, incremental (the last day's compute)", last)}
{_row("the same compute again, nothing changed", again)}
{_row("from scratch (day cubes cleared, the month in one go)", scratch)}

**From scratch / incremental month end: {scratch["seconds"] / last["seconds"]:.1f}.**
Every result table of the incremental store and of the one computed from scratch is identical:
{r["identical"]}.

## Each day

| day | rows loaded | load | days reduced | compute | peak RSS |
|---|---|---|---|---|---|
{per_day}
"""
    )


RESULTS = ("rsvp", "cpm", "outcomes", "availability", "diagnostics", "benchmarks", "legs")


def keep_results(store: Path, to: Path) -> None:
    """A copy of the result tables alone (the store itself is tens of GB)."""
    import duckdb

    con = duckdb.connect(str(to))
    con.execute(f"ATTACH '{store.as_posix()}' AS s (READ_ONLY)")
    for t in RESULTS:
        con.execute(f"CREATE OR REPLACE TABLE {t} AS SELECT * FROM s.{t}")
    con.close()


def compare(work: Path, scratch_db: Path) -> str:
    """Result tables of the incremental store against the store recomputed from scratch."""
    import duckdb

    con = duckdb.connect()
    con.execute(f"ATTACH '{(work / 'incremental.duckdb').as_posix()}' AS a (READ_ONLY)")
    con.execute(f"ATTACH '{scratch_db.as_posix()}' AS b (READ_ONLY)")
    differ = []
    for t in RESULTS:
        cols = [
            r[0]
            for r in con.execute(
                "SELECT column_name FROM duckdb_columns() WHERE database_name = 'a' AND table_name = ?", [t]
            ).fetchall()
            if r[0] != "run_id"
        ]
        sel = ", ".join(f'"{c}"' for c in cols)
        n = con.execute(
            f"SELECT count(*) FROM (SELECT {sel} FROM a.{t} EXCEPT ALL SELECT {sel} FROM b.{t}) "
            f"UNION ALL SELECT count(*) FROM (SELECT {sel} FROM b.{t} EXCEPT ALL SELECT {sel} FROM a.{t})"
        ).fetchall()
        if any(x[0] for x in n):
            differ.append(t)
    return (
        "yes (rsvp, cpm, outcomes, availability, diagnostics, benchmarks, legs)"
        if not differ
        else ("NO: " + ", ".join(differ) + " differ")
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fraction", type=float, default=0.1, help="of a national day's volume, each day")
    ap.add_argument("--days", type=int, default=30)
    ap.add_argument("--work", type=Path, default=Path("/tmp/opmetrics-month-end"))
    ap.add_argument("--doc", type=Path, default=ROOT / "docs" / "month-end.md")
    ap.add_argument("--json", type=Path, default=ROOT / "bench" / "results" / "month_end.json")
    a = ap.parse_args()
    started = time.time()

    def log(msg: str) -> None:
        print(f"[{time.time() - started:7.0f} s] {msg}", flush=True)

    shutil.rmtree(a.work, ignore_errors=True)
    a.work.mkdir(parents=True)
    sim = run_step("simulate", a.work, str(a.fraction), str(a.days))
    log(f"simulated {a.days} days: {sim['seconds']:.0f} s")
    static = run_step("load", a.work, "static")
    log(f"static inputs: {static['rows']:,} rows, {static['seconds']:.0f} s")
    first = dt.date.fromisoformat(f"{MONTH}-01")
    days = []
    for i in range(a.days):
        day = (first + dt.timedelta(days=i)).isoformat()
        loaded = run_step("load", a.work, day)
        computed = run_step("compute", a.work)
        days.append({"day": day, "load": loaded, "compute": computed})
        log(
            f"{day}: load {loaded['seconds']:.1f} s, compute {computed['seconds']:.1f} s "
            f"({computed['days_reduced']} days reduced, {computed['peak_rss_mib']} MiB)"
        )
    again = run_step("compute", a.work)
    log(f"again, nothing changed: {again['seconds']:.1f} s")
    keep_results(a.work / "om.duckdb", a.work / "incremental.duckdb")
    scratch = run_step("compute", a.work, "scratch")
    log(f"from scratch: {scratch['seconds']:.1f} s")
    result = {
        "date": dt.date.today().isoformat(),
        "fraction": a.fraction,
        "machine": machine(),
        "simulate": sim,
        "static": static,
        "days": days,
        "again": again,
        "scratch": scratch,
        "identical": compare(a.work, a.work / "om.duckdb"),
    }
    a.json.parent.mkdir(parents=True, exist_ok=True)
    a.json.write_text(json.dumps(result, indent=1, default=str))
    write_doc(result, a.doc)
    log(f"done; {a.doc}")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "_step":
        print(json.dumps(STEPS[sys.argv[2]](Path(sys.argv[3]), *sys.argv[4:]), default=str))
    else:
        main()
