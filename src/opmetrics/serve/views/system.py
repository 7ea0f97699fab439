"""The System page (home): the run, the CPMs, live alerts and the state of the system."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from opmetrics.serve.web import Ctx, PeriodQ, UserDep, guard, month, page

router = APIRouter()


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
def home(request: Request) -> Response:
    return page(request, "system")


@router.get("/api/periods", tags=["measures"])
def periods(user: UserDep, ctx: Ctx) -> list[str]:
    return ctx.data.periods()


@router.get("/api/run", tags=["measures"])
def run(user: UserDep, ctx: Ctx, period: PeriodQ = None) -> Response:
    return guard(ctx.data.run, month(ctx, period))


@router.get("/api/cpm", tags=["measures"])
def cpm(user: UserDep, ctx: Ctx, period: PeriodQ = None, cpm: str | None = None, segment: str | None = None):
    return guard(ctx.data.cpm, month(ctx, period), cpm, segment)


@router.get("/api/alerts", tags=["monitoring"])
def alerts(user: UserDep, ctx: Ctx, open_only: bool = True) -> Response:
    return guard(ctx.data.alerts, user, open_only)


@router.get("/api/system", tags=["measures"])
def system(user: UserDep, ctx: Ctx) -> Response:
    return guard(ctx.data.system, user)
