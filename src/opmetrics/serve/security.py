"""What wraps every request: security headers, cross-site POSTs refused, HEAD as GET, the audit
entry for data and files, and errors as JSON (or the way to the log-in for a page)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse, RedirectResponse
from starlette.concurrency import run_in_threadpool

from opmetrics.serve.web import context

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


def audited(path: str) -> str | None:
    if path.startswith("/downloads/"):
        return "download"
    if path.startswith(AUDITED_PREFIXES) or path in AUDITED_PAGES or path.startswith("/process/"):
        return "view"
    return None


def same_origin(request: Request) -> bool:
    """A browser names the page a POST comes from; refuse any other site (CSRF, with the form's
    token as the second line)."""
    origin = request.headers.get("origin") or request.headers.get("referer")
    if not origin or origin == "null":  # no claim made: the CSRF token decides
        return True
    return urlsplit(origin).netloc == request.headers.get("host", "")


class HeadAsGet:
    """HEAD answered as GET without the body (RFC 9110 9.3.2), for every route: link checkers
    and monitoring probes get the status and headers a GET would."""

    def __init__(self, app: Any):
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return
        sent_body = False

        async def no_body(message: dict) -> None:
            nonlocal sent_body
            if message["type"] == "http.response.body":
                if sent_body:
                    return
                sent_body = True
                message = {**message, "body": b"", "more_body": False}
            await send(message)

        await self.app({**scope, "method": "GET"}, receive, no_body)


async def guard_request(request: Request, call_next: Any) -> Any:
    request.state.user = None  # set by current_user / page; read below for the audit log
    if request.method == "POST" and not same_origin(request):
        response: Any = JSONResponse({"detail": "cross-site request refused"}, status_code=403)
    else:
        response = await call_next(request)
    for k, v in SECURITY_HEADERS.items():
        response.headers.setdefault(k, v)
    action = audited(request.url.path)
    user = getattr(request.state, "user", None)
    if action and user is not None:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        await run_in_threadpool(
            context(request).record,
            user.username,
            request.state.via,
            action,
            target,
            status=response.status_code,
        )
    return response


async def http_error(request: Request, exc: Exception) -> Any:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 401 and not request.url.path.startswith("/api"):
        return RedirectResponse(f"/login?next={request.url.path}", status_code=303)
    return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=SECURITY_HEADERS)


def secure(app: FastAPI) -> None:
    """Put HEAD handling, the request guard (outermost) and the error handler on an app."""
    app.add_middleware(HeadAsGet)
    app.middleware("http")(guard_request)
    app.add_exception_handler(HTTPException, http_error)
