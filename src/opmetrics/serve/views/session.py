"""Log-in, log-out and who am I."""

from __future__ import annotations

import secrets
from typing import Annotated, Any

from fastapi import APIRouter, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from opmetrics.serve.web import Ctx, UserDep, context, csrf_ok, csrf_token

router = APIRouter()
LOGIN_MESSAGES = {"expired": "Your session expired: please log in again."}


def login_page(request: Request, next: str, error: str | None, status: int = 200) -> Response:
    ctx = {"next": next, "error": error, "user": None, "csrf": csrf_token(request)}
    return context(request).templates.TemplateResponse(request, "login.html", ctx, status_code=status)


@router.get("/api/me", tags=["session"])
def me(user: UserDep) -> dict[str, Any]:
    return {"username": user.username, "role": user.role, "party_id": user.party_id}


@router.get("/login", response_class=HTMLResponse, include_in_schema=False)
def login_form(request: Request, next: str = "/", error: str | None = None) -> Response:
    # Only the app's own messages, by code: a link cannot put its own words on this page.
    return login_page(request, next, LOGIN_MESSAGES.get(error or ""))


@router.post("/login", include_in_schema=False)
def login(
    request: Request,
    ctx: Ctx,
    username: Annotated[str, Form(max_length=200)],
    password: Annotated[str, Form(max_length=1000)],
    next: Annotated[str, Form(max_length=2000)] = "/",
    csrf: Annotated[str | None, Form(max_length=200)] = None,
) -> Response:
    # The peer address; a proxy's X-Forwarded-For counts only when `serve --trusted-proxy`
    # names that proxy (uvicorn then puts the forwarded address here).
    client = request.client.host if request.client else "?"
    if not csrf_ok(request, csrf):
        ctx.record(username, "web", "login refused", "/login", reason="missing or wrong CSRF token")
        return login_page(request, next, "Your session expired: please log in again.", 403)
    if ctx.auth.locked(username, client) or ctx.auth.client_limited(client):
        ctx.record(username, "web", "login refused", "/login", reason="locked out", client=client)
        return login_page(request, next, "Too many failed attempts: try again later.", 429)
    user = ctx.auth.login(username, password, client)
    if user is None:
        ctx.record(username, "web", "login failed", "/login", client=client)
        return login_page(request, next, "Unknown user or wrong password.", 401)
    request.session.clear()  # a fresh session on login: no fixation
    request.session["sid"] = ctx.auth.open_session(user)
    request.session["csrf"] = secrets.token_urlsafe(32)
    ctx.record(user.username, "web", "login", "/login", client=client)
    target = next if next.startswith("/") and not next.startswith("//") else "/"
    return RedirectResponse(target, status_code=303)


@router.post("/logout", include_in_schema=False)
def logout(request: Request, ctx: Ctx, csrf: Annotated[str | None, Form(max_length=200)] = None) -> Response:
    if not csrf_ok(request, csrf):
        raise HTTPException(403, "missing or wrong CSRF token")
    user = ctx.auth.session_user(request.session.get("sid"))
    ctx.auth.close_session(request.session.get("sid"))  # the cookie, if kept, opens nothing
    request.session.clear()
    if user:
        ctx.record(user.username, "web", "logout", "/logout")
    return RedirectResponse("/login", status_code=303)
