"""The shape of the synthetic estate: parties, device mix, SRV mix and time-of-day profiles.

Numbers are plausible, not official: enough to make every measure non-trivial (heavy RTT tails,
regional differences, slow gas meters, a WAN outage, an alert storm) and to test the pipeline.
"""

from __future__ import annotations

from dataclasses import dataclass

REGIONS = ["North", "Central", "South", "SMETS1"]  # index = region code
DEVICE_TYPES = ["ESME", "GSME", "GPF", "CHF", "PPMID", "IHD"]
DEVICE_MIX = [0.34, 0.25, 0.25, 0.12, 0.025, 0.015]
SMETS1_SHARE = 0.22
SMETS2_REGION_MIX = [0.31, 0.36, 0.33]


@dataclass(frozen=True)
class Party:
    party_id: str
    kind: str  # "supplier" or "dno"
    share: float  # share of supplier-owned devices (suppliers) or 0 (DNOs)
    eui: str
    dno_region: int | None = None


PARTIES = [
    Party("SUP-A", "supplier", 0.24, "90-B3-D5-1F-30-01-00-0A"),
    Party("SUP-B", "supplier", 0.19, "90-B3-D5-1F-30-01-00-0B"),
    Party("SUP-C", "supplier", 0.16, "90-B3-D5-1F-30-01-00-0C"),
    Party("SUP-D", "supplier", 0.13, "90-B3-D5-1F-30-01-00-0D"),
    Party("SUP-E", "supplier", 0.10, "90-B3-D5-1F-30-01-00-0E"),
    Party("SUP-F", "supplier", 0.07, "90-B3-D5-1F-30-01-00-0F"),
    Party("SUP-G", "supplier", 0.05, "90-B3-D5-1F-30-01-00-10"),
    Party("SUP-H", "supplier", 0.03, "90-B3-D5-1F-30-01-00-11"),
    Party("SUP-I", "supplier", 0.02, "90-B3-D5-1F-30-01-00-12"),
    Party("SUP-J", "supplier", 0.01, "90-B3-D5-1F-30-01-00-13"),
    Party("DNO-N", "dno", 0.0, "90-B3-D5-1F-30-02-00-01", 0),
    Party("DNO-C", "dno", 0.0, "90-B3-D5-1F-30-02-00-02", 1),
    Party("DNO-S", "dno", 0.0, "90-B3-D5-1F-30-02-00-03", 2),
]
SUPPLIERS = [p for p in PARTIES if p.kind == "supplier"]
DNOS = [p for p in PARTIES if p.kind == "dno"]

# Hourly weights (UK local hour 0-23) per profile.
HOURLY: dict[str, list[float]] = {
    "day": [1, 1, 1, 1, 1, 2, 4, 6, 8, 9, 9, 9, 9, 9, 9, 9, 9, 9, 8, 7, 5, 4, 2, 1],
    "evening": [2, 1, 1, 1, 1, 2, 4, 6, 7, 6, 5, 5, 6, 5, 5, 6, 8, 10, 11, 11, 10, 8, 5, 3],
    "night": [9, 10, 10, 9, 7, 4, 2, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 3, 5, 8],
    "schedule": [6, 12, 12, 10, 8, 4, 2, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 3],
    "work": [0, 0, 0, 0, 0, 0, 0, 1, 8, 10, 10, 10, 9, 9, 10, 10, 9, 6, 2, 1, 0, 0, 0, 0],
}
# Relative daily volume by weekday (Mon=0) per profile: installs are a weekday activity.
WEEKDAY: dict[str, list[float]] = {
    "day": [1, 1, 1, 1, 1, 0.7, 0.5],
    "evening": [1, 1, 1, 1, 1, 1.1, 1.1],
    "night": [1, 1, 1, 1, 1, 0.6, 0.4],
    "schedule": [1, 1, 1, 1, 1, 1, 1],
    "work": [1, 1, 1, 1, 1, 0.35, 0.03],
}


@dataclass(frozen=True)
class SrvSpec:
    srv: str
    share: float  # share of the SRV volume
    profile: str
    devices: dict[str, float]  # device type -> probability
    modes: dict[str, float]  # mode -> probability
    smets1: float  # probability of a SMETS1 target (0 when not applicable)
    sender: str = "supplier"  # or "dno"
    ok_code: str = "I0"
    status_ok: int = 2  # report status of a completed request


METER = {"ESME": 0.6, "GSME": 0.4}
ELEC = {"ESME": 1.0}
CH = {"CHF": 1.0}
OD = {"on-demand": 1.0}

SRV_MIX = [
    SrvSpec("4.1.1", 7.0, "day", METER, OD, SMETS1_SHARE),
    SrvSpec("4.6.1", 26.0, "schedule", METER, {"dcc-scheduled": 0.8, "on-demand": 0.2}, SMETS1_SHARE),
    SrvSpec("4.8.1", 18.0, "schedule", ELEC, {"dcc-scheduled": 0.9, "on-demand": 0.1}, SMETS1_SHARE),
    SrvSpec("4.17", 5.0, "schedule", METER, {"dcc-scheduled": 0.7, "on-demand": 0.3}, 0),
    SrvSpec("4.6.2", 1.0, "schedule", ELEC, {"dcc-scheduled": 0.8, "on-demand": 0.2}, 0),
    SrvSpec("4.8.2", 1.0, "schedule", ELEC, {"dcc-scheduled": 0.9, "on-demand": 0.1}, SMETS1_SHARE),
    SrvSpec("4.8.3", 1.0, "schedule", ELEC, {"dcc-scheduled": 0.9, "on-demand": 0.1}, SMETS1_SHARE),
    SrvSpec("4.10", 1.0, "day", ELEC, OD, SMETS1_SHARE, sender="dno"),
    SrvSpec("2.2", 10.0, "evening", METER, OD, SMETS1_SHARE),
    SrvSpec("1.1.1", 4.0, "day", METER, {"on-demand": 0.7, "future-dated": 0.3}, SMETS1_SHARE),
    SrvSpec(
        "6.23",
        1.6,
        "night",
        {"ESME": 0.45, "GSME": 0.3, "CHF": 0.1, "GPF": 0.15},
        {"on-demand": 0.9, "future-dated": 0.1},
        SMETS1_SHARE,
    ),
    SrvSpec("6.8", 1.6, "day", METER, OD, SMETS1_SHARE),
    SrvSpec("8.11", 0.8, "work", CH, OD, 0),
    SrvSpec("8.1.1", 0.8, "work", {"ESME": 0.4, "GSME": 0.3, "GPF": 0.2, "PPMID": 0.1}, OD, 0),
    SrvSpec("8.7.2", 0.5, "work", {"GSME": 1.0}, OD, 0),
    SrvSpec("6.20.1", 0.7, "work", METER, OD, 0),
    SrvSpec("6.21", 0.6, "work", METER, OD, 0),
    SrvSpec("8.14.1", 0.5, "work", CH, OD, 0, status_ok=3),
    SrvSpec("8.14.2", 0.05, "work", CH, OD, 0, status_ok=3),
    SrvSpec("1.6", 0.5, "day", METER, {"on-demand": 0.8, "future-dated": 0.2}, SMETS1_SHARE),
    SrvSpec("2.1", 0.5, "day", METER, {"on-demand": 0.8, "future-dated": 0.2}, SMETS1_SHARE),
    SrvSpec("3.2", 0.3, "day", METER, {"on-demand": 0.9, "future-dated": 0.1}, SMETS1_SHARE),
    SrvSpec("6.15.2", 0.3, "day", METER, OD, 0),
    SrvSpec("6.17", 0.1, "day", METER, OD, 0),
    SrvSpec(
        "11.1",
        0.3,
        "day",
        {"ESME": 0.5, "GSME": 0.3, "CHF": 0.2},
        OD,
        SMETS1_SHARE,
        ok_code="I99",
        status_ok=3,
    ),
    SrvSpec(
        "11.3", 0.3, "day", {"ESME": 0.6, "GSME": 0.4}, {"on-demand": 0.7, "future-dated": 0.3}, SMETS1_SHARE
    ),
    SrvSpec("8.14.3", 0.05, "work", CH, OD, 0, status_ok=3),
    SrvSpec("8.14.4", 0.05, "work", CH, OD, 0, status_ok=3),
    SrvSpec("6.15.1", 0.2, "day", ELEC, OD, SMETS1_SHARE, sender="dno"),
    SrvSpec("6.5", 0.2, "day", ELEC, OD, SMETS1_SHARE, sender="dno"),
    SrvSpec("6.22", 0.1, "day", ELEC, OD, 0, sender="dno"),
    SrvSpec("5.1", 0.5, "day", METER, OD, SMETS1_SHARE),
]

# RTT model (on-demand): lognormal median seconds per device type, region multiplier.
RTT_MEDIAN_S = {"ESME": 3.2, "GSME": 7.5, "GPF": 2.4, "CHF": 1.8, "PPMID": 4.0, "IHD": 4.0}
RTT_SIGMA = 0.55
REGION_FACTOR = [1.0, 0.9, 1.15, 1.6]  # North, Central, South, SMETS1
TAIL_P = 0.012  # share of requests in the heavy (Pareto) tail
TAIL_CAP_S = 420  # DSP gives up and answers E21 well before this; keeps the tail finite
GSME_WAKE_P = 0.01  # gas meter commands waiting for the half-hourly wake-up

# Outcome probabilities for a request.
P_COMMS_FAIL = [0.008, 0.006, 0.010, 0.018]  # E20/E21 by region code
P_OTHER_ERROR = 0.004  # E-codes outside comms failure (e.g. E4 sent too early); still a response
P_NO_RESPONSE = 0.0015
P_PENDING = 0.0004  # still pending at extract time (report status 1: excluded)
P_QUARANTINE = 0.0005  # held in ADT quarantine, released later by the User

DEVICE_ALERTS = {"8F35": 0.30, "8F36": 0.15, "810E": 0.20, "8F72": 0.05, "8F1C": 0.01, "8F01": 0.29}
DCC_ALERTS = {"AD1": 0.7, "N16": 0.3}
ALERTS_PER_REQUEST = 1.6

# Business-process scenarios (simulate/scenarios.py).
INSTALL_ONLY_SRVS = {"8.11", "8.1.1", "8.7.2", "6.20.1", "6.21", "8.14.1", "8.14.2"}
INSTALL_SITES_PER_REQUEST = 0.0015  # new sites per day per base request per day
P_INSTALL_COMMISSIONED = 0.93  # CH reaches Commissioned (8.14.1)
P_INSTALL_LEAVE = 0.05  # Install and Leave (8.14.2); the rest are neither
P_COS_FOLLOW_UP = 0.7  # a 6.23 followed the same day by the gaining supplier's 1.1.1 and 6.8
P_TOPUP_RESEND = 0.6  # a failed top-up resent by the supplier
P_FW_VERIFIED = 0.93  # 11.1 answered by 8F72 within the SLA
P_FW_FAILED = 0.03  # ... by 8F1C; the rest never answer
P_SILENT_60D = 0.015  # meters not heard from for over 60 days
P_CH_FIRMWARE = 0.03  # share of SMETS2 hubs in this month's CH firmware campaign
SMKI_PER_REQUEST = 0.002  # SMKI requests per service request

FIRMWARE_VERSIONS = ["1.2.0", "1.3.1", "2.0.4"]

# Device sets (issue 12): manufacturer and model per device type, and Communications Hub variants.
MODELS = {
    "ESME": [("Aclara", "SGM1412"), ("Landis+Gyr", "E470"), ("Secure", "Liberty 100")],
    "GSME": [("Flonidan", "G4SRTV"), ("Landis+Gyr", "G470")],
    "GPF": [("Toshiba", "GPF-2"), ("EDMI", "GPF-S")],
    "CHF": [("Toshiba", "CH-2"), ("EDMI", "CH-S"), ("WNC", "CH-M")],
    "PPMID": [("Chameleon", "P1")],
    "IHD": [("Chameleon", "IHD6"), ("Hildebrand", "Glow")],
}
CH_VARIANTS = ["CH-A", "CH-B", "CH-C"]
# Planted for the diagnostics to find (see scenarios.device_sets).
POOR_SET = ("CH-C", "Secure", "Europa G4")  # a gas meter model on one CH variant
POOR_SET_EXTRA_FAIL = 0.20
OUTDATED_FIRMWARE = "1.1.0"
OUTDATED_EXTRA_FAIL = 0.10
ORCHESTRATION_PARTY = "SUP-E"
ORCHESTRATION_REJECT = 0.08  # share of its on-demand requests rejected (E51)
