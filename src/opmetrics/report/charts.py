"""Daily RSVP chart: average and max RTT, volume, failures, and the monthly average RTT
(001 l.300 "shown as a dotted red line").

Rendered by Matplotlib to inline SVG so the HTML page needs no network or JavaScript.
"""

from __future__ import annotations

import datetime as dt
import io
import math
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.dates import DateFormatter, date2num  # noqa: E402

plt.rcParams.update(
    {
        "svg.fonttype": "none",
        "font.size": 9,
        "axes.spines.top": False,
        "font.family": "DejaVu Sans",
        "svg.hashsalt": "opmetrics",  # stable element ids: the same figures give the same SVG
    }
)


def _gaps(values: list[float | None]) -> list[float]:
    """A series with its missing points as NaN, which matplotlib draws as a gap."""
    return [math.nan if v is None else v for v in values]


def _svg(fig: plt.Figure) -> str:
    """The figure as an inline <svg> element, without a date (the same figures, the same SVG)."""
    fig.tight_layout()
    buf = io.StringIO()
    fig.savefig(buf, format="svg", metadata={"Date": None})
    plt.close(fig)
    svg = buf.getvalue()
    return svg[svg.index("<svg") :]


def daily_rsvp_svg(
    days: list[dict[str, Any]],
    monthly_mean_s: float | None,
    title: str,
    incidents: list[dict[str, Any]] | None = None,
) -> str:
    """Two stacked panels: speed (top) and volume/failures (bottom), sharing the day axis."""
    x = [d["day"].day for d in days]
    fig, (top, bottom) = plt.subplots(
        2, 1, figsize=(8.2, 5.0), sharex=True, gridspec_kw={"height_ratios": [3, 2]}
    )
    top.plot(x, [d["rtt_mean_s"] for d in days], marker="o", ms=3, color="#1f4e79", label="average RTT (s)")
    if monthly_mean_s is not None:
        top.axhline(
            monthly_mean_s, color="#c00000", ls=":", lw=1.6, label=f"monthly average {monthly_mean_s:.1f} s"
        )
    top.set_ylabel("average RTT (s)")
    top.set_ylim(bottom=0)
    right = top.twinx()
    right.plot(x, [d["rtt_max_s"] for d in days], color="#7f7f7f", lw=1, ls="--", label="max RTT (s, right)")
    right.set_ylabel("max RTT (s)")
    right.set_ylim(bottom=0)
    right.spines["top"].set_visible(False)
    lines = top.get_legend_handles_labels()[0] + right.get_legend_handles_labels()[0]
    labels = top.get_legend_handles_labels()[1] + right.get_legend_handles_labels()[1]
    top.legend(lines, labels, loc="lower left", bbox_to_anchor=(0, 1.0), fontsize=7, frameon=False, ncol=3)
    fig.suptitle(title, x=0.01, ha="left", fontsize=10, fontweight="bold")

    bottom.bar(x, [d["volume"] for d in days], color="#9dc3e6", label="volume")
    bottom.set_ylabel("volume")
    fails = bottom.twinx()
    fails.plot(x, [d["failures"] for d in days], color="#c55a11", marker=".", label="failures (right)")
    fails.set_ylabel("failures")
    fails.set_ylim(bottom=0)
    fails.spines["top"].set_visible(False)
    bl = bottom.get_legend_handles_labels()
    fl = fails.get_legend_handles_labels()
    bottom.legend(
        bl[0] + fl[0],
        bl[1] + fl[1],
        loc="lower left",
        bbox_to_anchor=(0, 1.0),
        fontsize=7,
        frameon=False,
        ncol=2,
    )
    bottom.set_xlabel("day of month")
    bottom.set_xticks(x[::2] if len(x) > 16 else x)
    for inc in incidents or []:
        top.axvline(inc["day"], color="#c00000", alpha=0.35, lw=6)
        top.annotate(
            inc["label"],
            (inc["day"], 0),
            fontsize=6.5,
            color="#c00000",
            rotation=90,
            ha="left",
            va="bottom",
            xytext=(5, 3),
            textcoords="offset points",
        )
    return _svg(fig)


def availability_svg(
    series: dict[str, list[tuple[int, float | None]]], target: float, minimum: float, title: str
) -> str:
    """Daily service level per Service (001 Table 13 "Monthly View"), with target and minimum.

    Services at 100 % every day share one flat line, so only those with downtime get a colour.
    """
    fig, ax = plt.subplots(figsize=(9.0, 3.4))
    palette = ["#1f4e79", "#c55a11", "#2e7d32", "#7030a0", "#bf9000", "#00838f", "#ad1457", "#5d4037"]
    low = minimum
    flat = []
    k = 0
    for name, pts in series.items():
        vals = [v for _, v in pts if v is not None]
        if vals and min(vals) >= 100.0:
            flat.append(name)
            continue
        low = min(low, *vals) if vals else low
        ax.plot(
            [d for d, _ in pts],
            _gaps([v for _, v in pts]),
            marker="o",
            ms=3,
            lw=1.4,
            color=palette[k % len(palette)],
            label=name,
        )
        k += 1
    if flat and series:
        days = [d for d, _ in next(iter(series.values()))]
        ax.plot(
            days, [100.0] * len(days), color="#9aa3ad", lw=1, label=f"{len(flat)} Services at 100 % every day"
        )
    ax.axhline(target, color="#2e7d32", ls="--", lw=1, label=f"target {target}%")
    ax.axhline(minimum, color="#c00000", ls=":", lw=1.4, label=f"minimum {minimum}%")
    ax.set_ylim(max(0.0, low - (100 - low) * 0.15 - 0.05), 100.0 + (100 - low) * 0.08 + 0.02)
    ax.set_ylabel("service level (%)")
    ax.set_xlabel("day of month")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=6.5, frameon=False)
    fig.suptitle(title, x=0.01, ha="left", fontsize=10, fontweight="bold")
    return _svg(fig)


def trend_svg(points: list[tuple[str, float | None, float | None]], target: float | None, title: str) -> str:
    """Up to 13 months of success and within-TRT rates, with the target (none for an indicator)."""
    fig, ax = plt.subplots(figsize=(8.2, 2.6))
    x = list(range(len(points)))
    ax.plot(x, _gaps([p[1] for p in points]), marker="o", ms=3, color="#1f4e79", label="success %")
    ax.plot(x, _gaps([p[2] for p in points]), marker="s", ms=3, color="#c55a11", label="within TRT %")
    if target is not None:
        ax.axhline(target, color="#2e7d32", ls="--", lw=1, label=f"target {target}%")
    ax.set_xticks(x, [p[0] for p in points], fontsize=7)
    vals = [v for p in points for v in p[1:] if v is not None]
    low = min(vals + ([] if target is None else [target]) or [100.0])
    ax.set_ylim(max(0.0, low - (100 - low) * 0.2 - 0.1), 100.2)
    ax.set_ylabel("%")
    ax.legend(loc="lower left", fontsize=7, frameon=False, ncol=3)
    fig.suptitle(title, x=0.01, ha="left", fontsize=10, fontweight="bold")
    return _svg(fig)


def srv_success_svg(series: dict[str, list[tuple[int, float | None]]], title: str) -> str:
    """Daily success of a few SRVs, one line each (the OPSG summary paper's graphs)."""
    fig, ax = plt.subplots(figsize=(8.2, 2.6))
    for srv, points in series.items():
        ax.plot(
            [d for d, _ in points],
            _gaps([v for _, v in points]),
            marker="o",
            ms=2.5,
            lw=1.2,
            label=f"SRV {srv}",
        )
    ax.set_ylabel("success %")
    ax.set_xlabel("day of month")
    ax.set_title(title, loc="left", fontsize=9)
    if series:
        ax.legend(loc="lower left", fontsize=7, ncol=min(len(series), 6), frameon=False)
    return _svg(fig)


def incident_intraday_svg(
    hours: list[tuple[dt.datetime, int, float | None, float | None]],
    window: tuple[dt.datetime, dt.datetime],
    outage: tuple[dt.datetime, dt.datetime] | None,
    title: str,
) -> str:
    """One Category 1 or 2 incident hour by hour (UK time): requests received (bars) and the
    shares answered and answered within TRT (lines), the incident shaded from raised to
    resolved, its outage hatched."""
    fig, ax = plt.subplots(figsize=(8.2, 2.5))
    starts = [h for h, *_ in hours]
    x = date2num(starts)
    vol = ax.twinx()
    vol.bar(x, [v for _, v, *_ in hours], width=1 / 24 * 0.85, align="edge", color="#c9d3de", zorder=0)
    vol.set_ylabel("requests per hour")
    vol.spines["top"].set_visible(False)
    ax.set_zorder(vol.get_zorder() + 1)
    ax.patch.set_visible(False)
    mid = date2num([h + dt.timedelta(minutes=30) for h in starts])
    ax.plot(mid, _gaps([s for _, _, s, _ in hours]), marker="o", ms=3, color="#1f4e79", label="success %")
    ax.plot(mid, _gaps([w for *_, w in hours]), marker="^", ms=3, color="#c55a11", label="within TRT %")
    ax.axvspan(*date2num(list(window)), color="#c00000", alpha=0.12, label="incident raised to resolved")
    if outage:
        ax.axvspan(
            *date2num(list(outage)), fill=False, hatch="///", edgecolor="#c00000", lw=0, label="outage"
        )
    vals = [v for _, _, *vs in hours for v in vs if v is not None]
    low = min(vals or [100.0])
    ax.set_ylim(max(0.0, low - (100 - low) * 0.2 - 1), 100.5)
    ax.set_ylabel("%")
    ax.xaxis.set_major_formatter(DateFormatter("%d %b %H:%M"))
    ax.tick_params(axis="x", labelsize=7)
    ax.legend(loc="lower left", fontsize=7, frameon=False, ncol=4)
    fig.suptitle(title, x=0.01, ha="left", fontsize=9, fontweight="bold")
    return _svg(fig)


def region_daily_svg(
    days: list[tuple[int, float | None, float | None, float | None]],
    outage_days: set[int],
    target: float,
    title: str,
) -> str:
    """A region with an outage, day by day: its DCC User Interface availability and the share of
    its requests answered and within TRT, outage days shaded."""
    fig, ax = plt.subplots(figsize=(8.2, 2.5))
    x = [d for d, *_ in days]
    for d in sorted(outage_days):
        ax.axvspan(d - 0.5, d + 0.5, color="#c00000", alpha=0.12, lw=0)
    ax.plot(
        x,
        _gaps([a for _, a, _, _ in days]),
        marker="o",
        ms=3,
        color="#2e7d32",
        label="DCC User Interface availability %",
    )
    ax.plot(x, _gaps([s for _, _, s, _ in days]), marker="s", ms=3, color="#1f4e79", label="success %")
    ax.plot(x, _gaps([w for *_, w in days]), marker="^", ms=3, color="#c55a11", label="within TRT %")
    ax.axhline(target, color="#2e7d32", ls="--", lw=1, label=f"availability target {target}%")
    vals = [v for _, *vs in days for v in vs if v is not None]
    low = min(vals + [target])
    ax.set_ylim(max(0.0, low - (100 - low) * 0.2 - 0.5), 100.5)
    ax.set_ylabel("%")
    ax.set_xlabel("day of month (outage days shaded)")
    ax.legend(loc="lower left", fontsize=7, frameon=False, ncol=2)
    fig.suptitle(title, x=0.01, ha="left", fontsize=9, fontweight="bold")
    return _svg(fig)
