"""Citations that cannot drift (issue 31): every seed citation in the methodology, the docs, the
code and the tests carries a short verbatim quote, found at the cited lines of the seed."""

from __future__ import annotations

from pathlib import Path

import pytest

from opmetrics.methodology import citations

SEEDS = citations.seeds_dir()
needs_seeds = pytest.mark.skipif(SEEDS is None, reason="../shared/seeds not beside the repository")

# Built from parts, so that the repository's own check does not read these examples.
S1, S3 = "00" + "1", "00" + "3"


def test_every_citation_in_the_repository_carries_a_quote():
    cites = citations.tree_citations()
    assert len(cites) > 300  # the methodology alone has over a hundred
    missing = [str(c) for c in cites if c.quote is None]
    assert missing == []


@needs_seeds
def test_every_quote_is_at_its_cited_lines():
    assert citations.check_tree(folder=SEEDS) == []


@needs_seeds
def test_a_quote_at_the_wrong_line_is_refused_and_located(tmp_path: Path):
    """Line 893 was cited for the text of line 940 (issue 31): the check says where it is."""
    quote = "success of an SRV would be if Users received a response"
    (c,) = citations.find(f'{S1} l.893 "{quote}"', "x.md")
    msg = citations.problem(c, SEEDS)
    assert msg is not None and "is not in the cited lines" in msg
    assert f"{S1} l.940" in msg and f"{S1} l.105" in msg
    (ok,) = citations.find(f'{S1} l.940 "{quote}"', "x.md")
    assert citations.problem(ok, SEEDS) is None


@needs_seeds
def test_ranges_quotes_across_lines_and_typography():
    # The CPM6 text: the quote runs over the line break; a range one line short fails.
    text = "the first such relevant time of day being Monday-Friday 08.00-20.00 and Saturday"
    (c,) = citations.find(f'{S3} l.58-59 "{text}"', "x.md")
    assert citations.problem(c, SEEDS) is None
    (short,) = citations.find(f'{S3} l.58 "{text}"', "x.md")
    assert citations.problem(short, SEEDS) is not None
    # Typographic quotes and dashes in the seed match straight ones (E20's footnote has an en dash).
    (dash,) = citations.find(f'{S1} l.309 "Communications Failure - Unable to Communicate"', "x.md")
    assert citations.problem(dash, SEEDS) is None
    # A range past the end of the seed, and a citation without a quote.
    (past,) = citations.find(f'{S3} l.999 "anything at all"', "x.md")
    assert "the seed has 453 lines" in (citations.problem(past, SEEDS) or "")
    (bare,) = citations.find(f"see {S1} l.940 for this", "x.md")
    assert "no quote" in (citations.problem(bare, None) or "")


def test_the_frozen_methodology_is_the_only_file_left_out():
    """2026.4 is kept byte for byte (runs record its fingerprint); its citations are of its
    day. Every other file of the repository is read."""
    assert {"src/opmetrics/methodology/opmetrics-2026.4.yaml"} == citations.FROZEN
    read = {c.path for c in citations.tree_citations()}
    assert "src/opmetrics/methodology/opmetrics-2027.1.yaml" in read
    assert "docs/methodology.md" in read and "src/opmetrics/measures/records.py" in read
