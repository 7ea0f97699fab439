"""The API's own description and reference page, behind the log-in, and the bundled chart
library: nothing is loaded from a CDN."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import plotly
from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, HTMLResponse, Response

from opmetrics.serve.web import UserDep, page

router = APIRouter()
PLOTLY_JS = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"


@router.get("/openapi.json", include_in_schema=False)
def openapi(request: Request, user: UserDep) -> dict[str, Any]:
    return request.app.openapi()


@router.get("/docs", response_class=HTMLResponse, include_in_schema=False)
def api_reference(request: Request) -> Response:
    return page(request, "api", spec=request.app.openapi())


@router.get("/static-vendor/plotly.min.js", include_in_schema=False)
def plotly_js() -> FileResponse:
    return FileResponse(PLOTLY_JS, media_type="text/javascript")
