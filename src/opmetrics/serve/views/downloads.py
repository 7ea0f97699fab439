"""The Downloads page: the report pack's files, each edition only to whom it belongs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import FileResponse, HTMLResponse, Response

from opmetrics.serve.auth import User
from opmetrics.serve.web import Ctx, UserDep, page

router = APIRouter()
SUFFIXES = (".pdf", ".csv", ".xlsx", ".json", ".html")


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


def pack_files(pack_dir: Path | None, user: User) -> list[tuple[str, Path]]:
    if pack_dir is None or not pack_dir.exists():
        return []
    out = []
    for f in sorted(pack_dir.rglob("*")):
        name = f.relative_to(pack_dir).as_posix()
        if (
            f.is_file()
            and f.suffix in SUFFIXES
            and "archive" not in f.parts
            and not any(part.startswith(".") for part in Path(name).parts)
            and may_download(user, name)
        ):
            out.append((name, f))
    return out


@router.get("/downloads", response_class=HTMLResponse, include_in_schema=False)
def downloads_page(request: Request) -> Response:
    return page(request, "downloads")


@router.get("/api/downloads", tags=["downloads"])
def downloads(user: UserDep, ctx: Ctx) -> list[dict[str, Any]]:
    """The files of the editions this user may have: the public pack; a party's own
    edition; for the DCC and the Panel every edition, the confidential one included."""
    return [
        {"name": name, "edition": edition_of(name), "bytes": f.stat().st_size}
        for name, f in pack_files(ctx.pack_dir, user)
    ]


@router.get("/downloads/{name:path}", tags=["downloads"], response_model=None)
def download(name: str, user: UserDep, ctx: Ctx) -> FileResponse:
    if ctx.pack_dir is None:
        raise HTTPException(404, "no report pack configured")
    root = ctx.pack_dir.resolve()
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
