"""Commentary: one Markdown file per period, one entry per measure
(001 l.587 "To provide commentary wherever there is a failure to achieve a Service Level").

    ## CPM1
    Free text explaining the figure...

Headings name a CPM (`CPM6A`), an outcome measure (`PP1`) or a business process
(`prepayment`). Every missed target needs an entry; those without one are "commentary
outstanding" in the build output and in the pack.
"""

from __future__ import annotations

import re
from pathlib import Path

import markdown_it

HEADING = re.compile(r"^##\s+(\S+)\s*$")


class CommentaryError(ValueError):
    pass


def load_commentary(path: Path | None) -> dict[str, str]:
    """{measure id: HTML} from a commentary file; an absent file means no commentary yet."""
    if path is None or not path.exists():
        return {}
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise CommentaryError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    entries: dict[str, list[str]] = {}
    current: str | None = None
    for n, line in enumerate(text.splitlines(), start=1):
        m = HEADING.match(line)
        if m:
            current = m.group(1)
            if current in entries:
                raise CommentaryError(f"{path}, line {n}: a second entry for {current}")
            entries[current] = []
        elif current is not None:
            entries[current].append(line)
        elif line.strip() and not line.startswith("# "):
            raise CommentaryError(f"{path}, line {n}: text before the first '## <measure id>' heading")
    md = markdown_it.MarkdownIt("commonmark", {"html": False})
    return {k: md.render("\n".join(v).strip()) for k, v in entries.items() if "\n".join(v).strip()}


def commentary_keys(cpm: str, key: str) -> list[str]:
    """The headings that can explain a missed CPM row: the CPM, or for CPM6A its process."""
    return [cpm, key] if cpm == "CPM6A" else [cpm]
