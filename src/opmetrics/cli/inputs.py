"""Commands that bring data in or show what came in: simulate, ingest, ingest-duis, watch,
party-rtt, export-parquet, quarantine, explain."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.progress import Progress, TaskID
from rich.table import Table

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
    log_files,
    open_store,
    progress,
    utc_time,
    writer,
)
from opmetrics.engine.store import DEFAULT_DB, Store


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
        raise fail(f"unknown scale {scale!r}; choose one of {', '.join(SCALES)}")
    if not re.fullmatch(r"\d{4}-(0[1-9]|1[0-2])", month):
        raise fail(f"month must look like 2026-10, got {month!r}")
    year, mon = (int(x) for x in month.split("-"))
    wanted = [f"{year + (mon - 1 + i) // 12:04d}-{(mon - 1 + i) % 12 + 1:02d}" for i in range(months)]
    totals: dict[str, int] = {}
    for i, one in enumerate(wanted):
        with progress() as prog:
            task = prog.add_task(f"Simulating {one} ({scale})", total=31)

            def on_day(day: int, *_: object, prog: Progress = prog, task: TaskID = task) -> None:
                prog.update(task, completed=day)

            try:
                man = simulate_month(
                    one,
                    out,
                    scale,
                    seed,
                    Faults(enabled=faults),
                    bad_rows,
                    on_day=on_day,
                    reference=i == 0,
                )
            except ValueError as e:
                raise fail(str(e)) from None
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


def ingest_files(
    store: Store, paths: list[Path], table: str | None, corrections: bool = False
) -> tuple[int, int, int]:
    from opmetrics.ingest.load import IngestError, find_files, load_file

    try:
        files = find_files(paths)
    except IngestError as e:
        raise fail(str(e)) from None
    if not files:
        raise fail(f"no .csv, .csv.gz or .parquet files found in {', '.join(map(str, paths))}")
    summary = Table("file", "table", "status", "read", "accepted", "quarantined", box=None)
    failed = accepted = quarantined = 0
    notes: list[str] = []
    with progress() as prog:
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
    audit_event(
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
    with writer(db) as store:
        if table and table not in store.contract.tables:
            raise fail(f"unknown table {table!r}; the contract has {', '.join(store.contract.tables)}")
        _, _, failed = ingest_files(store, paths, table, corrections)
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

    files = log_files(paths, SUFFIXES)
    m = load_methodology(methodology)
    start = time.perf_counter()
    with writer(db) as store:
        try:
            res = ingest_duis(store, m, files, db.parent / ".duis-staging", xsd=xsd)
        except (IngestError, ValueError) as e:
            raise fail(str(e)) from None
    secs = time.perf_counter() - start
    audit_event(
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
    if res.non_device:
        console.print(
            f"{res.non_device:,} non-device request(s) addressed to the DCC itself (no device, region or "
            "SMETS: not in the regional measures), kept with their responses in table duis_non_device"
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

    m = load_methodology(methodology)
    try:
        rule_set = load_rules(rules)
    except ValueError as e:
        raise fail(str(e)) from None
    sinks: list = [LogSink(console.print)]
    if webhook:
        sinks.append(WebhookSink(webhook))
    if smtp:
        host, _, port = smtp.partition(":")
        sinks.append(SmtpSink(host, int(port or 25), mail_to or ["ops@localhost"]))
    with writer(db) as store:
        mon = Monitor(store, m, rule_set, sinks)
        if replay_from:
            start = utc_time(replay_from, "--replay-from")
            end = utc_time(replay_to or replay_from, "--replay-to")
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

    from opmetrics.ingest.duis import SUFFIXES
    from opmetrics.ingest.duis_pairing import load_party_logs
    from opmetrics.measures.party_rtt import party_rtt_report
    from opmetrics.report.pack import _env

    files = log_files(paths, SUFFIXES)
    m = load_methodology(methodology)
    with open_store(db) as store:
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


@app.command("export-parquet")
def export_parquet_cmd(
    out: Annotated[Path, typer.Argument(help="Folder for the Parquet layout Spark reads.")],
    db: DbOpt = Path(DEFAULT_DB),
) -> None:
    """Write the validated inputs as Parquet, service requests and alerts one folder per UK day
    (the layout `spark-compute` and a cluster read; docs/scaling.md)."""
    from opmetrics.engine.spark import export_parquet

    with open_store(db, read_only=True) as store:
        rows = export_parquet(store, out)
    console.print(f"Wrote {sum(rows.values()):,} rows of {len(rows)} tables to [bold]{out}[/]")


@app.command()
def explain(
    request_id: Annotated[str, typer.Argument(help="DUIS RequestID of a service request.")],
    db: DbOpt = Path(DEFAULT_DB),
    methodology: MethOpt = None,
) -> None:
    """Show how one service request was classified: the rules that included it and its outcome."""
    from opmetrics.ingest.quarantine import of_request
    from opmetrics.measures.explain import explain_request

    m = load_methodology(methodology)
    with open_store(db, read_only=True) as store:
        record = explain_request(store, m, request_id)
        if record is None:
            where = of_request(store, request_id)
            for q in where:
                console.print(f"Quarantined: {q['path']} row {q['row_number']}: {q['all_reasons']}")
            if where:
                return
            raise fail(f"no service request {request_id!r} in {db}")
    console.print_json(json.dumps(record, default=str))


@app.command()
def quarantine(
    db: DbOpt = Path(DEFAULT_DB),
    file: Annotated[str | None, typer.Option(help="Only rows from files whose path contains this.")] = None,
    rows: Annotated[int, typer.Option(help="Also show the first N quarantined rows.")] = 0,
) -> None:
    """What was kept out of the figures and why: quarantined rows by table, reason and file,
    duplicates included, and records replaced by corrections."""
    from opmetrics.ingest import quarantine as kept_out

    with open_store(db, read_only=True) as store:
        t = Table("table", "reason", "rows", "files", box=None)
        for r in kept_out.by_reason(store, file):
            t.add_row(r["table_name"], escape(r["why"]), f"{r['n']:,}", str(r["files"]))
        console.print(t)
        for r in kept_out.superseded(store):
            console.print(
                f"{r['table_name']}: {r['n']:,} record(s) replaced by corrections (table superseded)"
            )
        if rows:
            d = Table("file", "row", "field", "value", "reasons", box=None)
            for r in kept_out.rows(store, file, rows):
                d.add_row(
                    escape(r["path"]), str(r["row_number"]), r["field"] or "", escape(str(r["value"] or "")),
                    escape(r["all_reasons"]),
                )  # fmt: skip
            console.print(d)
