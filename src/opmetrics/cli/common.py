"""What every command shares: the app, the consoles, the options, and opening the store with a
clear error instead of a traceback."""

from __future__ import annotations

import datetime as dt
import re
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

from opmetrics import methodology as methodology_mod
from opmetrics.engine.store import Store

app = typer.Typer(
    help="opmetrics: measure how well the GB smart-metering network (DCC) serves its users, "
    "and publish it as the monthly Performance Measurement Report.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
err = Console(stderr=True)

DbOpt = Annotated[Path, typer.Option("--db", help="DuckDB database file.")]


def period_option(value: str) -> str:
    if not re.fullmatch(r"\d{4}-(0[1-9]|1[0-2])", value):
        raise typer.BadParameter(f"{value!r} is not a month; use YYYY-MM, e.g. 2026-10")
    return value


PeriodOpt = Annotated[
    str, typer.Option("--period", help="Reporting month, YYYY-MM (UK local days).", callback=period_option)
]
MethOpt = Annotated[
    Path | None,
    typer.Option("--methodology", help="Methodology YAML file (default: the built-in version)."),
]


def progress() -> Progress:
    return Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    )


def audit_event(db: Path, action: str, target: str, **detail: object) -> None:
    """Record a state-changing command in the database's audit log (never secrets)."""
    from opmetrics.engine.audit import AuditLog, audit_path, cli_actor

    AuditLog(audit_path(db)).record(cli_actor(), action, target, via="cli", **detail)


def open_store(db: Path, read_only: bool = False) -> Store:
    """Open the database, or fail with a message naming it (not a traceback). Read-only for the
    commands that only look: they never create a file, nor wait behind a writer's lock for
    nothing."""
    import duckdb

    try:
        if read_only and not db.exists():
            raise fail(f"{db}: no such database; run `opmetrics demo` or `ingest` first")
        if db.exists() and not db.is_file():
            raise fail(f"{db}: not a database file")
        return Store(db, read_only=read_only)
    except (OSError, duckdb.Error) as e:
        raise fail(f"{db}: cannot open the database ({str(e).splitlines()[0]})") from None


@contextmanager
def writer(db: Path) -> Iterator[Store]:
    """The store opened for a command that changes what the dashboard shows: once the command
    has succeeded, the serving snapshot is published (engine/serving.py), so a running `serve`
    moves to the new figures, users and alerts without ever holding the database."""
    from opmetrics.engine.serving import publish

    with open_store(db) as store:
        yield store
        publish(store)


def log_files(paths: list[Path], suffixes: tuple[str, ...]) -> list[Path]:
    """`find_files` for DUIS logs, failing the command with its message, or when none is found."""
    from opmetrics.ingest.load import IngestError, find_files

    try:
        files = find_files(paths, suffixes)
    except IngestError as e:
        raise fail(str(e)) from None
    if not files:
        raise fail(f"no DUIS logs found in {', '.join(map(str, paths))} ({', '.join(suffixes)}, any case)")
    return files


def fail(message: str) -> typer.Exit:
    err.print(f"[bold red]error:[/] {escape(message)}")
    return typer.Exit(code=1)


def utc_time(text: str, option: str) -> dt.datetime:
    """An ISO 8601 time given on the command line (UTC; a trailing Z allowed), or a clear error."""
    try:
        return dt.datetime.fromisoformat(text.rstrip("Z"))
    except ValueError:
        raise fail(f"{option} must be an ISO 8601 time such as 2026-11-01T00:00, got {text!r}") from None


def load_methodology(path: Path | None) -> methodology_mod.Methodology:
    try:
        return methodology_mod.load(path)
    except methodology_mod.MethodologyError as e:
        raise fail(str(e)) from None
