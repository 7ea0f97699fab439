"""The status a published figure carries, one vocabulary for measures, pack, API and checks.

A `StrEnum`: a status is stored, written to JSON and compared as its text ("below target"), so
stored runs and the datafiles read the same as before; code names it once here.
"""

from __future__ import annotations

from enum import StrEnum


class Status(StrEnum):
    TARGET_MET = "target met"
    BELOW_TARGET = "below target"
    BELOW_MINIMUM = "below minimum"
    NO_DATA = "no data"
    # An outcome figure with something to show and no target to meet.
    OK = "ok"
    # The measure applies but nothing relevant happened (no denominator).
    NO_EVENTS = "No Events"
    # The data the measure needs was not supplied (e.g. no outages input).
    MISSING_INPUT = "missing input"
    # Reported with a CPM's figures outside the scope its text gives: no target, no credit.
    INDICATOR = "indicator"
    # Events happened but there is nothing to measure them against (e.g. no forecast).
    NO_BASELINE = "no baseline"
    NOT_IMPLEMENTED = "not implemented"
    # A Service's day on the System view: every region at or above `degraded_below_pct`, or not.
    AVAILABLE = "Available"
    DEGRADED = "Degraded"
    WITHIN_LIMIT = "within limit"
    OVER_LIMIT = "over limit"


# A target missed: what the pack's summary, the service credits and the trends look for.
MISSED = frozenset({Status.BELOW_TARGET, Status.BELOW_MINIMUM})
