"""A business process page: RSVP by SRV and day, outcomes, the legs of the journey, drill-downs."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, Response

from opmetrics.serve.data import DRILL_DIMENSIONS
from opmetrics.serve.web import (
    PROCESS_ID,
    Ctx,
    PeriodQ,
    UserDep,
    guard,
    known_process,
    month,
    page,
    process_or_none,
)

router = APIRouter()
ProcessQ = Annotated[str | None, Depends(process_or_none)]


@router.get("/process/{process_id}", response_class=HTMLResponse, include_in_schema=False)
def process_page(request: Request, ctx: Ctx, process_id: str) -> Response:
    try:
        p = ctx.m.process(process_id)
    except KeyError:
        raise HTTPException(404, f"no business process {process_id!r}") from None
    return page(request, "process", p=p)


@router.get("/api/rsvp", tags=["measures"])
def rsvp(
    user: UserDep,
    ctx: Ctx,
    period: PeriodQ = None,
    scope: Annotated[str, Query(pattern="^(process|srv)$")] = "process",
    key: str | None = None,
    rate: Annotated[str, Query(pattern="^(month|day)$")] = "month",
    segment: str | None = None,
    day: dt.date | None = None,
) -> Response:
    return guard(ctx.data.rsvp, month(ctx, period), scope, key, rate, segment, day)


@router.get("/api/outcomes", tags=["measures"])
def outcomes(
    user: UserDep, ctx: Ctx, period: PeriodQ = None, measure: str | None = None, process: str | None = None
) -> Response:
    return guard(ctx.data.outcomes, month(ctx, period), user, measure, process)


@router.get("/api/legs", tags=["measures"])
def legs(
    user: UserDep,
    ctx: Ctx,
    process: ProcessQ,
    period: PeriodQ = None,
    breakdown: Annotated[str | None, Query(pattern="^(All|region|device_type)$")] = None,
) -> Response:
    """Legs of the journey: the DCC proxy (delivery to CHF/GPF), the home network, RTT
    without it, and DSP time against its share of the TRT."""
    return guard(ctx.data.legs, month(ctx, period), process, breakdown)


@router.get("/api/drill", tags=["measures"])
def drill(
    user: UserDep,
    ctx: Ctx,
    by: Annotated[str, Query(pattern="^(" + "|".join(DRILL_DIMENSIONS) + ")$")],
    process: Annotated[str, Query(pattern=PROCESS_ID, description="Business process id")],
    period: PeriodQ = None,
    day: dt.date | None = None,
    srv: str | None = None,
    region: str | None = None,
    smets: Annotated[int | None, Query(ge=1, le=2)] = None,
    device_type: str | None = None,
    party: str | None = None,
) -> Response:
    known_process(ctx, process)
    filters = {
        "day": day,
        "srv": srv,
        "region": region,
        "smets": smets,
        "device_type": device_type,
        "party": party,
    }
    return guard(ctx.data.drill, month(ctx, period), user, process, by, filters)
