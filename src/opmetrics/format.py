"""One number, one text (issue 32, item 3): every figure the pack, the summary paper, the CLI and
the dashboard show is formatted here, with one rule.

The rule: percentages to two decimals, truncated, never rounded, so 99.996 % shows as 99.99 %
and never as 100.00 % (a Service that was down for a minute is never shown as fully available).
From a stored numerator and denominator the truncation is exact (integer arithmetic). From a
stored float it allows for the float's last bits: 100 * 23 / 125 times 100 is 1839.99...,
which plain truncation would show as 18.39 % while its counts say 18.40 %. The allowance is
1e-9 of a hundredth, so the two agree for every fraction whose denominator is below 10^9.
The datafiles and figures.json carry the exact values; only what a reader sees is formatted.
"""

from __future__ import annotations

import math

DASH = "–"
_GUARD = 1e-9  # in hundredths of a percentage point; see the module docstring


def pct(value: float | None, places: int = 2) -> str:
    """A stored percentage as text: '99.57%'; '–' when there is none."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return DASH
    places = min(places, getattr(value, "places", places))
    scale = 10**places
    whole = math.floor(value * scale + _GUARD)
    return f"{whole / scale:.{places}f}%"


class Shown(float):
    """A percentage given at `places` decimals, fewer than the pack's two where it is another
    party's rate on a small cell: `pct` prints it so ('98%', not a falsely exact '98.00%')."""

    places: int

    def __new__(cls, value: float, places: int) -> Shown:
        obj = super().__new__(cls, value)
        obj.places = places
        return obj


def shown_pct(value: float | None, places: int = 2) -> Shown | None:
    """The number `pct` prints, as a number: what another party's anonymised rate is given
    as, so the digits beyond what a reader sees cannot give its withheld counts back."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    scale = 10**places
    return Shown(math.floor(value * scale + _GUARD) / scale, places)


def anonymised_places(records: int) -> int | None:
    """The decimals another party's rate on `records` records may be given to: the finest of
    two, one or none whose step (0.01, 0.1 or 1 percentage point) is coarser than one record
    (1/records), and none at all for 100 records or fewer. The printed rate is then itself a
    fraction whose denominator (10,000, 1,000 or 100) is smaller than the volume, and so is
    the simplest fraction inside its truncation interval: neither `limit_denominator` nor a
    search for the smallest denominator can return the withheld volume."""
    for places in (2, 1, 0):
        if 10 ** (places + 2) < records:
            return places
    return None


def shown_seconds(value: float | None) -> float | None:
    """The number `seconds` prints (one decimal), as a number: see `shown_pct`."""
    return None if value is None else round(value, 1)


def pct_of(numerator: int | None, denominator: int | None, places: int = 2) -> str:
    """numerator / denominator as a percentage, truncated exactly: the same text as `pct` of
    the stored percentage of the same counts."""
    if numerator is None or not denominator:
        return DASH
    scale = 10**places
    whole = (int(numerator) * 100 * scale) // int(denominator)
    return f"{whole / scale:.{places}f}%"


def points(delta: float | None) -> str:
    """A difference of two percentages, in percentage points, to two decimals."""
    if delta is None:
        return DASH
    return f"{delta:+.2f} pp"


def count(v: float | None) -> str:
    return DASH if v is None else f"{int(v):,}"


def seconds(v: float | None) -> str:
    return DASH if v is None else f"{v:.1f}"


def duration(minutes: float | None) -> str:
    """An outage or incident's length: '1 h 35 min', '47 min'."""
    if minutes is None:
        return DASH
    h, mnt = divmod(int(round(minutes)), 60)
    return f"{h} h {mnt:02d} min" if h else f"{mnt} min"


def hours(minutes: float | None) -> str:
    return DASH if minutes is None else f"{minutes / 60:.2f} h"


def measure_value(v: float | None, unit: str) -> str:
    """An outcome measure's value in its unit: shares as `pct`, counts whole (one decimal when
    fractional), other ratios ('% of predicted', '% deviation', seconds...) truncated the same way."""
    if v is None:
        return DASH
    if unit == "%":
        return pct(v)
    if unit == "count":
        return f"{int(v):,}" if v == int(v) else f"{v:,.1f}"
    return f"{pct(v).removesuffix('%')} {unit}"


def is_percentage(name: str) -> bool:
    """A stored column holding a percentage: `pct` or `..._pct` (the naming rule of every
    result table)."""
    return name == "pct" or name.endswith("_pct")


def with_text(obj: object) -> object:
    """An API answer with each percentage's display text beside it (`success_pct_text`
    beside `success_pct`), so a reader of the API sees the figure as the pack prints it and
    the dashboard shows the server's text instead of formatting again."""
    if isinstance(obj, list):
        return [with_text(x) for x in obj]
    if isinstance(obj, dict):
        out = {k: with_text(v) for k, v in obj.items()}
        for k, v in obj.items():
            if isinstance(k, str) and is_percentage(k) and (v is None or isinstance(v, int | float)):
                out[f"{k}_text"] = pct(v)
        if isinstance(obj.get("unit"), str) and "value" in obj:
            out["value_text"] = measure_value(obj["value"], obj["unit"])
        return out
    return obj
