"""The web app: a JSON API (OpenAPI at /openapi.json, a reference at /docs) and a dashboard,
assembled from one router per view (serve/views/).

Every call resolves the user (a server-side session named by the cookie, or `Authorization:
Bearer <token>`) and is scoped server-side by `DataService`; the API description too. All
JavaScript and CSS are served by the app itself (no CDN). Handlers are plain functions, run in
the thread pool, each thread on its own DuckDB cursor: a slow drill-down does not hold up the
others. `serve` reads the serving snapshot writers publish (engine/serving.py), never the store.
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.middleware.sessions import SessionMiddleware

from opmetrics.engine.audit import AuditLog
from opmetrics.engine.serving import Snapshots
from opmetrics.engine.store import Store
from opmetrics.methodology import Methodology
from opmetrics.report.anonymise import stored_secret
from opmetrics.serve.auth import Authenticator
from opmetrics.serve.data import DataService
from opmetrics.serve.security import secure
from opmetrics.serve.views import availability, benchmarking, downloads, process, reference, session, system
from opmetrics.serve.web import ServeContext

HERE = Path(str(resources.files("opmetrics.serve")))
VIEWS = (session, system, process, availability, benchmarking, downloads, reference)
ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "Not logged in, or an invalid API token"},
    403: {"description": "Outside the caller's scope (another party, a confidential report)"},
    404: {"description": "No such period, file or business process"},
    422: {"description": "Invalid parameters"},
}


def create_app(
    source: Store | Snapshots,
    m: Methodology,
    pack_dir: Path | None,
    session_secret: str,
    secure_cookies: bool = True,
    audit: AuditLog | None = None,
) -> FastAPI:
    """The app over a store (tests) or the serving snapshots (`serve`)."""
    app = FastAPI(
        title="opmetrics",
        version="1",
        description="Smart-metering performance measures (PMR) as JSON, scoped to the caller.",
        responses=ERRORS,
        # The description and its reference page are served by views/reference.py, behind the
        # log-in (the default pages load their scripts from a CDN).
        openapi_url=None,
        docs_url=None,
        redoc_url=None,
    )
    app.state.ctx = ServeContext(
        DataService(source, m),
        Authenticator(source),
        m,
        pack_dir,
        Jinja2Templates(directory=str(HERE / "templates")),
        audit,
    )
    app.add_middleware(
        SessionMiddleware,
        secret_key=session_secret,
        session_cookie="opmetrics_session",
        same_site="strict",
        https_only=secure_cookies,
        max_age=Authenticator.SESSION_SECONDS,
    )
    secure(app)
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")
    for view in VIEWS:
        app.include_router(view.router)
    return app


def view_routes() -> list[APIRoute]:
    """Every route the views declare. FastAPI includes a router lazily, so an app's `routes`
    lists the routers, not their routes: the route matrix test and the fuzzer read these."""
    return [r for view in VIEWS for r in view.router.routes if isinstance(r, APIRoute)]


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
