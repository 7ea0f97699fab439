"""What every view shares: the serving context, who the caller is, CSRF, and how an answer is
written. A view module declares its routes on an `APIRouter` and asks for these as dependencies,
so no handler is a closure over the app."""

from __future__ import annotations

import datetime as dt
import decimal
import hmac
import json
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Query, Request
from fastapi.responses import RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from opmetrics import format as fmt
from opmetrics.engine.audit import AuditLog
from opmetrics.methodology import Methodology
from opmetrics.serve.auth import Authenticator, User
from opmetrics.serve.data import DataService, Forbidden, NotFound


@dataclass(frozen=True)
class ServeContext:
    """One per app: the data it serves, the users it knows, and where it writes its audit."""

    data: DataService
    auth: Authenticator
    m: Methodology
    pack_dir: Path | None
    templates: Jinja2Templates
    audit: AuditLog | None = None

    def record(self, actor: str, via: str, action: str, target: str, **detail: Any) -> None:
        if self.audit is not None:
            self.audit.record(actor, action, target, via, **detail)


def context(request: Request) -> ServeContext:
    return request.app.state.ctx


Ctx = Annotated[ServeContext, Depends(context)]


def csrf_token(request: Request) -> str:
    if "csrf" not in request.session:
        request.session["csrf"] = secrets.token_urlsafe(32)
    return request.session["csrf"]


def csrf_ok(request: Request, sent: str | None) -> bool:
    known = request.session.get("csrf")
    return bool(known and sent and hmac.compare_digest(known, sent))


def session_user(request: Request) -> User | None:
    user = context(request).auth.session_user(request.session.get("sid"))
    if user is None and "sid" in request.session:
        request.session.clear()  # ended (logout, expiry, restart, user changed)
    return user


def current_user(request: Request) -> User:
    """The caller of an API route: an API token, else the session; 401 otherwise."""
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        user = context(request).auth.by_token(header[7:].strip())
        if user:
            request.state.user, request.state.via = user, "api"
            return user
        raise HTTPException(401, "invalid API token")
    user = session_user(request)
    if user is None:
        raise HTTPException(401, "log in first (or send Authorization: Bearer <token>)")
    request.state.user, request.state.via = user, "web"
    return user


UserDep = Annotated[User, Depends(current_user)]
PeriodQ = Annotated[str | None, Query(pattern=r"^\d{4}-\d{2}$", description="YYYY-MM; default the latest")]


PROCESS_ID = r"^[a-z][a-z0-9_]{0,59}$"


def _process_id(request: Request, process: str | None, allow_all: bool) -> str | None:
    """A business process id of the methodology: malformed ids fail validation (422), unknown
    ones are not found (404), as the page /process/{id} answers."""
    if process is None or (allow_all and process == "all"):
        return process
    return known_process(context(request), process)


def known_process(ctx: ServeContext, process: str) -> str:
    """The id of a business process of the methodology, or 404 as the page /process/{id} answers."""
    if process not in {p.id for p in ctx.m.processes}:
        raise HTTPException(404, f"no business process {process!r}")
    return process


def process_or_none(
    request: Request,
    process: Annotated[str | None, Query(pattern=PROCESS_ID, description="Business process id")] = None,
) -> str | None:
    return _process_id(request, process, allow_all=False)


def process_or_all(
    request: Request,
    process: Annotated[str | None, Query(pattern=PROCESS_ID, description="Process id, or all")] = None,
) -> str | None:
    return _process_id(request, process, allow_all=True)


def _plain(v: Any) -> Any:
    """What json cannot write itself: dates as ISO text, decimals as numbers (as FastAPI would)."""
    if isinstance(v, dt.date | dt.datetime | dt.time):
        return v.isoformat()
    if isinstance(v, decimal.Decimal):
        return int(v) if v == v.to_integral_value() else float(v)
    return str(v)


def answer(obj: Any) -> Response:
    """An API answer written once with the standard library's json: FastAPI's generic encoder
    walks every value in Python first, which held the event loop (docs/performance.md)."""
    return Response(json.dumps(obj, default=_plain, allow_nan=False), media_type="application/json")


def call(fn: Any, *args: Any) -> Any:
    """Call the data service, its errors as HTTP statuses."""
    try:
        return fn(*args)
    except Forbidden as e:
        raise HTTPException(403, str(e)) from None
    except NotFound as e:
        raise HTTPException(404, str(e)) from None
    except (KeyError, ValueError) as e:
        raise HTTPException(422, str(e).strip("'\"")) from None


def guard(fn: Any, *args: Any) -> Response:
    """The data service's answer as JSON, each percentage's display text beside it
    (format.with_text)."""
    return answer(fmt.with_text(call(fn, *args)))


def month(ctx: ServeContext, period: str | None) -> str:
    """The period asked for, or the latest one computed."""
    return call(ctx.data.period_or_latest, period)


def page(request: Request, name: str, **extra: Any) -> Response:
    """A dashboard page for a logged-in user, or the way to the log-in."""
    user = session_user(request)
    if user is None:
        return RedirectResponse(f"/login?next={request.url.path}", status_code=303)
    request.state.user, request.state.via = user, "web"
    ctx = context(request)
    return ctx.templates.TemplateResponse(
        request,
        f"{name}.html",
        {
            "user": user,
            "m": ctx.m,
            "periods": ctx.data.periods(),
            "stale": ctx.data.stale(),
            "csrf": csrf_token(request),
            **extra,
        },
    )
