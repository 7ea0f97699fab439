"""Commands that compute and publish: compute, spark-compute, report, demo, what-if."""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from opmetrics import format as fmt
from opmetrics import methodology as methodology_mod
from opmetrics.cli.common import (
    DbOpt,
    MethOpt,
    PeriodOpt,
    app,
    audit_event,
    console,
    err,
    fail,
    load_methodology,
    progress,
    utc_time,
    writer,
)
from opmetrics.cli.inputs import ingest_files, simulate
from opmetrics.engine.store import DEFAULT_DB, Store
from opmetrics.methodology.status import Status


def _compute(store: Store, m: methodology_mod.Methodology, period: str) -> None:
    from opmetrics.measures.run import STEPS as steps
    from opmetrics.measures.run import compute as run_compute
    from opmetrics.measures.run import latest_run
    from opmetrics.report.issues import published_run
    from opmetrics.report.run_summary import availability_headline, cpm_lines

    before = latest_run(store, period)
    with progress() as prog:
        task = prog.add_task(f"Computing {period}", total=len(steps))
        try:
            info = run_compute(
                store, m, period, on_step=lambda s: prog.update(task, description=s, completed=steps.index(s))
            )
        except ValueError as e:
            raise fail(str(e)) from None
        prog.update(task, completed=len(steps), description=f"Computed {period}")
    if before and before.methodology_fingerprint != info.methodology_fingerprint:
        audit_event(
            store.path,
            "methodology.change",
            period,
            previous=f"{before.methodology_version} ({before.methodology_fingerprint[:12]})",
            now=f"{info.methodology_version} ({info.methodology_fingerprint[:12]})",
        )
    published = published_run(store, period)
    if published and published != info.run_id:
        err.print(
            f"[yellow]The {period} pack was published from run {published}; these results differ "
            "(late, corrected or re-ruled data). Run `opmetrics report` to issue a new version with a "
            "change summary; the published issue is kept.[/]"
        )
    audit_event(
        store.path,
        "compute",
        period,
        run_id=info.run_id,
        methodology=f"{info.methodology_version} ({info.methodology_fingerprint[:12]})",
        input_fingerprint=info.input_fingerprint[:12],
    )
    console.print(
        f"Run [bold]{info.run_id}[/]: methodology {info.methodology_version}, "
        f"{info.requests_included:,} of {info.requests_in_period:,} requests included, "
        f"input fingerprint {info.input_fingerprint[:12]}"
    )
    t = Table(
        "CPM", "measures", "target met", "lowest", "target", "minimum", "status (worst)", "credit £", box=None
    )
    colours: dict[str, str] = {
        Status.TARGET_MET: "green",
        Status.BELOW_TARGET: "yellow",
        Status.NO_EVENTS: "cyan",
    }
    for line in cpm_lines(store, period, info.run_id):
        colour = colours.get(line.worst, "red")
        t.add_row(
            line.cpm,
            str(line.measures),
            str(line.target_met),
            fmt.pct(line.lowest_pct),
            f"{line.target}%",
            f"{line.minimum}%",
            f"[{colour}]{line.worst}[/]",
            f"{line.credit_gbp:,.0f}",
        )
    console.print(t)
    headline = availability_headline(store, m, period, info.run_id)
    if headline:
        console.print(headline)


@app.command()
def compute(period: PeriodOpt, db: DbOpt = Path(DEFAULT_DB), methodology: MethOpt = None) -> None:
    """Compute RSVP and CPMs for a month, recording methodology version and input fingerprint."""
    m = load_methodology(methodology)
    with writer(db) as store:
        _compute(store, m, period)


@app.command("spark-compute")
def spark_compute(
    layout: Annotated[Path, typer.Argument(help="Parquet layout written by `export-parquet`.")],
    period: PeriodOpt,
    out: Annotated[Path, typer.Option(help="Folder for the result tables (Parquet).")] = Path(
        "spark-results"
    ),
    master: Annotated[
        str, typer.Option(help="Spark master: local[N], spark://host:7077, yarn ...")
    ] = "local[2]",
    as_of: Annotated[
        str | None, typer.Option(help="Report time, UTC (default: the first midnight after the month).")
    ] = None,
    methodology: MethOpt = None,
) -> None:
    """Compute every measure for a month on Apache Spark, from the same definitions as `compute`."""
    import pyarrow.parquet as pq

    from opmetrics.engine.spark import session
    from opmetrics.measures.records import month_bounds, uk_midnight_utc
    from opmetrics.measures.run import compute_spark

    m = load_methodology(methodology)
    try:
        first, last = month_bounds(period)
    except ValueError as e:
        raise fail(str(e)) from None
    if not (layout / "_inputs.json").exists():
        raise fail(f"{layout}: not a Parquet layout; write one with `opmetrics export-parquet`")
    month_end = uk_midnight_utc(last + dt.timedelta(days=1), m.report_timezone)
    when = utc_time(as_of, "--as-of") if as_of else month_end
    spark = session(master)
    try:
        with console.status(f"Computing {period} on Spark ({master})"):
            tables = compute_spark(layout, m, period, when, spark)
    except FileNotFoundError as e:  # a table's folder missing from the layout
        raise fail(str(e)) from None
    finally:
        spark.stop()
    out.mkdir(parents=True, exist_ok=True)
    for name, t in tables.items():
        pq.write_table(t, out / f"{name}.parquet")
    console.print(f"{len(tables)} result tables for {period} ({first} to {last}) in [bold]{out}[/]")


def _report(
    store: Store,
    m: methodology_mod.Methodology,
    period: str,
    out: Path,
    party: str | None = None,
    commentary: Path | None = None,
    pdf: bool = True,
    confidential: bool = False,
) -> Path:
    from opmetrics.report.invariants import PackInvariantError
    from opmetrics.report.pack import PACK_STEPS, build_pack

    if commentary is None:
        default = Path("commentary") / f"{period}.md"
        commentary = default if default.exists() else None
    with progress() as prog:
        task = prog.add_task("Rendering report", total=PACK_STEPS)

        def step(name: str) -> None:
            prog.update(task, description=name)
            prog.advance(task)

        try:
            res = build_pack(
                store,
                m,
                period,
                out,
                on_step=step,
                party=party,
                commentary_file=commentary,
                pdf=pdf,
                confidential=confidential,
            )
        except PackInvariantError as e:
            raise fail(str(e)) from None
        except ValueError as e:
            raise fail(str(e)) from None
        prog.update(task, completed=PACK_STEPS, description="Report written")
    _audit_commentary(store.path, period, commentary)
    edition = "confidential" if confidential else party or "public"
    audit_event(store.path, "report", str(out), period=period, edition=edition, issue=res.version)
    if res.warnings:
        console.print(
            f"[yellow]{len(res.warnings)} missed target(s) have no commentary[/] (marked in the pack):"
        )
        for w in res.warnings[:8]:
            console.print(f"  [yellow]{w.removeprefix('commentary outstanding: ')}[/]")
        if len(res.warnings) > 8:
            console.print(f"  ... and {len(res.warnings) - 8} more")
    if res.version > 1:
        console.print(f"Issue {res.version}: {res.changed} figure(s) changed; see {out / 'CHANGES.md'}")
    if res.pdf:
        console.print(f"PDF: {res.pdf.resolve()}")
    return res.html


def _audit_commentary(db: Path, period: str, commentary: Path | None) -> None:
    """Log the commentary used for a period whenever its text differs from the last logged."""
    import hashlib

    from opmetrics.engine.audit import AuditLog, audit_path

    sha = hashlib.sha256(commentary.read_bytes()).hexdigest() if commentary else None
    last = None
    for e in AuditLog(audit_path(db)).entries():
        if e["action"] == "commentary.change" and e["target"] == period:
            last = e["detail"].get("sha256")
    if sha != last:
        audit_event(db, "commentary.change", period, file=str(commentary) if commentary else None, sha256=sha)


@app.command()
def report(
    period: PeriodOpt,
    db: DbOpt = Path(DEFAULT_DB),
    out: Annotated[Path, typer.Option(help="Output folder for the pack.")] = Path("opmetrics-report"),
    methodology: MethOpt = None,
    party: Annotated[
        str | None,
        typer.Option(
            help="Per-party edition: this SEC Party is named, all others anonymised; `serve` offers "
            "it to that party from <pack>/parties/<party>/."
        ),
    ] = None,
    commentary: Annotated[
        Path | None,
        typer.Option(
            help="Commentary file (Markdown, '## <measure id>' entries); "
            "default commentary/<period>.md if present."
        ),
    ] = None,
    pdf: Annotated[bool, typer.Option("--pdf/--no-pdf", help="Also write the PDF.")] = True,
    confidential: Annotated[
        bool,
        typer.Option(
            "--confidential",
            help="The DCC and SEC Panel edition, with the throttling report (publication."
            "confidential_measures); `serve` offers it to them only, from <pack>/confidential/.",
        ),
    ] = False,
    compute_first: Annotated[
        bool,
        typer.Option(
            "--compute",
            help="Compute the period first (without it, a pack whose inputs changed is refused).",
        ),
    ] = False,
) -> None:
    """Write the PMR pack: index.html, the PDF, CSV/XLSX datafiles and figures.json."""
    m = load_methodology(methodology)
    # A writer: `--compute` makes a new run and a pack issue is recorded, so a running `serve`
    # moves to them (it missed a run computed here before).
    with writer(db) as store:
        if compute_first:
            _compute(store, m, period)
        page = _report(store, m, period, out, party, commentary, pdf, confidential)
    console.print(f"Report: [bold]{page.resolve()}[/]")


def _demo_users(store: Store, out: Path) -> Path:
    """Three demo users with fresh random passwords, written to demo-credentials.txt."""
    import secrets

    from opmetrics.serve.auth import add_user

    lines = []
    for name, role, party in (
        ("dcc", "dcc", None),
        ("panel", "panel", None),
        ("supplier-a", "party", "SUP-A"),
    ):
        pw = secrets.token_urlsafe(12)
        add_user(store, name, role, pw, party)
        audit_event(store.path, "users.add", name, role=role, party=party)
        lines.append(f"  {name:<11} {pw}   ({role}{', ' + party if party else ''})")
    path = out / "demo-credentials.txt"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    path.chmod(0o600)
    return path


DEMO_COMMENTARY = """# Commentary (demo: written for the simulated month)

## summary
The month carried five simulated faults: a CSP North WAN outage on the 12th, a Category 1
SMETS1 outage overnight on the 15th, maintenance of the shared DCC Gateway Network beyond the
six-hour allowance on the 18th, an alert storm in the Central region on the 20th and a DSP Core
failover on the 26th. Other missed targets are left without commentary on purpose, so the pack
shows how outstanding commentary is flagged.

## CPM1
On-demand responses in the North fell during the CSP North WAN outage on the 12th
(Category 2), when about two thirds of requests to SMETS2 devices timed out.

## CPM6
The DCC User Interface in the North lost 95 minutes of activity hours to the WAN outage on the
12th; the shared DCC Gateway Network maintenance ran an hour beyond the allowance on the 18th.
"""


@app.command()
def demo(
    out: Annotated[Path, typer.Option(help="Folder for data, database and report.")] = Path("opmetrics-demo"),
    month: Annotated[str, typer.Option(help="Month to simulate and report.")] = "2026-10",
    scale: Annotated[str, typer.Option(help="Simulation size (see `simulate`).")] = "small",
    seed: Annotated[int, typer.Option(help="Random seed.")] = 2026,
) -> None:
    """Simulate a month, ingest it, compute every measure and write the report, end to end."""
    start = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    db = out / "opmetrics.duckdb"
    for stale in (db, out / "opmetrics.duckdb.wal"):
        stale.unlink(missing_ok=True)
    console.rule("1/4 simulate")
    simulate(month=month, out=out / "data", scale=scale, seed=seed, bad_rows=24, faults=True)
    m = load_methodology(None)
    with writer(db) as store:
        console.rule("2/4 ingest")
        ingest_files(store, [out / "data"], None)
        console.rule("3/4 compute")
        _compute(store, m, month)
        console.rule("4/4 report")
        notes = out / "commentary" / f"{month}.md"
        notes.parent.mkdir(parents=True, exist_ok=True)
        notes.write_text(DEMO_COMMENTARY, encoding="utf-8")
        page = _report(store, m, month, out / "report", commentary=notes)
        # The editions `serve` offers beside the public pack (serve/app.py, may_download).
        _report(
            store, m, month, out / "report" / "confidential", commentary=notes, pdf=False, confidential=True
        )
        _report(
            store, m, month, out / "report" / "parties" / "SUP-A", party="SUP-A", commentary=notes, pdf=False
        )
        creds = _demo_users(store, out)
    console.print(
        f"\nDone in {time.perf_counter() - start:.0f} s. Open the report: [bold]{page.resolve()}[/]"
    )
    console.print(f"Dashboard: opmetrics serve --db {db}   (users in {creds})")
    console.print(f"Datafiles: {(out / 'report' / 'datafiles').resolve()}   Database: {db.resolve()}")


@app.command("what-if")
def what_if_cmd(
    period: PeriodOpt,
    methodology: Annotated[Path, typer.Option("--methodology", help="The methodology file to try.")],
    against: Annotated[Path, typer.Option("--against", help="The methodology file to compare with.")],
    db: DbOpt = Path(DEFAULT_DB),
    out: Annotated[
        Path | None, typer.Option(help="Write the comparison here (Markdown; a CSV beside).")
    ] = None,
) -> None:
    """Compute a period under two methodology versions over the same stored inputs, without
    touching the published results, and list the figures that moved with the rules behind them."""
    from opmetrics.measures import whatif

    tried, base = load_methodology(methodology), load_methodology(against)
    if not db.exists():
        raise fail(f"{db}: no such database; run `opmetrics demo` or `ingest` first")
    with console.status(f"Computing {period} under {base.version} and {tried.version}"):
        try:
            w = whatif.what_if(db, period, tried, base)
        except ValueError as e:
            raise fail(str(e)) from None
    text = whatif.markdown(w)
    if out is None:
        console.print(text, markup=False, highlight=False)
        return
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")
    rows = whatif.csv_rows(w)
    with out.with_suffix(".csv").open("w", newline="", encoding="utf-8") as fh:
        import csv

        writer = csv.DictWriter(fh, fieldnames=list(rows[0]) if rows else ["period"])
        writer.writeheader()
        writer.writerows(rows)
    moved = f"{len(w.changes)} figures moved, {w.unchanged} did not"
    console.print(f"Wrote {out} and {out.with_suffix('.csv')}: {moved}")
