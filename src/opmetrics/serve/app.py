"""The web app: a JSON API (OpenAPI at /openapi.json, a reference at /docs) and a dashboard.

Every call resolves the user (a server-side session named by the cookie, or `Authorization:
Bearer <token>`) and is scoped server-side by `DataService`; the API description too. All
JavaScript and CSS are served by the app itself (no CDN). Handlers are plain functions, run in
the thread pool, each thread on its own DuckDB cursor: a slow drill-down does not hold up the
others. `serve` reads the serving snapshot writers publish (engine/serving.py), never the store.
"""

import datetime as dt
import decimal
import hmac
import json
import os
import secrets
from importlib import resources
from pathlib import Path
from typing import Annotated, Any

import plotly
from fastapi import Depends, FastAPI, Form, HTTPException, Query, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.concurrency import run_in_threadpool
from starlette.middleware.sessions import SessionMiddleware

from opmetrics import format as fmt
from opmetrics.engine.audit import AuditLog
from opmetrics.engine.serving import Snapshots
from opmetrics.engine.store import Store
from opmetrics.methodology import Methodology
from opmetrics.report.league import stored_secret
from opmetrics.serve.auth import Authenticator, User
from opmetrics.serve.data import DRILL_DIMENSIONS, DataService, Forbidden, NotFound

HERE = Path(str(resources.files("opmetrics.serve")))
PLOTLY_JS = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
    "script-src 'self'; object-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    # same-origin: other sites learn nothing, and our own form posts carry an Origin to check.
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
# Requests worth an audit entry: data and files, not assets or the API's own description.
AUDITED_PREFIXES = ("/api/", "/downloads/")
AUDITED_PAGES = ("/", "/availability", "/league", "/downloads")


def _plain(v: Any) -> Any:
    """What json cannot write itself: dates as ISO text, decimals as numbers (as FastAPI would)."""
    if isinstance(v, dt.date | dt.datetime | dt.time):
        return v.isoformat()
    if isinstance(v, decimal.Decimal):
        return int(v) if v == v.to_integral_value() else float(v)
    return str(v)


def answer(obj: Any) -> Response:
    """An API answer written once with the standard library's json: FastAPI's generic encoder
    walks every value in Python first, which made a CPM table's answer cost 7 ms of the event
    loop (docs/reliability.md, Load)."""
    return Response(json.dumps(obj, default=_plain, allow_nan=False), media_type="application/json")


def _audited(path: str) -> str | None:
    if path.startswith("/downloads/"):
        return "download"
    if path.startswith(AUDITED_PREFIXES) or path in AUDITED_PAGES or path.startswith("/process/"):
        return "view"
    return None


PeriodQ = Annotated[str | None, Query(pattern=r"^\d{4}-\d{2}$", description="YYYY-MM; default the latest")]


class HeadAsGet:
    """HEAD answered as GET without the body (RFC 9110 9.3.2), for every route: link checkers
    and monitoring probes get the status and headers a GET would."""

    def __init__(self, app: Any):
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return

        async def no_body(message: dict) -> None:
            if message["type"] == "http.response.body":
                message = {**message, "body": b"", "more_body": False}
                if getattr(no_body, "done", False):
                    return
                no_body.done = True  # type: ignore[attr-defined]
            await send(message)

        await self.app({**scope, "method": "GET"}, receive, no_body)


def edition_of(name: str) -> str:
    """The edition a file of the served pack folder belongs to, from where it lies:
    `confidential/` (with the throttling report: DCC and SEC Panel), `parties/<id>/` (that
    party's edition), anything else the public pack."""
    parts = Path(name).parts
    if parts[:1] == ("confidential",):
        return "confidential"
    if parts[:1] == ("parties",):
        return f"party:{parts[1]}" if len(parts) > 2 else "public"
    return "public"


def may_download(user: User, name: str) -> bool:
    """Checked on the server for every listing and download: the DCC and the Panel get every
    edition; a party the public pack and its own edition only."""
    edition = edition_of(name)
    if user.sees_all or edition == "public":
        return True
    return edition == f"party:{user.party_id}"


def create_app(
    source: Store | Snapshots,
    m: Methodology,
    pack_dir: Path | None,
    session_secret: str,
    secure_cookies: bool = True,
    audit: AuditLog | None = None,
) -> FastAPI:
    app = FastAPI(
        title="opmetrics",
        version="1",
        description="Smart-metering performance measures (PMR) as JSON, scoped to the caller.",
        responses={
            401: {"description": "Not logged in, or an invalid API token"},
            403: {"description": "Outside the caller's scope (another party, a confidential report)"},
            404: {"description": "No such period, file or business process"},
            422: {"description": "Invalid parameters"},
        },
        # The description and its reference page are served below, behind the log-in, from
        # the app itself (the default pages load their scripts from a CDN).
        openapi_url=None,
        docs_url=None,
        redoc_url=None,
    )
    app.add_middleware(
        SessionMiddleware,
        secret_key=session_secret,
        session_cookie="opmetrics_session",
        same_site="strict",
        https_only=secure_cookies,
        max_age=Authenticator.SESSION_SECONDS,
    )
    app.add_middleware(HeadAsGet)
    data = DataService(source, m)
    auth = Authenticator(source)
    templates = Jinja2Templates(directory=str(HERE / "templates"))
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")

    def record(actor: str, via: str, action: str, target: str, **detail: Any) -> None:
        if audit is not None:
            audit.record(actor, action, target, via, **detail)

    @app.middleware("http")
    async def headers(request: Request, call_next: Any) -> Any:
        request.state.user = None  # set by current_user / page; read below for the audit log
        if request.method == "POST" and not _same_origin(request):
            response: Any = JSONResponse({"detail": "cross-site request refused"}, status_code=403)
        else:
            response = await call_next(request)
        for k, v in SECURITY_HEADERS.items():
            response.headers.setdefault(k, v)
        action = _audited(request.url.path)
        user = getattr(request.state, "user", None)
        if action and user is not None:
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            await run_in_threadpool(
                record, user.username, request.state.via, action, target, status=response.status_code
            )
        return response

    def _same_origin(request: Request) -> bool:
        """A browser names the page a POST comes from; refuse any other site (CSRF, with the
        token below as the second line)."""
        origin = request.headers.get("origin") or request.headers.get("referer")
        if not origin or origin == "null":  # no claim made: the CSRF token decides
            return True
        from urllib.parse import urlsplit

        return urlsplit(origin).netloc == request.headers.get("host", "")

    def csrf_token(request: Request) -> str:
        if "csrf" not in request.session:
            request.session["csrf"] = secrets.token_urlsafe(32)
        return request.session["csrf"]

    def csrf_ok(request: Request, sent: str | None) -> bool:
        known = request.session.get("csrf")
        return bool(known and sent and hmac.compare_digest(known, sent))

    def session_user(request: Request) -> User | None:
        user = auth.session_user(request.session.get("sid"))
        if user is None and "sid" in request.session:
            request.session.clear()  # ended (logout, expiry, restart, user changed)
        return user

    def current_user(request: Request) -> User:
        header = request.headers.get("authorization", "")
        if header.lower().startswith("bearer "):
            user = auth.by_token(header[7:].strip())
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
    process_ids = "^(" + "|".join(p.id for p in m.processes) + ")$"

    def guard(fn: Any, *args: Any) -> Response:
        """Call the data service: its errors as HTTP statuses, and the answer as JSON with each
        percentage's display text beside it (format.with_text)."""
        return answer(fmt.with_text(call(fn, *args)))

    def call(fn: Any, *args: Any) -> Any:
        try:
            return fn(*args)
        except Forbidden as e:
            raise HTTPException(403, str(e)) from None
        except NotFound as e:
            raise HTTPException(404, str(e)) from None
        except (KeyError, ValueError) as e:
            raise HTTPException(422, str(e).strip("'\"")) from None

    # --- API (plain functions: FastAPI runs them in its thread pool) ---------------------------

    @app.get("/api/me", tags=["session"])
    def me(user: UserDep) -> dict[str, Any]:
        return {"username": user.username, "role": user.role, "party_id": user.party_id}

    @app.get("/api/periods", tags=["measures"])
    def periods(user: UserDep) -> list[str]:
        return data.periods()

    @app.get("/api/run", tags=["measures"])
    def run(user: UserDep, period: PeriodQ = None) -> dict[str, Any]:
        p = call(data.period_or_latest, period)
        return guard(data.run, p)

    @app.get("/api/cpm", tags=["measures"])
    def cpm(user: UserDep, period: PeriodQ = None, cpm: str | None = None, segment: str | None = None):
        p = call(data.period_or_latest, period)
        return guard(data.cpm, p, cpm, segment)

    @app.get("/api/rsvp", tags=["measures"])
    def rsvp(
        user: UserDep,
        period: PeriodQ = None,
        scope: Annotated[str, Query(pattern="^(process|srv)$")] = "process",
        key: str | None = None,
        rate: Annotated[str, Query(pattern="^(month|day)$")] = "month",
        segment: str | None = None,
        day: dt.date | None = None,
    ):
        p = call(data.period_or_latest, period)
        return guard(data.rsvp, p, scope, key, rate, segment, day)

    @app.get("/api/outcomes", tags=["measures"])
    def outcomes(
        user: UserDep, period: PeriodQ = None, measure: str | None = None, process: str | None = None
    ):
        p = call(data.period_or_latest, period)
        return guard(data.outcomes, p, user, measure, process)

    @app.get("/api/availability", tags=["availability"])
    def availability(
        user: UserDep,
        period: PeriodQ = None,
        view: str | None = None,
        subject: str | None = None,
        region: str | None = None,
        band: str | None = None,
    ):
        p = call(data.period_or_latest, period)
        return guard(data.availability, p, view, subject, region, band)

    @app.get("/api/legs", tags=["measures"])
    def legs(
        user: UserDep,
        period: PeriodQ = None,
        process: Annotated[str | None, Query(pattern=process_ids, description="Business process id")] = None,
        breakdown: Annotated[str | None, Query(pattern="^(All|region|device_type)$")] = None,
    ):
        """Legs of the journey: the DCC proxy (delivery to CHF/GPF), the home network, RTT
        without it, and DSP time against its share of the TRT."""
        p = call(data.period_or_latest, period)
        return guard(data.legs, p, process, breakdown)

    @app.get("/api/benchmarks", tags=["league"])
    def benchmarks(
        user: UserDep,
        period: PeriodQ = None,
        process: Annotated[
            str | None, Query(pattern=process_ids.replace("^(", "^(all|"), description="Process id, or all")
        ] = None,
        dimension: Annotated[str | None, Query(pattern="^(srv|region|device set)$")] = None,
    ):
        """Industry average and best per SRV, region and device set, with each party's position
        (a party user: its own rows only)."""
        p = call(data.period_or_latest, period)
        return guard(data.benchmarks, p, user, process, dimension)

    @app.get("/api/diagnostics", tags=["league"])
    def diagnostics(
        user: UserDep,
        period: PeriodQ = None,
        process: Annotated[
            str | None, Query(pattern=process_ids.replace("^(", "^(all|"), description="Process id, or all")
        ] = None,
        party: Annotated[str | None, Query(max_length=40)] = None,
    ):
        """What explains each party's gap to other parties (device set, firmware, region,
        orchestration), ranked; a party user sees its own only."""
        p = call(data.period_or_latest, period)
        return guard(data.diagnostics, p, user, process, party)

    @app.get("/api/league", tags=["league"])
    def league(user: UserDep, period: PeriodQ = None, process: str | None = None):
        p = call(data.period_or_latest, period)
        return guard(data.league, p, user, process)

    @app.get("/api/incidents", tags=["availability"])
    def incidents(user: UserDep, period: PeriodQ = None, open_only: bool = False):
        p = call(data.period_or_latest, period)
        return guard(data.incidents, p, user, open_only)

    @app.get("/api/drill", tags=["measures"])
    def drill(
        user: UserDep,
        process: Annotated[str, Query(pattern=process_ids, description="Business process id")],
        by: Annotated[str, Query(pattern="^(" + "|".join(DRILL_DIMENSIONS) + ")$")],
        period: PeriodQ = None,
        day: dt.date | None = None,
        srv: str | None = None,
        region: str | None = None,
        smets: Annotated[int | None, Query(ge=1, le=2)] = None,
        device_type: str | None = None,
        party: str | None = None,
    ):
        p = call(data.period_or_latest, period)
        filters = {
            "day": day,
            "srv": srv,
            "region": region,
            "smets": smets,
            "device_type": device_type,
            "party": party,
        }
        return guard(data.drill, p, user, process, by, filters)

    @app.get("/api/alerts", tags=["monitoring"])
    def alerts(user: UserDep, open_only: bool = True):
        return guard(data.alerts, user, open_only)

    @app.get("/api/system", tags=["measures"])
    def system(user: UserDep):
        return guard(data.system, user)

    def pack_files(user: User) -> list[tuple[str, Path]]:
        if pack_dir is None or not pack_dir.exists():
            return []
        out = []
        for f in sorted(pack_dir.rglob("*")):
            name = f.relative_to(pack_dir).as_posix()
            if (
                f.is_file()
                and f.suffix in (".pdf", ".csv", ".xlsx", ".json", ".html")
                and "archive" not in f.parts
                and not any(part.startswith(".") for part in Path(name).parts)
                and may_download(user, name)
            ):
                out.append((name, f))
        return out

    @app.get("/api/downloads", tags=["downloads"])
    def downloads(user: UserDep) -> list[dict[str, Any]]:
        """The files of the editions this user may have: the public pack; a party's own
        edition; for the DCC and the Panel every edition, the confidential one included."""
        return [
            {"name": name, "edition": edition_of(name), "bytes": f.stat().st_size}
            for name, f in pack_files(user)
        ]

    @app.get("/downloads/{name:path}", tags=["downloads"], response_model=None)
    def download(name: str, user: UserDep) -> FileResponse:
        if pack_dir is None:
            raise HTTPException(404, "no report pack configured")
        root = pack_dir.resolve()
        try:
            path = (root / name).resolve()
            found = root in path.parents and path.is_file()
        except (OSError, ValueError):  # a name too long, or with a NUL byte
            found = False
        if not found:
            raise HTTPException(404, "no such file in the report pack")
        if not may_download(user, path.relative_to(root).as_posix()):
            raise HTTPException(403, "this edition is not yours to download")
        return FileResponse(path)

    # --- the API's own description, behind the log-in -----------------------------------------

    @app.get("/openapi.json", include_in_schema=False)
    def openapi(user: UserDep) -> dict[str, Any]:
        return app.openapi()

    @app.get("/docs", response_class=HTMLResponse, include_in_schema=False)
    def api_reference(request: Request):
        return page(request, "api", spec=app.openapi())

    # --- pages --------------------------------------------------------------------------------

    def page(request: Request, name: str, **ctx: Any) -> HTMLResponse:
        user = session_user(request)
        if user is None:
            return RedirectResponse(f"/login?next={request.url.path}", status_code=303)
        request.state.user, request.state.via = user, "web"
        return templates.TemplateResponse(
            request,
            f"{name}.html",
            {
                "user": user,
                "m": m,
                "periods": data.periods(),
                "stale": data.stale(),
                "csrf": csrf_token(request),
                **ctx,
            },
        )

    LOGIN_MESSAGES = {"expired": "Your session expired: please log in again."}

    def login_page(request: Request, next: str, error: str | None, status: int = 200) -> HTMLResponse:
        ctx = {"next": next, "error": error, "user": None, "csrf": csrf_token(request)}
        return templates.TemplateResponse(request, "login.html", ctx, status_code=status)

    @app.get("/login", response_class=HTMLResponse, include_in_schema=False)
    def login_form(request: Request, next: str = "/", error: str | None = None):
        # Only the app's own messages, by code: a link cannot put its own words on this page.
        return login_page(request, next, LOGIN_MESSAGES.get(error or ""))

    @app.post("/login", include_in_schema=False)
    def login(
        request: Request,
        username: Annotated[str, Form(max_length=200)],
        password: Annotated[str, Form(max_length=1000)],
        next: Annotated[str, Form(max_length=2000)] = "/",
        csrf: Annotated[str | None, Form(max_length=200)] = None,
    ):
        # The peer address; a proxy's X-Forwarded-For counts only when `serve --trusted-proxy`
        # names that proxy (uvicorn then puts the forwarded address here).
        client = request.client.host if request.client else "?"
        if not csrf_ok(request, csrf):
            record(username, "web", "login refused", "/login", reason="missing or wrong CSRF token")
            return login_page(request, next, "Your session expired: please log in again.", 403)
        if auth.locked(username, client) or auth.client_limited(client):
            record(username, "web", "login refused", "/login", reason="locked out", client=client)
            return login_page(request, next, "Too many failed attempts: try again later.", 429)
        user = auth.login(username, password, client)
        if user is None:
            record(username, "web", "login failed", "/login", client=client)
            return login_page(request, next, "Unknown user or wrong password.", 401)
        request.session.clear()  # a fresh session on login: no fixation
        request.session["sid"] = auth.open_session(user)
        request.session["csrf"] = secrets.token_urlsafe(32)
        record(user.username, "web", "login", "/login", client=client)
        target = next if next.startswith("/") and not next.startswith("//") else "/"
        return RedirectResponse(target, status_code=303)

    @app.post("/logout", include_in_schema=False)
    def logout(request: Request, csrf: Annotated[str | None, Form(max_length=200)] = None):
        if not csrf_ok(request, csrf):
            raise HTTPException(403, "missing or wrong CSRF token")
        user = auth.session_user(request.session.get("sid"))
        auth.close_session(request.session.get("sid"))  # the cookie, if kept, opens nothing
        request.session.clear()
        if user:
            record(user.username, "web", "logout", "/logout")
        return RedirectResponse("/login", status_code=303)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def home(request: Request):
        return page(request, "system")

    @app.get("/process/{process_id}", response_class=HTMLResponse, include_in_schema=False)
    def process_page(request: Request, process_id: str):
        try:
            p = m.process(process_id)
        except KeyError:
            raise HTTPException(404, f"no business process {process_id!r}") from None
        return page(request, "process", p=p)

    @app.get("/availability", response_class=HTMLResponse, include_in_schema=False)
    def availability_page(request: Request):
        return page(request, "availability")

    @app.get("/league", response_class=HTMLResponse, include_in_schema=False)
    def league_page(request: Request):
        return page(request, "league")

    @app.get("/downloads", response_class=HTMLResponse, include_in_schema=False)
    def downloads_page(request: Request):
        return page(request, "downloads")

    @app.get("/static-vendor/plotly.min.js", include_in_schema=False)
    def plotly_js() -> FileResponse:
        return FileResponse(PLOTLY_JS, media_type="text/javascript")

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException):
        if exc.status_code == 401 and not request.url.path.startswith("/api"):
            return RedirectResponse(f"/login?next={request.url.path}", status_code=303)
        return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=SECURITY_HEADERS)

    return app


def uvicorn_config(
    application: FastAPI, host: str, port: int, trusted_proxies: list[str] | None = None
) -> Any:
    """How `serve` (and the tests) run the app: X-Forwarded-For is believed only from the
    proxies named (uvicorn's default believes any local peer, so a client on the same host
    could claim any address and escape the per-address lock-out)."""
    import uvicorn

    return uvicorn.Config(
        application,
        host=host,
        port=port,
        log_level="warning",
        proxy_headers=bool(trusted_proxies),
        forwarded_allow_ips=",".join(trusted_proxies) if trusted_proxies else "",
    )


def session_secret(store: Store) -> str:
    """$OPMETRICS_SESSION_SECRET, else a secret generated once per database."""
    return os.environ.get("OPMETRICS_SESSION_SECRET") or stored_secret(store, "session")
