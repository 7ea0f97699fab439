"""Reading the quarantine back: what was kept out of the figures, why, and from which file."""

from __future__ import annotations

from typing import Any

from opmetrics.engine.store import Store


def _like(path_contains: str | None) -> str:
    return f"%{path_contains}%" if path_contains else "%"


def by_reason(store: Store, path_contains: str | None = None) -> list[dict[str, Any]]:
    """Quarantined rows counted by table and reason (a duplicate's pointer to its original cut
    off, so duplicates group together), with how many files they came from."""
    return store.rows(
        "SELECT table_name, coalesce(field || ': ', '') || "
        "regexp_replace(reason, ': (same as|already loaded).*$', '') AS why, count(*) AS n, "
        "count(DISTINCT path) AS files FROM quarantine WHERE path LIKE ? GROUP BY ALL ORDER BY n DESC",
        [_like(path_contains)],
    )


def superseded(store: Store) -> list[dict[str, Any]]:
    """Records replaced by corrections, counted by table."""
    return store.rows("SELECT table_name, count(*) AS n FROM superseded GROUP BY ALL ORDER BY 1")


def rows(store: Store, path_contains: str | None, limit: int) -> list[dict[str, Any]]:
    """The first quarantined rows in file and row order, with every reason each was refused for."""
    return store.rows(
        "SELECT path, row_number, field, value, all_reasons FROM quarantine WHERE path LIKE ? "
        "ORDER BY path, row_number LIMIT ?",
        [_like(path_contains), limit],
    )


def of_request(store: Store, request_id: str) -> list[dict[str, Any]]:
    """Where a service request was quarantined (file, row, reasons), if it was."""
    return store.rows(
        "SELECT path, row_number, all_reasons FROM quarantine WHERE raw LIKE ?",
        [f'%"request_id":"{request_id}"%'],
    )
