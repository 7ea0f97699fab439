"""The `opmetrics` command line: simulate, ingest, compute, report, demo, and helpers."""

from __future__ import annotations

import datetime as dt
import json
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from opmetrics import format as fmt
from opmetrics import methodology as methodology_mod
from opmetrics.engine.store import DEFAULT_DB, Store
from opmetrics.methodology.status import Status

app = typer.Typer(
    help="opmetrics: measure how well the GB smart-metering network (DCC) serves its users, "
    "and publish it as the monthly Performance Measurement Report.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
contract_app = typer.Typer(help="The input data contract: docs and JSON Schemas.", no_args_is_help=True)
app.add_typer(contract_app, name="contract")
console = Console()
err = Console(stderr=True)

DbOpt = Annotated[Path, typer.Option("--db", help="DuckDB database file.")]


def _period(value: str) -> str:
    if not re.fullmatch(r"\d{4}-(0[1-9]|1[0-2])", value):
        raise typer.BadParameter(f"{value!r} is not a month; use YYYY-MM, e.g. 2026-10")
    return value


PeriodOpt = Annotated[
    str, typer.Option("--period", help="Reporting month, YYYY-MM (UK local days).", callback=_period)
]
MethOpt = Annotated[
    Path | None,
    typer.Option("--methodology", help="Methodology YAML file (default: the built-in version)."),
]


def _progress() -> Progress:
    return Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    )


def _audit(db: Path, action: str, target: str, **detail: object) -> None:
    """Record a state-changing command in the database's audit log (never secrets)."""
    from opmetrics.engine.audit import AuditLog, audit_path, cli_actor

    AuditLog(audit_path(db)).record(cli_actor(), action, target, via="cli", **detail)


def _store(db: Path, read_only: bool = False) -> Store:
    """Open the database, or fail with a message naming it (not a traceback). Read-only for the
    commands that only look: they never create a file, nor wait behind a writer's lock for
    nothing."""
    import duckdb

    try:
        if read_only and not db.exists():
            raise _fail(f"{db}: no such database; run `opmetrics demo` or `ingest` first")
        if db.exists() and not db.is_file():
            raise _fail(f"{db}: not a database file")
        return Store(db, read_only=read_only)
    except (OSError, duckdb.Error) as e:
        raise _fail(f"{db}: cannot open the database ({str(e).splitlines()[0]})") from None


@contextmanager
def _writer(db: Path) -> Iterator[Store]:
    """The store opened for a command that changes what the dashboard shows: once the command
    has succeeded, the serving snapshot is published (engine/serving.py), so a running `serve`
    moves to the new figures, users and alerts without ever holding the database."""
    from opmetrics.engine.serving import publish

    with _store(db) as store:
        yield store
        publish(store)


def _log_files(paths: list[Path], suffixes: tuple[str, ...]) -> list[Path]:
    """`find_files` for DUIS logs, failing the command with its message, or when none is found."""
    from opmetrics.ingest.load import IngestError, find_files

    try:
        files = find_files(paths, suffixes)
    except IngestError as e:
        raise _fail(str(e)) from None
    if not files:
        raise _fail(f"no DUIS logs found in {', '.join(map(str, paths))} ({', '.join(suffixes)}, any case)")
    return files


def _fail(message: str) -> typer.Exit:
    err.print(f"[bold red]error:[/] {escape(message)}")
    return typer.Exit(code=1)


def _utc_time(text: str, option: str) -> dt.datetime:
    """An ISO 8601 time given on the command line (UTC; a trailing Z allowed), or a clear error."""
    try:
        return dt.datetime.fromisoformat(text.rstrip("Z"))
    except ValueError:
        raise _fail(f"{option} must be an ISO 8601 time such as 2026-11-01T00:00, got {text!r}") from None


def _methodology(path: Path | None) -> methodology_mod.Methodology:
    try:
        return methodology_mod.load(path)
    except methodology_mod.MethodologyError as e:
        raise _fail(str(e)) from None


@app.command()
def simulate(
    month: Annotated[str, typer.Option(help="Month to generate, YYYY-MM.")] = "2026-10",
    months: Annotated[
        int, typer.Option(min=1, max=24, help="Consecutive months from --month, into the same folder.")
    ] = 1,
    out: Annotated[Path, typer.Option(help="Output folder.")] = Path("opmetrics-data"),
    scale: Annotated[str, typer.Option(help="tiny | small | medium | national.")] = "small",
    seed: Annotated[int, typer.Option(help="Random seed; same seed, same data.")] = 2026,
    bad_rows: Annotated[int, typer.Option(help="Also write a CSV of N bad/duplicate rows.")] = 0,
    faults: Annotated[bool, typer.Option(help="Inject a WAN outage and an alert storm.")] = True,
    duis: Annotated[
        bool,
        typer.Option("--duis/--no-duis", help="Also write the traffic as DUIS XML gateway logs (duis/)."),
    ] = False,
) -> None:
    """Generate a synthetic month of DCC traffic as Parquet (one file per table per day)."""
    from opmetrics.simulate.generator import SCALES, Faults, simulate_month

    if scale not in SCALES:
        raise _fail(f"unknown scale {scale!r}; choose one of {', '.join(SCALES)}")
    if not re.fullmatch(r"\d{4}-(0[1-9]|1[0-2])", month):
        raise _fail(f"month must look like 2026-10, got {month!r}")
    year, mon = (int(x) for x in month.split("-"))
    wanted = [f"{year + (mon - 1 + i) // 12:04d}-{(mon - 1 + i) % 12 + 1:02d}" for i in range(months)]
    totals: dict[str, int] = {}
    for i, one in enumerate(wanted):
        with _progress() as prog:
            task = prog.add_task(f"Simulating {one} ({scale})", total=31)
            try:
                man = simulate_month(
                    one,
                    out,
                    scale,
                    seed,
                    Faults(enabled=faults),
                    bad_rows,
                    on_day=lambda d, r, a, p=prog, t=task: p.update(t, completed=d),
                    reference=i == 0,
                )
            except ValueError as e:
                raise _fail(str(e)) from None
            prog.update(task, total=man["days"], completed=man["days"])
        for k, v in man["rows"].items():
            totals[k] = totals.get(k, 0) + v
    if duis:
        from opmetrics.simulate.duis import write_duis_logs

        n = write_duis_logs(out, out / "duis")
        console.print(
            f"DUIS logs: {n['requests']:,} requests, {n['responses']:,} responses, {n['alerts']:,} alerts "
            f"in {out / 'duis'}"
        )
    rows = totals
    console.print(
        f"Wrote {rows['service_requests']:,} service requests, {rows['alerts']:,} alerts, "
        f"{rows['incidents']} incidents, {rows['outages']} outages to [bold]{out}[/]"
    )


def _ingest(
    store: Store, paths: list[Path], table: str | None, corrections: bool = False
) -> tuple[int, int, int]:
    from opmetrics.ingest.load import IngestError, find_files, load_file

    try:
        files = find_files(paths)
    except IngestError as e:
        raise _fail(str(e)) from None
    if not files:
        raise _fail(f"no .csv, .csv.gz or .parquet files found in {', '.join(map(str, paths))}")
    summary = Table("file", "table", "status", "read", "accepted", "quarantined", box=None)
    failed = accepted = quarantined = 0
    notes: list[str] = []
    with _progress() as prog:
        task = prog.add_task("Loading files", total=len(files))
        for f in files:
            prog.update(task, description=f"Loading {f.name}")
            try:
                r = load_file(store, f, table, corrections=corrections)
            except IngestError as e:
                err.print(f"[bold red]error:[/] {escape(str(e))}")
                summary.add_row(str(f), table or "?", "[red]failed, nothing loaded[/]", "", "", "")
                failed += 1
            else:
                accepted += r.accepted
                quarantined += r.quarantined
                status = r.status if not r.quarantined else f"[yellow]{r.status}[/]"
                if len(files) <= 40 or r.quarantined or r.status != "loaded":
                    summary.add_row(
                        str(f), r.table, status, f"{r.rows_read:,}", f"{r.accepted:,}", f"{r.quarantined:,}"
                    )
                notes += [f"  {f.name}: [yellow]{n:,} × {reason}[/]" for reason, n in r.reasons.most_common()]
            prog.advance(task)
    console.print(summary)
    if notes:
        console.print(
            "Quarantined rows (kept in the [bold]quarantine[/] table with file, row, field, value):"
        )
        for line in notes:
            console.print(line)
    console.print(
        f"{len(files)} file(s): [green]{accepted:,} rows accepted[/], "
        f"[yellow]{quarantined:,} quarantined[/], {failed} file(s) failed."
    )
    _audit(
        store.path,
        "ingest corrections" if corrections else "ingest",
        ", ".join(map(str, paths)),
        files=len(files),
        accepted=accepted,
        quarantined=quarantined,
        failed=failed,
    )
    return accepted, quarantined, failed


@app.command()
def ingest(
    paths: Annotated[list[Path], typer.Argument(help="Files or folders (CSV, CSV.gz, Parquet).")],
    db: DbOpt = Path(DEFAULT_DB),
    table: Annotated[
        str | None, typer.Option(help="Table for all files (else from file/folder name).")
    ] = None,
    corrections: Annotated[
        bool,
        typer.Option(
            "--corrections",
            help="The files correct records already loaded (same key): each old record is kept "
            "in the superseded table; a row with no record to correct is quarantined.",
        ),
    ] = False,
) -> None:
    """Validate and load input files; bad rows go to quarantine, re-loading a file does nothing."""
    with _writer(db) as store:
        if table and table not in store.contract.tables:
            raise _fail(f"unknown table {table!r}; the contract has {', '.join(store.contract.tables)}")
        _, _, failed = _ingest(store, paths, table, corrections)
    if failed:
        raise typer.Exit(code=1)


@app.command("ingest-duis")
def ingest_duis_cmd(
    paths: Annotated[
        list[Path],
        typer.Argument(help="DUIS logs: .jsonl(.gz) lines, .xml(.gz) messages, or folders of them."),
    ],
    db: DbOpt = Path(DEFAULT_DB),
    methodology: MethOpt = None,
    xsd: Annotated[
        Path | None,
        typer.Option(help="A DUIS XSD every message must be valid against (imports read beside it)."),
    ] = None,
) -> None:
    """Load DUIS message logs: pair requests and responses by RequestID into service_requests and
    alerts. Load `parties` and `devices` first: they map originators to parties and devices to
    region, type and SMETS. Malformed messages are quarantined with file, line and reason."""
    from opmetrics.ingest.duis import SUFFIXES
    from opmetrics.ingest.duis_pairing import ingest_duis
    from opmetrics.ingest.load import IngestError

    files = _log_files(paths, SUFFIXES)
    m = _methodology(methodology)
    start = time.perf_counter()
    with _writer(db) as store:
        try:
            res = ingest_duis(store, m, files, db.parent / ".duis-staging", xsd=xsd)
        except (IngestError, ValueError) as e:
            raise _fail(str(e)) from None
    secs = time.perf_counter() - start
    _audit(
        db, "ingest-duis", ", ".join(map(str, paths)), files=len(files), messages=res.messages, bad=res.bad
    )
    for r in res.loads:
        console.print(
            f"{r.table}: {r.status}, {r.rows_read:,} read, {r.accepted:,} accepted, "
            f"{r.quarantined:,} quarantined"
        )
    for path in res.files_already:
        console.print(f"{path}: already loaded")
    for path, reason in res.failed:
        console.print(f"[red]{path}[/]: not loaded ({reason}); kept in the quarantine")
    if res.unknown_originators:
        console.print(
            f"[yellow]{len(res.unknown_originators)} originator(s) not in `parties`[/] (named by their "
            f"User ID until `parties` maps them): {', '.join(res.unknown_originators[:5])}"
        )
    console.print(
        f"{len(files)} log file(s), {res.messages:,} messages in {secs:.1f} s "
        f"({res.messages / max(secs, 1e-9):,.0f}/s): "
        f"{res.bad:,} malformed (quarantined), {res.unpaired:,} unpaired (table duis_unpaired), "
        f"{res.open_requests:,} request(s) still waiting for a response."
    )


@app.command()
def watch(
    db: DbOpt = Path(DEFAULT_DB),
    drop: Annotated[Path, typer.Option(help="Folder that new input files are dropped into.")] = Path(
        "incoming"
    ),
    stdin: Annotated[
        bool, typer.Option("--stdin", help="Also read service_requests CSV lines from stdin.")
    ] = False,
    rules: Annotated[
        Path | None, typer.Option(help="Monitoring rules YAML (default: the built-in set).")
    ] = None,
    webhook: Annotated[str | None, typer.Option(help="POST each alert event as JSON to this URL.")] = None,
    smtp: Annotated[str | None, typer.Option(help="host:port of an SMTP server for alert emails.")] = None,
    mail_to: Annotated[list[str] | None, typer.Option(help="Email recipient (repeatable).")] = None,
    replay_from: Annotated[
        str | None, typer.Option(help="Replay stored data instead of watching: start, ISO UTC.")
    ] = None,
    replay_to: Annotated[str | None, typer.Option(help="Replay end, ISO UTC.")] = None,
    step: Annotated[int, typer.Option(help="Replay step in minutes.")] = 1,
    methodology: MethOpt = None,
) -> None:
    """Near-real-time monitoring: load micro-batches as they arrive, evaluate the rules every
    minute, and send alerts (open, update, recovery) to the log, a webhook and email."""
    from opmetrics.monitor.engine import Monitor, load_rules, replay
    from opmetrics.monitor.sinks import LogSink, SmtpSink, WebhookSink
    from opmetrics.monitor.watch import watch as watch_loop

    m = _methodology(methodology)
    try:
        rule_set = load_rules(rules)
    except ValueError as e:
        raise _fail(str(e)) from None
    sinks: list = [LogSink(console.print)]
    if webhook:
        sinks.append(WebhookSink(webhook))
    if smtp:
        host, _, port = smtp.partition(":")
        sinks.append(SmtpSink(host, int(port or 25), mail_to or ["ops@localhost"]))
    with _writer(db) as store:
        mon = Monitor(store, m, rule_set, sinks)
        if replay_from:
            start = _utc_time(replay_from, "--replay-from")
            end = _utc_time(replay_to or replay_from, "--replay-to")
            events = replay(mon, start, end, step)
            opened = sum(1 for e, _ in events if e == "open")
            console.print(f"Replayed {start} to {end} every {step} min: {opened} alert(s) opened.")
            return
        console.print(f"Watching {drop} every {rule_set.evaluate_every_seconds} s (Ctrl-C to stop).")
        try:
            from opmetrics.engine.serving import publish

            watch_loop(store, mon, drop, stdin, console.print, published=lambda: publish(store))
        except KeyboardInterrupt:
            console.print("Stopped.")


@app.command("party-rtt")
def party_rtt_cmd(
    paths: Annotated[list[Path], typer.Argument(help="The party's own DUIS logs (files or folders).")],
    party: Annotated[str, typer.Option(help="SEC Party whose log this is.")],
    period: PeriodOpt,
    db: DbOpt = Path(DEFAULT_DB),
    out: Annotated[Path, typer.Option(help="Folder for party-rtt.html and party-rtt.csv.")] = Path(
        "party-rtt"
    ),
    methodology: MethOpt = None,
) -> None:
    """Measure round-trip time as a party experiences it (send to receive) against the TRT, beside
    the DCC-side RTT of the same requests when the DCC's data is loaded too."""
    import csv as csv_mod

    from opmetrics.ingest.duis import SUFFIXES, load_party_logs
    from opmetrics.measures.party_rtt import party_rtt_report
    from opmetrics.report.pack import _env

    files = _log_files(paths, SUFFIXES)
    m = _methodology(methodology)
    with _store(db) as store:
        failed: list = []
        n, bad, foreign = load_party_logs(store, m, files, party, failed)
        rows = party_rtt_report(store, m, party, period)
    out.mkdir(parents=True, exist_ok=True)
    html = _env().get_template("party_rtt.html.j2").render(rows=rows, party=party, period=period, m=m)
    (out / "party-rtt.html").write_text(html, encoding="utf-8")
    with (out / "party-rtt.csv").open("w", newline="", encoding="utf-8") as fh:
        w = csv_mod.DictWriter(fh, fieldnames=list(rows[0]) if rows else ["srv"])
        w.writeheader()
        w.writerows(rows)
    for b in failed:
        console.print(f"[red]{b.source}[/]: not read ({b.reason})")
    console.print(
        f"{n:,} of {party}'s requests loaded ({bad:,} malformed messages, {foreign:,} requests of other "
        f"parties ignored). Report: [bold]{(out / 'party-rtt.html').resolve()}[/]"
    )


def _published_run(store: Store, period: str) -> str | None:
    """The run behind the latest issued public pack of a period, if any."""
    import duckdb

    try:
        rows = store.rows(
            "SELECT run_id FROM pack_issues WHERE period = ? AND edition = 'public' "
            "ORDER BY version DESC LIMIT 1",
            [period],
        )
    except duckdb.CatalogException:  # no pack issued yet: no pack_issues table
        return None
    return rows[0]["run_id"] if rows else None


def _compute(store: Store, m: methodology_mod.Methodology, period: str) -> None:
    from opmetrics.measures.run import STEPS as steps
    from opmetrics.measures.run import compute as run_compute
    from opmetrics.measures.run import latest_run

    before = latest_run(store, period)
    with _progress() as prog:
        task = prog.add_task(f"Computing {period}", total=len(steps))
        try:
            info = run_compute(
                store, m, period, on_step=lambda s: prog.update(task, description=s, completed=steps.index(s))
            )
        except ValueError as e:
            raise _fail(str(e)) from None
        prog.update(task, completed=len(steps), description=f"Computed {period}")
    if before and before.methodology_fingerprint != info.methodology_fingerprint:
        _audit(
            store.path,
            "methodology.change",
            period,
            previous=f"{before.methodology_version} ({before.methodology_fingerprint[:12]})",
            now=f"{info.methodology_version} ({info.methodology_fingerprint[:12]})",
        )
    published = _published_run(store, period)
    if published and published != info.run_id:
        err.print(
            f"[yellow]The {period} pack was published from run {published}; these results differ "
            "(late, corrected or re-ruled data). Run `opmetrics report` to issue a new version with a "
            "change summary; the published issue is kept.[/]"
        )
    _audit(
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
    rank = {
        Status.BELOW_MINIMUM: 0,
        Status.BELOW_TARGET: 1,
        Status.MISSING_INPUT: 2,
        Status.NO_EVENTS: 3,
        Status.TARGET_MET: 4,
    }
    for r in store.rows(
        "SELECT cpm, count(*) AS n, count(*) FILTER (WHERE status = 'target met') AS met, min(pct) AS low, "
        "any_value(target) AS target, any_value(minimum) AS minimum, list(status) AS statuses, "
        "sum(service_credit_gbp) AS credit FROM cpm WHERE period = ? AND run_id = ? AND instance "
        "GROUP BY cpm ORDER BY min(rowid)",
        [period, info.run_id],
    ):
        worst = min(r["statuses"], key=lambda x: rank.get(x, 9))
        colours = {Status.TARGET_MET: "green", Status.BELOW_TARGET: "yellow", Status.NO_EVENTS: "cyan"}
        colour = colours.get(worst, "red")
        low = fmt.pct(r["low"])
        t.add_row(
            r["cpm"],
            str(r["n"]),
            str(r["met"]),
            low,
            f"{r['target']}%",
            f"{r['minimum']}%",
            f"[{colour}]{worst}[/]",
            f"{r['credit']:,.0f}",
        )
    console.print(t)
    ov = store.rows(
        "SELECT pct, planned_min, planned_over_allowance_min FROM availability "
        "WHERE period = ? AND run_id = ? AND view = 'overall'",
        [period, info.run_id],
    )
    worst = store.rows(
        "SELECT subject, pct, unplanned_min FROM availability WHERE period = ? AND run_id = ? "
        "AND view = 'service' AND region = 'All' AND band = 'all' ORDER BY pct LIMIT 1",
        [period, info.run_id],
    )
    if ov and worst:
        o, w = ov[0], worst[0]
        over = (
            f", {o['planned_over_allowance_min']} min beyond the allowance"
            if o["planned_over_allowance_min"]
            else ""
        )
        svc = m.availability.service(w["subject"])
        # A regional Service's headline from its minutes sums its regions' downtime.
        unit = "region-hours" if svc and svc.regional and m.availability.headline == "minutes" else "h"
        console.print(
            f"Overall Service Availability {fmt.pct(o['pct'])}; lowest {w['subject']} "
            f"{fmt.pct(w['pct'])} ({w['unplanned_min'] / 60:.2f} {unit} unplanned); planned "
            f"maintenance {o['planned_min']} min excluded{over}."
        )


@app.command()
def compute(period: PeriodOpt, db: DbOpt = Path(DEFAULT_DB), methodology: MethOpt = None) -> None:
    """Compute RSVP and CPMs for a month, recording methodology version and input fingerprint."""
    m = _methodology(methodology)
    with _writer(db) as store:
        _compute(store, m, period)


@app.command("export-parquet")
def export_parquet_cmd(
    out: Annotated[Path, typer.Argument(help="Folder for the Parquet layout Spark reads.")],
    db: DbOpt = Path(DEFAULT_DB),
) -> None:
    """Write the validated inputs as Parquet, service requests and alerts one folder per UK day
    (the layout `spark-compute` and a cluster read; docs/scaling.md)."""
    from opmetrics.engine.spark import export_parquet

    with _store(db, read_only=True) as store:
        rows = export_parquet(store, out)
    console.print(f"Wrote {sum(rows.values()):,} rows of {len(rows)} tables to [bold]{out}[/]")


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

    m = _methodology(methodology)
    try:
        first, last = month_bounds(period)
    except ValueError as e:
        raise _fail(str(e)) from None
    if not (layout / "_inputs.json").exists():
        raise _fail(f"{layout}: not a Parquet layout; write one with `opmetrics export-parquet`")
    month_end = uk_midnight_utc(last + dt.timedelta(days=1), m.report_timezone)
    when = _utc_time(as_of, "--as-of") if as_of else month_end
    spark = session(master)
    try:
        with console.status(f"Computing {period} on Spark ({master})"):
            tables = compute_spark(layout, m, period, when, spark)
    except FileNotFoundError as e:  # a table's folder missing from the layout
        raise _fail(str(e)) from None
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
    with _progress() as prog:
        task = prog.add_task("Rendering report", total=PACK_STEPS)
        try:
            res = build_pack(
                store,
                m,
                period,
                out,
                on_step=lambda s: (prog.update(task, description=s), prog.advance(task)),
                party=party,
                commentary_file=commentary,
                pdf=pdf,
                confidential=confidential,
            )
        except PackInvariantError as e:
            raise _fail(str(e)) from None
        except ValueError as e:
            raise _fail(str(e)) from None
        prog.update(task, completed=PACK_STEPS, description="Report written")
    _audit_commentary(store.path, period, commentary)
    edition = "confidential" if confidential else party or "public"
    _audit(store.path, "report", str(out), period=period, edition=edition, issue=res.version)
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
        _audit(db, "commentary.change", period, file=str(commentary) if commentary else None, sha256=sha)


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
    m = _methodology(methodology)
    # A writer: `--compute` makes a new run and a pack issue is recorded, so a running `serve`
    # moves to them (it missed a run computed here before).
    with _writer(db) as store:
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
        _audit(store.path, "users.add", name, role=role, party=party)
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
    m = _methodology(None)
    with _writer(db) as store:
        console.rule("2/4 ingest")
        _ingest(store, [out / "data"], None)
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


@app.command()
def explain(
    request_id: Annotated[str, typer.Argument(help="DUIS RequestID of a service request.")],
    db: DbOpt = Path(DEFAULT_DB),
    methodology: MethOpt = None,
) -> None:
    """Show how one service request was classified: the rules that included it and its outcome."""
    from opmetrics.engine import pmel
    from opmetrics.measures.attribution import attributed
    from opmetrics.measures.records import Scope, classified_requests
    from opmetrics.measures.run import default_as_of

    m = _methodology(methodology)
    with _store(db, read_only=True) as store:
        found = store.rows("SELECT report_date FROM service_requests WHERE request_id = ?", [request_id])
        if not found:
            q = store.con.execute(
                "SELECT path, row_number, all_reasons FROM quarantine WHERE raw LIKE ?",
                [f'%"request_id":"{request_id}"%'],
            ).fetchall()
            if q:
                for path, row, reasons in q:
                    console.print(f"Quarantined: {path} row {row}: {reasons}")
                return
            raise _fail(f"no service request {request_id!r} in {db}")
        period = found[0]["report_date"].strftime("%Y-%m")
        scope = Scope(store.ibis(), m, period, default_as_of(store, period), pmel.active(store))
        t = classified_requests(scope)
        r = t.filter(t.request_id == request_id).to_pyarrow().to_pylist()[0]
        att = attributed(scope, t.filter(t.included))
        procs = sorted(x["process_id"] for x in att.filter(att._rec == r["_rec"]).to_pyarrow().to_pylist())
        lf = store.con.execute("SELECT path FROM loaded_files WHERE file_id = ?", [r["_file_id"]]).fetchall()
        lf = lf[0] if lf else None
        r["source"] = f"{lf[0] if lf else '?'} row {r['_row']}"
        r["business_processes"] = procs
        r["methodology"] = m.version
        for k in ("_file_id", "_row", "_rec"):
            r.pop(k)
        console.print_json(json.dumps(r, default=str))


@contract_app.command("docs")
def contract_docs(
    out: Annotated[Path, typer.Argument(help="Markdown file to write.")] = Path("docs/data-contract.md"),
) -> None:
    """Generate the data contract document from the machine-readable contract."""
    from opmetrics.methodology.contract import markdown

    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(markdown(), encoding="utf-8")
    console.print(f"Wrote {out}")


@contract_app.command("json-schema")
def contract_json_schema(
    out: Annotated[Path, typer.Argument(help="Folder for <table>.schema.json files.")] = Path("docs/schemas"),
) -> None:
    """Write a JSON Schema per input table, for producers to validate rows before sending."""
    from opmetrics.methodology.contract import json_schema, load_contract

    out.mkdir(parents=True, exist_ok=True)
    for t in load_contract().tables.values():
        (out / f"{t.name}.schema.json").write_text(json.dumps(json_schema(t), indent=2) + "\n")
    console.print(f"Wrote {len(load_contract().tables)} schemas to {out}")


@app.command("measures-doc")
def measures_doc(
    out: Annotated[Path, typer.Argument(help="Markdown file to write.")] = Path("docs/measures.md"),
    methodology: MethOpt = None,
) -> None:
    """Write the measure catalogue (docs/measures.md) from the methodology."""
    m = _methodology(methodology)
    out.write_text(methodology_mod.catalogue_markdown(m), encoding="utf-8")
    console.print(f"Wrote {out} ({len(m.cpms)} CPMs, {len(m.measures)} outcome measures)")


exceptions_app = typer.Typer(help="The PMEL: an append-only register of measurement exceptions.")
app.add_typer(exceptions_app, name="exceptions")


@exceptions_app.command("add")
def exceptions_add(
    file: Annotated[Path, typer.Argument(help="YAML file with an `exceptions:` list.")],
    db: DbOpt = Path(DEFAULT_DB),
) -> None:
    """Append the file's exceptions not yet on the register (entries are never edited)."""
    from opmetrics.engine import pmel

    with _writer(db) as store:
        try:
            added = pmel.import_file(store, file)
        except pmel.PmelError as e:
            raise _fail(str(e)) from None
    for a in added:
        _audit(db, "exceptions.add", a["exception_id"], file=str(file))
    console.print(
        f"Added {len(added)} exception(s): {', '.join(a['exception_id'] for a in added) or 'none new'}"
    )


@exceptions_app.command("withdraw")
def exceptions_withdraw(
    exception_id: Annotated[str, typer.Argument(help="Exception to withdraw.")],
    reason: Annotated[str, typer.Option(help="Why it is withdrawn.")],
    by: Annotated[str, typer.Option(help="Who withdraws it.")],
    db: DbOpt = Path(DEFAULT_DB),
) -> None:
    """Withdraw an exception by appending a withdrawal entry."""
    from opmetrics.engine import pmel

    with _writer(db) as store:
        try:
            pmel.withdraw(store, exception_id, reason, by)
        except pmel.PmelError as e:
            raise _fail(str(e)) from None
    _audit(db, "exceptions.withdraw", exception_id, reason=reason, by=by)
    console.print(f"Withdrew {exception_id}")


@exceptions_app.command("list")
def exceptions_list(db: DbOpt = Path(DEFAULT_DB)) -> None:
    """Show the register and verify its hash chain."""
    from opmetrics.engine import pmel

    with _store(db, read_only=True) as store:
        try:
            head = pmel.verify(store)
        except pmel.PmelError as e:
            raise _fail(str(e)) from None
        t = Table("#", "exception", "action", "recorded", "by", "applies to", "reason", box=None)
        for r in pmel.listing(store):
            t.add_row(
                str(r["entry_no"]),
                r["exception_id"],
                r["action"],
                str(r["recorded_at"]),
                r["recorded_by"],
                r["applies_to"] or "",
                r["reason"],
            )
    console.print(t)
    console.print(f"Register version (chain head): {head[:16]}")


@app.command("definitions-doc")
def definitions_doc(
    out: Annotated[Path, typer.Argument(help="Markdown file to write.")] = Path("docs/definitions.md"),
    methodology: MethOpt = None,
    what_if: Annotated[
        Path | None, typer.Option(help="A `what-if` comparison (Markdown) to include.")
    ] = Path("docs/what-if-2026.4-2027.1.md"),
) -> None:
    """Write docs/definitions.md: each measure's seed text, rule, deviations and readings."""
    from opmetrics.methodology import definitions

    m = _methodology(methodology)
    out.write_text(definitions.markdown(m, what_if), encoding="utf-8")
    console.print(f"Wrote {out} ({len(m.deviations)} deviations and readings)")


@app.command("check-methodology")
def check_methodology(path: Annotated[Path, typer.Argument(help="Methodology YAML file.")]) -> None:
    """Validate a methodology file and summarise it."""
    m = _methodology(path)
    console.print(
        f"[green]OK[/] {path}: version {m.version}, {len(m.srvs)} SRVs, "
        f"{len(m.processes)} business processes, CPMs {', '.join(c.id for c in m.cpms)}; "
        f"fingerprint {m.fingerprint[:16]}"
    )


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

    tried, base = _methodology(methodology), _methodology(against)
    if not db.exists():
        raise _fail(f"{db}: no such database; run `opmetrics demo` or `ingest` first")
    with console.status(f"Computing {period} under {base.version} and {tried.version}"):
        try:
            w = whatif.what_if(db, period, tried, base)
        except ValueError as e:
            raise _fail(str(e)) from None
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


seeds_app = typer.Typer(help="The seed documents definitions cite: find a quote, check every citation.")
app.add_typer(seeds_app, name="seeds")
SeedsOpt = Annotated[
    Path | None,
    typer.Option("--seeds", help="Folder of the seed files (default: $OPMETRICS_SEEDS or ../shared/seeds)."),
]


def _seeds(folder: Path | None) -> Path:
    from opmetrics.methodology import citations

    found = folder or citations.seeds_dir()
    if found is None or not all((found / f).exists() for f in citations.SEED_FILES.values()):
        err.print(f"error: the seed files {', '.join(citations.SEED_FILES.values())} are not in {found}")
        raise typer.Exit(1)
    return found


@seeds_app.command("find")
def seeds_find(quote: Annotated[str, typer.Argument(help="Words to find.")], seeds: SeedsOpt = None) -> None:
    """Where words are in the seeds, as a citation to paste: the seed, its lines, the words quoted."""
    from opmetrics.methodology import citations

    where = citations.locate(quote, _seeds(seeds))
    if not where:
        err.print(f'"{quote}" is not in the seeds')
        raise typer.Exit(1)
    for w in where:
        console.print(f'{w} "{quote}"', markup=False, highlight=False)


@seeds_app.command("check")
def seeds_check(seeds: SeedsOpt = None) -> None:
    """Check every seed citation in the repository: each carries a quote found at its lines."""
    from opmetrics.methodology import citations

    problems = citations.check_tree(folder=_seeds(seeds))
    n = len(citations.tree_citations())
    for p in problems:
        console.print(p, markup=False, highlight=False)
    if problems:
        err.print(f"{len(problems)} of {n} citations do not hold")
        raise typer.Exit(1)
    console.print(f"[green]OK[/] {n} citations, each quote at its cited lines")


users_app = typer.Typer(help="Dashboard and API users: dcc, panel, or party (one SEC Party).")
app.add_typer(users_app, name="users")


@users_app.command("add")
def users_add(
    username: Annotated[str, typer.Argument(help="User name.")],
    role: Annotated[str, typer.Option(help="dcc | panel | party.")],
    party: Annotated[str | None, typer.Option(help="SEC Party id, for a party user.")] = None,
    password: Annotated[
        str | None, typer.Option(help="Password (12+ characters); default: generate and print one.")
    ] = None,
    db: DbOpt = Path(DEFAULT_DB),
) -> None:
    """Create or replace a user; prints the password (if generated) and an API token, once."""
    import secrets

    from opmetrics.serve.auth import add_user

    pw = password or secrets.token_urlsafe(12)
    with _writer(db) as store:
        try:
            token = add_user(store, username, role, pw, party)
        except ValueError as e:
            raise _fail(str(e)) from None
    _audit(db, "users.add", username, role=role, party=party)
    # Secrets unwrapped and unstyled: a piped or narrow terminal must not break them in two.
    if password is None:
        console.print(f"password: {pw}", soft_wrap=True, markup=False, highlight=False)
    console.print(
        f"API token (shown once; stored hashed): {token}", soft_wrap=True, markup=False, highlight=False
    )


@users_app.command("list")
def users_list(db: DbOpt = Path(DEFAULT_DB)) -> None:
    """The users and their roles (never their secrets)."""
    from opmetrics.serve.auth import list_users

    with _store(db, read_only=True) as store:
        t = Table("user", "role", "party", "created", box=None)
        for r in list_users(store):
            t.add_row(r["username"], r["role"], r["party_id"] or "", str(r["created_at"]))
    console.print(t)


@app.command()
def quarantine(
    db: DbOpt = Path(DEFAULT_DB),
    file: Annotated[str | None, typer.Option(help="Only rows from files whose path contains this.")] = None,
    rows: Annotated[int, typer.Option(help="Also show the first N quarantined rows.")] = 0,
) -> None:
    """What was kept out of the figures and why: quarantined rows by table, reason and file,
    duplicates included, and records replaced by corrections."""
    like = f"%{file}%" if file else "%"
    with _store(db, read_only=True) as store:
        t = Table("table", "reason", "rows", "files", box=None)
        for r in store.rows(
            "SELECT table_name, coalesce(field || ': ', '') || "
            "regexp_replace(reason, ': (same as|already loaded).*$', '') AS why, count(*) AS n, "
            "count(DISTINCT path) AS files FROM quarantine WHERE path LIKE ? GROUP BY ALL ORDER BY n DESC",
            [like],
        ):
            t.add_row(r["table_name"], escape(r["why"]), f"{r['n']:,}", str(r["files"]))
        console.print(t)
        sup = store.rows("SELECT table_name, count(*) AS n FROM superseded GROUP BY ALL ORDER BY 1")
        for r in sup:
            console.print(
                f"{r['table_name']}: {r['n']:,} record(s) replaced by corrections (table superseded)"
            )
        if rows:
            d = Table("file", "row", "field", "value", "reasons", box=None)
            for r in store.rows(
                "SELECT path, row_number, field, value, all_reasons FROM quarantine WHERE path LIKE ? "
                "ORDER BY path, row_number LIMIT ?",
                [like, rows],
            ):
                d.add_row(
                    escape(r["path"]), str(r["row_number"]), r["field"] or "", escape(str(r["value"] or "")),
                    escape(r["all_reasons"]),
                )  # fmt: skip
            console.print(d)


@app.command()
def audit(
    db: DbOpt = Path(DEFAULT_DB),
    action: Annotated[str | None, typer.Option(help="Only this action (e.g. download, compute).")] = None,
    actor: Annotated[str | None, typer.Option(help="Only this actor.")] = None,
    limit: Annotated[int, typer.Option(help="Show the last N entries.")] = 50,
) -> None:
    """Show the audit log (who viewed, downloaded or changed what) and verify its hash chain."""
    from opmetrics.engine.audit import AuditLog, audit_path

    log = AuditLog(audit_path(db))
    try:
        entries = list(log.entries())
    except OSError as e:
        raise _fail(f"{log.path}: cannot read the audit log ({e.strerror})") from None
    except ValueError as e:
        raise _fail(f"{log.path}: audit log damaged ({e})") from None
    rows = [
        e
        for e in entries
        if (action is None or e["action"] == action) and (actor is None or e["actor"] == actor)
    ]
    t = Table("#", "at (UTC)", "actor", "via", "action", "target", "detail", box=None)
    for e in rows[-limit:]:
        detail = ", ".join(f"{k}={v}" for k, v in e["detail"].items() if v is not None)
        t.add_row(
            str(e["seq"]),
            e["at"][:19],
            escape(e["actor"]),
            e["via"],
            e["action"],
            escape(e["target"]),
            escape(detail),
        )
    console.print(t)
    problems = log.verify()
    if problems:
        for p in problems:
            err.print(f"[bold red]audit log damaged:[/] {p}")
        raise typer.Exit(code=1)
    console.print(f"{len(rows)} of {len(entries)} entries shown; hash chain intact ({log.path}).")


@app.command()
def serve(
    db: DbOpt = Path(DEFAULT_DB),
    pack: Annotated[
        Path | None,
        typer.Option(help="Report pack folder for downloads (default: report/ next to the database)."),
    ] = None,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port.")] = 8000,
    methodology: MethOpt = None,
    trusted_proxy: Annotated[
        list[str] | None,
        typer.Option(
            help="Address of a reverse proxy whose X-Forwarded-For is believed (repeatable); "
            "without it the peer address is the client's."
        ),
    ] = None,
) -> None:
    """Start the dashboard and JSON API. It reads the serving snapshot that writing commands
    publish, never the database itself, so ingest, compute, watch and users add run beside it."""
    from opmetrics.engine.serving import Snapshots, publish
    from opmetrics.report.league import league_key
    from opmetrics.serve.app import create_app, session_secret, uvicorn_config

    if not db.exists():
        raise _fail(f"{db}: no such database; run `opmetrics demo` first")
    m = _methodology(methodology)
    try:
        with _store(db) as rw:  # the per-database secrets, and a snapshot of the store as it is now
            secret = session_secret(rw)
            league_key(rw)
            publish(rw)
    except typer.Exit:
        # A writer holds the database: serve what it last published, if it has.
        from opmetrics.engine.serving import current

        if current(db) is None:
            raise
        secret = None
    snapshots = Snapshots(db)
    if secret is None:
        secret = session_secret(snapshots.store())
    pack_dir = pack or (db.parent / "report")
    local = host in ("127.0.0.1", "localhost", "::1")
    from opmetrics.engine.audit import AuditLog, audit_path

    application = create_app(
        snapshots,
        m,
        pack_dir if pack_dir.exists() else None,
        secret,
        secure_cookies=not local,
        audit=AuditLog(audit_path(db)),
    )
    console.print(f"opmetrics dashboard: [bold]http://{host}:{port}/[/]  (API reference: /docs)")
    creds = db.parent / "demo-credentials.txt"
    if creds.exists():
        console.print(f"Demo users ({creds}):")
        console.print(creds.read_text(encoding="utf-8").strip())
    if local:
        console.print("[dim]Cookies are not marked Secure on localhost; serve over HTTPS elsewhere.[/]")
    import uvicorn

    uvicorn.Server(uvicorn_config(application, host, port, trusted_proxy)).run()


if __name__ == "__main__":
    app()
