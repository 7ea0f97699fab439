"""The PDF edition: the same HTML rendered by WeasyPrint on A4, with page numbers, a table of
contents with page references, and the fonts embedded (subset) by WeasyPrint."""

from __future__ import annotations

import logging
from pathlib import Path


def write_pdf(html: str, path: Path, base: Path) -> None:
    from weasyprint import HTML

    logging.getLogger("weasyprint").setLevel(logging.ERROR)
    logging.getLogger("fontTools").setLevel(logging.ERROR)
    HTML(string=html, base_url=str(base)).write_pdf(str(path))
