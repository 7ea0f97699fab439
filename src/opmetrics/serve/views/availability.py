"""The Availability page: each DCC Service by region and time band, and incidents."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from opmetrics.serve.web import Ctx, PeriodQ, UserDep, guard, month, page

router = APIRouter()


@router.get("/availability", response_class=HTMLResponse, include_in_schema=False)
def availability_page(request: Request) -> Response:
    return page(request, "availability")


@router.get("/api/availability", tags=["availability"])
def availability(
    user: UserDep,
    ctx: Ctx,
    period: PeriodQ = None,
    view: str | None = None,
    subject: str | None = None,
    region: str | None = None,
    band: str | None = None,
) -> Response:
    return guard(ctx.data.availability, month(ctx, period), view, subject, region, band)


@router.get("/api/incidents", tags=["availability"])
def incidents(user: UserDep, ctx: Ctx, period: PeriodQ = None, open_only: bool = False) -> Response:
    return guard(ctx.data.incidents, month(ctx, period), user, open_only)
