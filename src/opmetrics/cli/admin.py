"""Commands that administer a database: the exceptions register (PMEL), users, the audit log, and
the dashboard server."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from opmetrics.cli.common import (
    DbOpt,
    MethOpt,
    app,
    audit_event,
    console,
    err,
    fail,
    load_methodology,
    open_store,
    writer,
)
from opmetrics.engine.store import DEFAULT_DB

exceptions_app = typer.Typer(help="The PMEL: an append-only register of measurement exceptions.")


app.add_typer(exceptions_app, name="exceptions")


@exceptions_app.command("add")
def exceptions_add(
    file: Annotated[Path, typer.Argument(help="YAML file with an `exceptions:` list.")],
    db: DbOpt = Path(DEFAULT_DB),
) -> None:
    """Append the file's exceptions not yet on the register (entries are never edited)."""
    from opmetrics.engine import pmel

    with writer(db) as store:
        try:
            added = pmel.import_file(store, file)
        except pmel.PmelError as e:
            raise fail(str(e)) from None
    for a in added:
        audit_event(db, "exceptions.add", a["exception_id"], file=str(file))
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

    with writer(db) as store:
        try:
            pmel.withdraw(store, exception_id, reason, by)
        except pmel.PmelError as e:
            raise fail(str(e)) from None
    audit_event(db, "exceptions.withdraw", exception_id, reason=reason, by=by)
    console.print(f"Withdrew {exception_id}")


@exceptions_app.command("list")
def exceptions_list(db: DbOpt = Path(DEFAULT_DB)) -> None:
    """Show the register and verify its hash chain."""
    from opmetrics.engine import pmel

    with open_store(db, read_only=True) as store:
        try:
            head = pmel.verify(store)
        except pmel.PmelError as e:
            raise fail(str(e)) from None
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
    with writer(db) as store:
        try:
            token = add_user(store, username, role, pw, party)
        except ValueError as e:
            raise fail(str(e)) from None
    audit_event(db, "users.add", username, role=role, party=party)
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

    with open_store(db, read_only=True) as store:
        t = Table("user", "role", "party", "created", box=None)
        for r in list_users(store):
            t.add_row(r["username"], r["role"], r["party_id"] or "", str(r["created_at"]))
    console.print(t)


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
        raise fail(f"{log.path}: cannot read the audit log ({e.strerror})") from None
    except ValueError as e:
        raise fail(f"{log.path}: audit log damaged ({e})") from None
    rows = [
        entry
        for entry in entries
        if (action is None or entry["action"] == action) and (actor is None or entry["actor"] == actor)
    ]
    t = Table("#", "at (UTC)", "actor", "via", "action", "target", "detail", box=None)
    for entry in rows[-limit:]:
        detail = ", ".join(f"{k}={v}" for k, v in entry["detail"].items() if v is not None)
        t.add_row(
            str(entry["seq"]),
            entry["at"][:19],
            escape(entry["actor"]),
            entry["via"],
            entry["action"],
            escape(entry["target"]),
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
    from opmetrics.report.anonymise import league_key
    from opmetrics.serve.app import create_app, session_secret, uvicorn_config

    if not db.exists():
        raise fail(f"{db}: no such database; run `opmetrics demo` first")
    m = load_methodology(methodology)
    try:
        with open_store(db) as rw:  # the per-database secrets, and a snapshot of the store as it is now
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
        published = snapshots.store()
        if published is None:
            raise fail(f"{db}: another command holds the database and nothing is published yet")
        secret = session_secret(published)
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
