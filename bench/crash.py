"""SIGKILL crash harness (issue 10): kill ingest, compute and report at random points, resume,
and require the same database and pack as a run that was never interrupted.

The workload is the real CLI, in one child process: `ingest <data>`, `compute`, `report --no-pdf`.
The harness first runs it uninterrupted (the reference), timing it from the moment the child has
finished importing. Each trial then starts the workload on a fresh database, kills it with
SIGKILL at a point drawn at random from its own slice of that time (so the points cover the whole
run), checks that what survived is consistent (every file either wholly loaded or absent, stored
results all from one run), runs the workload again to the end and compares:

- every table, as an order-free multiset digest of its rows (so a doubled or lost row shows),
  with file ids replaced by file paths and wall-clock columns left out;
- every file of the report pack, byte for byte.

Every fifth trial also kills the resumed run once before the final run (a crash during recovery).

    .venv/bin/python bench/crash.py [--points 50] [--days 31] [--json bench/results/crash.json]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import duckdb

from opmetrics.measures.run import PER_RUN

PERIOD = "2026-10"
# Columns that describe a run rather than what the data says: when something happened on this
# machine, and the runs' own (how many days a compute re-reduced or refolded).
WALL_CLOCK = {"loaded_at", "issued_at", *PER_RUN}
# Secrets generated at random per database (the league key is fixed through the environment).
RANDOM_PER_DATABASE = {"report_secrets"}
STAMP = re.compile(rb"20\d\d-\d\d-\d\d \d\d:\d\d(:\d\d)? UTC")
CHILD = """
import sys
from opmetrics.cli import app
db, data, out = sys.argv[1:4]
print("READY", flush=True)
for args in (["ingest", data, "--db", db],
             ["compute", "--period", "{period}", "--db", db],
             ["report", "--period", "{period}", "--db", db, "--out", out, "--no-pdf"]):
    try:
        app(args, standalone_mode=False)
    except SystemExit as e:
        if e.code:
            raise
print("DONE", flush=True)
""".replace("{period}", PERIOD)


@dataclass
class Trial:
    kill_at_s: float
    killed: bool
    second_kill_at_s: float | None = None
    problems_after_kill: list[str] = field(default_factory=list)
    files_loaded_at_kill: int = 0
    differences: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems_after_kill and not self.differences


def start(db: Path, data: Path, out: Path, log: Path) -> subprocess.Popen[str]:
    # One anonymisation key for every database, so league tables compare across runs.
    env = {**os.environ, "COLUMNS": "200", "OPMETRICS_LEAGUE_KEY": "crash-harness"}
    p = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(db), str(data), str(out)],
        stdout=subprocess.PIPE,
        stderr=log.open("a"),
        text=True,
        cwd=db.parent,
        env=env,
    )
    assert p.stdout is not None
    line = p.stdout.readline()
    if line.strip() != "READY":
        p.kill()
        raise RuntimeError(f"workload did not start: {line!r}; see {log}")
    return p


def run_to_end(db: Path, data: Path, out: Path, log: Path) -> float:
    p = start(db, data, out, log)
    t0 = time.perf_counter()
    rest = p.stdout.read() if p.stdout else ""
    if p.wait() != 0 or "DONE" not in rest:
        raise RuntimeError(f"workload failed (exit {p.returncode}); see {log}")
    return time.perf_counter() - t0


def run_and_kill(db: Path, data: Path, out: Path, log: Path, after_s: float) -> bool:
    """Start the workload, SIGKILL it `after_s` seconds after start-up; False if it ended first."""
    p = start(db, data, out, log)
    try:
        p.wait(timeout=after_s)
        return False
    except subprocess.TimeoutExpired:
        os.kill(p.pid, signal.SIGKILL)
        p.wait()
        return True


def consistency(db: Path) -> tuple[list[str], int]:
    """Problems in a database left by a killed run, and how many files it holds."""
    if not db.exists():
        return [], 0
    con = duckdb.connect(str(db))  # read-write: replays the WAL as the next run would
    try:
        problems: list[str] = []
        files = con.execute(
            "SELECT file_id, table_name, rows_accepted, rows_quarantined FROM loaded_files"
        ).fetchall()
        for fid, table, accepted, quarantined in files:
            got = con.execute(f'SELECT count(*) FROM "{table}" WHERE _file_id = ?', [fid]).fetchall()[0][0]
            # Records a later corrections file replaced still count as loaded from this file.
            got += con.execute("SELECT count(*) FROM superseded WHERE old_file_id = ?", [fid]).fetchall()[0][
                0
            ]
            q = con.execute("SELECT count(*) FROM quarantine WHERE file_id = ?", [fid]).fetchall()[0][0]
            if got != accepted or q != quarantined:
                problems.append(f"file {fid} ({table}): {got}/{accepted} rows, {q}/{quarantined} quarantined")
        known = {f[0] for f in files}
        for (table,) in con.execute("SELECT DISTINCT table_name FROM loaded_files").fetchall():
            orphans = con.execute(f'SELECT DISTINCT _file_id FROM "{table}"').fetchall()
            stray = [o[0] for o in orphans if o[0] not in known]
            if stray:
                problems.append(f"{table}: rows from unrecorded file ids {stray}")
        stray_q = con.execute(
            "SELECT count(*) FROM quarantine WHERE file_id NOT IN (SELECT file_id FROM loaded_files)"
        ).fetchall()[0][0]
        if stray_q:
            problems.append(f"quarantine: {stray_q} rows from unrecorded files")
        tables = {r[0] for r in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
        if "runs" in tables:
            runs = {
                r[0] for r in con.execute("SELECT run_id FROM runs WHERE period = ?", [PERIOD]).fetchall()
            }
            for t in ("rsvp", "cpm", "outcomes", "availability"):
                if t in tables:
                    ids = {
                        r[0]
                        for r in con.execute(
                            f"SELECT DISTINCT run_id FROM {t} WHERE period = ?", [PERIOD]
                        ).fetchall()
                    }
                    if ids != runs:
                        problems.append(
                            f"{t}: results from runs {sorted(ids)} but runs table has {sorted(runs)}"
                        )
        return problems, len(files)
    finally:
        con.close()


def snapshot(db: Path, pack: Path) -> dict[str, str]:
    """A digest per table (multiset of rows) and per pack file."""
    con = duckdb.connect(str(db), read_only=True)
    out: dict[str, str] = {}
    try:
        tables = [r[0] for r in con.execute("SELECT table_name FROM duckdb_tables() ORDER BY 1").fetchall()]
        for t in tables:
            if t in RANDOM_PER_DATABASE:
                continue
            cols = [r[0] for r in con.execute(f'DESCRIBE "{t}"').fetchall()]
            keep = [
                f'x."{c}"'
                for c in cols
                if c not in WALL_CLOCK and c not in ("file_id", "_file_id", "old_file_id", "new_file_id")
            ]
            join = ""
            if "_file_id" in cols or (t == "quarantine"):
                fid = "_file_id" if "_file_id" in cols else "file_id"
                keep.append("lf.path AS _source")
                join = f"LEFT JOIN loaded_files lf ON lf.file_id = x.{fid}"
            if t == "loaded_files":
                keep = [k for k in keep if k != 'x."file_id"']
            rows = f'SELECT {", ".join(keep)} FROM "{t}" x {join}'
            sql = f"SELECT count(*), coalesce(sum(hash(r)), 0) FROM ({rows}) r"
            n, digest = con.execute(sql).fetchall()[0]
            out[f"table {t}"] = f"{n} rows, {digest}"
    finally:
        con.close()
    for f in sorted(pack.rglob("*")):
        if f.is_file():
            body = f.read_bytes()
            if f.suffix == ".html":  # the page states when it was issued and computed
                body = STAMP.sub(b"<time>", body)
            out[f"pack {f.relative_to(pack)}"] = hashlib.sha256(body).hexdigest()[:16]
    return out


def subset(src: Path, dst: Path, days: int) -> Path:
    """A copy of a simulated month keeping the first `days` days of the daily files."""
    for f in src.rglob("*"):
        if not f.is_file():
            continue
        stem = f.name.split(".")[0]
        if stem.startswith(PERIOD + "-") and len(stem) == 10 and int(stem[-2:]) > days:
            continue
        target = dst / f.relative_to(src)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(f, target)
    return dst


def make_data(work: Path, days: int, seed: int = 2026) -> Path:
    full = work / "sim"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "opmetrics.cli",
            "simulate",
            "--scale",
            "tiny",
            "--out",
            str(full),
            "--seed",
            str(seed),
            "--bad-rows",
            "20",
        ],
        check=True,
        capture_output=True,
    )
    return subset(full, work / "data", days) if days < 31 else full


def harness(points: int, days: int, work: Path, seed: int = 7, on_trial=None) -> dict:
    data = make_data(work, days)
    log = work / "workload.log"
    ref_db, ref_pack = work / "ref" / "ref.duckdb", work / "ref" / "pack"
    ref_db.parent.mkdir()
    duration = run_to_end(ref_db, data, ref_pack, log)
    reference = snapshot(ref_db, ref_pack)
    rng = random.Random(seed)
    trials: list[Trial] = []
    for i in range(points):
        # One point in each of `points` equal slices of the reference run: full coverage.
        at = duration * (i + rng.random()) / points
        tdir = work / f"t{i:03d}"
        tdir.mkdir()
        db, pack = tdir / "t.duckdb", tdir / "pack"
        killed = run_and_kill(db, data, pack, log, at)
        problems, nfiles = consistency(db)
        trial = Trial(round(at, 3), killed, problems_after_kill=problems, files_loaded_at_kill=nfiles)
        if i % 5 == 4:
            trial.second_kill_at_s = round(duration * rng.random(), 3)
            run_and_kill(db, data, pack, log, trial.second_kill_at_s)
            more, _ = consistency(db)
            trial.problems_after_kill += [f"after second kill: {p}" for p in more]
        run_to_end(db, data, pack, log)
        got = snapshot(db, pack)
        trial.differences = [
            f"{k}: {reference.get(k)} vs {got.get(k)}"
            for k in sorted(set(reference) | set(got))
            if reference.get(k) != got.get(k)
        ]
        trials.append(trial)
        shutil.rmtree(tdir)
        if on_trial:
            on_trial(i, trial)
    return {
        "points": points,
        "days": days,
        "reference_seconds": round(duration, 2),
        "tables": sum(k.startswith("table ") for k in reference),
        "pack_files": sum(k.startswith("pack ") for k in reference),
        "killed": sum(t.killed for t in trials),
        "failed": sum(not t.ok for t in trials),
        "trials": [asdict(t) for t in trials],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--points", type=int, default=50)
    ap.add_argument("--days", type=int, default=10)
    ap.add_argument("--json", type=Path, default=Path("bench/results/crash.json"))
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:

        def show(i: int, t: Trial) -> None:
            state = "ok" if t.ok else "FAILED"
            print(
                f"  {i + 1:3d}/{args.points}: killed at {t.kill_at_s:6.2f} s "
                f"({t.files_loaded_at_kill} files committed) -> {state}",
                flush=True,
            )
            for p in t.problems_after_kill + t.differences:
                print(f"       {p}")

        res = harness(args.points, args.days, Path(tmp), on_trial=show)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(res, indent=1) + "\n")
    print(
        f"{res['points']} kill points over a {res['reference_seconds']} s run "
        f"({res['tables']} tables, {res['pack_files']} pack files compared): "
        f"{res['killed']} killed mid-run, {res['failed']} differed from the uninterrupted run."
    )
    sys.exit(1 if res["failed"] else 0)


if __name__ == "__main__":
    main()
