"""The League page: league tables with anonymised parties, benchmarks and diagnostics."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, Response

from opmetrics.serve.web import Ctx, PeriodQ, UserDep, guard, month, page, process_or_all

router = APIRouter()
ProcessOrAllQ = Annotated[str | None, Depends(process_or_all)]


@router.get("/league", response_class=HTMLResponse, include_in_schema=False)
def league_page(request: Request) -> Response:
    return page(request, "league")


@router.get("/api/league", tags=["league"])
def league(user: UserDep, ctx: Ctx, period: PeriodQ = None, process: str | None = None) -> Response:
    return guard(ctx.data.league, month(ctx, period), user, process)


@router.get("/api/benchmarks", tags=["league"])
def benchmarks(
    user: UserDep,
    ctx: Ctx,
    process: ProcessOrAllQ,
    period: PeriodQ = None,
    dimension: Annotated[str | None, Query(pattern="^(srv|region|device set)$")] = None,
) -> Response:
    """Industry average and best per SRV, region and device set, with each party's position
    (a party user: its own rows only)."""
    return guard(ctx.data.benchmarks, month(ctx, period), user, process, dimension)


@router.get("/api/diagnostics", tags=["league"])
def diagnostics(
    user: UserDep,
    ctx: Ctx,
    process: ProcessOrAllQ,
    period: PeriodQ = None,
    party: Annotated[str | None, Query(max_length=40)] = None,
) -> Response:
    """What explains each party's gap to other parties (device set, firmware, region,
    orchestration), ranked; a party user sees its own only."""
    return guard(ctx.data.diagnostics, month(ctx, period), user, process, party)
