"""Seed citations that cannot drift: a seed, its lines and a verbatim quote, checked against the seed.

Every definition names its source as a seed file and line range followed by a short verbatim
quote, for example `001 l.940 "success of an SRV would be if Users received a response"`. The
quote must appear (whitespace, typographic quotes and dashes aside) within the cited lines of the
seed; `check_tree` lists every citation in the repository that has no quote or whose quote is
not where it says. Seeds: `001` = `../shared/seeds/001_0a0f74c54dc85ae9.txt` (the impact
assessment with the OPSG review), `003` = `../shared/seeds/003_f3ee2c604e5a6b7e.txt` (the
MP122A slides).
"""

from __future__ import annotations

import os
import re
import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

SEED_FILES = {"001": "001_0a0f74c54dc85ae9.txt", "003": "003_f3ee2c604e5a6b7e.txt"}

# A seed (001 or 003), "l." and a line or a range of lines, then (after at most a colon or comma
# and spaces) a quote in
# straight double quotes. The quote is optional here so that a citation without one is found.
CITATION = re.compile(
    r"\b(?P<seed>00[13]) l\.(?P<first>\d+)(?:-(?P<last>\d+))?"
    r"(?:[:,]?[ \t]*\\?\"(?P<quote>[^\"\n\\]{4,240})\\?\")?"
)

# What the repository's citations live in (generated copies, e.g. docs/schemas, are checked
# through their sources).
CHECKED = ("src", "docs", "README.md", "bench", "tests")
SUFFIXES = {".py", ".md", ".yaml", ".j2", ".html"}
# A methodology version once published is kept byte for byte (runs record its fingerprint):
# its citations are those of its day, superseded by the current version's.
FROZEN = {"src/opmetrics/methodology/opmetrics-2026.4.yaml"}


@dataclass(frozen=True)
class Citation:
    path: str  # the citing file, relative to the repository root
    line: int  # where in it
    seed: str
    first: int
    last: int
    quote: str | None

    def __str__(self) -> str:
        lines = f"l.{self.first}" + (f"-{self.last}" if self.last != self.first else "")
        return f"{self.path}:{self.line}: {self.seed} {lines}"


def normalise(text: str) -> str:
    """Text as compared: Unicode compatibility forms, typographic quotes and dashes as ASCII,
    runs of whitespace as one space."""
    text = unicodedata.normalize("NFKC", text)
    for a, b in (("‘’‛′", "'"), ("“”„″", '"'), ("–—‐‑−", "-"), ("·•▪", " ")):
        for ch in a:
            text = text.replace(ch, b)
    return " ".join(text.split())


def seeds_dir() -> Path | None:
    """The seeds folder: $OPMETRICS_SEEDS, else `../shared/seeds` beside the repository."""
    env = os.environ.get("OPMETRICS_SEEDS")
    if env:
        return Path(env)
    root = repo_root()
    for cand in (root.parent / "shared" / "seeds", root / ".." / ".." / "shared" / "seeds"):
        if all((cand / f).exists() for f in SEED_FILES.values()):
            return cand.resolve()
    return None


def repo_root() -> Path:
    return Path(__file__).resolve().parents[3]


@cache
def seed_lines(folder: str, seed: str) -> tuple[str, ...]:
    text = (Path(folder) / SEED_FILES[seed]).read_text(encoding="utf-8")
    return tuple(text.splitlines())


def find(text: str, path: str = "") -> Iterator[Citation]:
    """Every seed citation in `text`."""
    for no, line in enumerate(text.splitlines(), 1):
        for mt in CITATION.finditer(line):
            first = int(mt["first"])
            last = int(mt["last"]) if mt["last"] else first
            yield Citation(path, no, mt["seed"], first, last, mt["quote"])


def problem(c: Citation, folder: Path | None) -> str | None:
    """Why a citation does not hold, or None: no quote; lines out of order or past the end;
    the quote not within the cited lines (and where it is, if anywhere)."""
    if c.quote is None:
        return f'{c}: no quote (write it as {c.seed} l.{c.first} "verbatim words from that line")'
    if c.last < c.first:
        return f"{c}: the range ends before it starts"
    if folder is None:
        return None
    lines = seed_lines(str(folder), c.seed)
    if c.last > len(lines):
        return f"{c}: the seed has {len(lines)} lines"
    cited = normalise(" ".join(lines[c.first - 1 : c.last]))
    quote = normalise(c.quote.replace("''", "'")).strip(" .")  # '' is YAML's quote in quotes
    if quote in cited:
        return None
    where = locate(c.quote, folder)
    hint = f"; it is at {', '.join(where)}" if where else "; it is not in the seeds"
    return f'{c}: "{c.quote}" is not in the cited lines{hint}'


def locate(quote: str, folder: Path, seeds: Iterable[str] = SEED_FILES) -> list[str]:
    """Where a quote is in the seeds, as a seed and a line (or the range of lines it spans)."""
    q = normalise(quote.replace("''", "'")).strip(" .")
    out = []
    for seed in seeds:
        lines = [normalise(x) for x in seed_lines(str(folder), seed)]
        for i in range(len(lines)):
            # The shortest run of lines from line i holding the quote, kept only when the quote
            # does not fit in the same run without line i (so each place is named once).
            for j in range(i, min(i + 12, len(lines))):
                if q in " ".join(lines[i : j + 1]):
                    if q not in " ".join(lines[i + 1 : j + 1]):
                        out.append(f"{seed} l.{i + 1}" + (f"-{j + 1}" if j > i else ""))
                    break
    return out


def tree_citations(root: Path | None = None) -> list[Citation]:
    """Every citation in the repository's checked files (the frozen methodology aside)."""
    root = root or repo_root()
    out: list[Citation] = []
    for top in CHECKED:
        base = root / top
        files = [base] if base.is_file() else sorted(p for p in base.rglob("*") if p.suffix in SUFFIXES)
        for p in files:
            rel = p.relative_to(root).as_posix()
            if rel in FROZEN or "__pycache__" in rel:
                continue
            out += find(p.read_text(encoding="utf-8"), rel)
    return out


def check_tree(root: Path | None = None, folder: Path | None = None) -> list[str]:
    """The problems of every citation in the repository (empty when all hold)."""
    return [p for c in tree_citations(root) if (p := problem(c, folder)) is not None]
