"""Generate a month of synthetic DCC traffic as Parquet, one file per table per day.

Reproducible: every random stream is derived from (seed, day, chunk), so any day can be
regenerated alone and a national-scale month streams in bounded memory (one chunk at a time).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from opmetrics import methodology
from opmetrics.simulate import profiles as P
from opmetrics.simulate import scenarios
from opmetrics.simulate.estate import Estate, eui64

UK = ZoneInfo("Europe/London")
CHUNK_ROWS = 2_000_000


@dataclass(frozen=True)
class Scale:
    devices: int
    requests_per_day: int


SCALES = {
    "tiny": Scale(4_000, 2_000),
    "small": Scale(60_000, 20_000),
    "medium": Scale(2_000_000, 1_000_000),
    "national": Scale(50_000_000, 33_000_000),
}

SR_SCHEMA = pa.schema(
    [
        ("request_id", pa.string()),
        ("party_id", pa.string()),
        ("user_role", pa.string()),
        ("srv", pa.string()),
        ("mode", pa.string()),
        ("critical", pa.bool_()),
        ("device_id", pa.string()),
        ("device_type", pa.string()),
        ("smets", pa.int8()),
        ("region", pa.string()),
        ("received_at", pa.timestamp("ms", "UTC")),
        ("responded_at", pa.timestamp("ms", "UTC")),
        ("response_code", pa.string()),
        ("report_status", pa.int8()),
        ("dsp_attempts", pa.int8()),
        ("quarantine_released_at", pa.timestamp("ms", "UTC")),
        ("csp_sent_at", pa.timestamp("ms", "UTC")),
        ("chf_reached_at", pa.timestamp("ms", "UTC")),
        ("device_answered_at", pa.timestamp("ms", "UTC")),
        ("csp_returned_at", pa.timestamp("ms", "UTC")),
    ]
)
# Legs of the journey (issue 12): the share of the round trip, less any gas-meter wake-up, spent
# in each leg: DSP outbound, CSP to the CHF/GPF, home network, CSP back, DSP to the User.
LEG_SHARES = (0.06, 0.30, 0.20, 0.34, 0.10)


def _legs(start, responded, wake_s, code, comms, unanswered, on_demand) -> dict:  # noqa: ANN001
    """Leg timestamps (epoch ms, -1 for none) of on-demand requests, adding up to the round trip.
    A communications failure reached the CSP but not (E21: not back from) the device; an
    unanswered request only left the DSP."""
    total = np.maximum(responded - start, 0)
    wake = np.minimum((wake_s * 1000).astype(np.int64), total)  # an error code cuts the wait short
    core = total - wake
    a, b, c, d, _ = LEG_SHARES
    sent = start + (core * a).astype(np.int64)
    chf = sent + (core * b).astype(np.int64)
    dev = chf + (core * c).astype(np.int64) + wake
    back = dev + (core * d).astype(np.int64)
    e20 = comms & (code == "E20")
    none = ~on_demand
    return {
        "csp_sent": np.where(
            none | (responded < 0) & ~unanswered, -1, np.where(unanswered, start + 200, sent)
        ),
        "chf_reached": np.where(none | unanswered | e20, -1, chf),
        "device_answered": np.where(none | unanswered | comms, -1, dev),
        "csp_returned": np.where(none | unanswered, -1, back),
    }


ALERT_SCHEMA = pa.schema(
    [
        ("alert_id", pa.string()),
        ("alert_code", pa.string()),
        ("kind", pa.string()),
        ("device_id", pa.string()),
        ("device_type", pa.string()),
        ("smets", pa.int8()),
        ("region", pa.string()),
        ("party_id", pa.string()),
        ("request_id", pa.string()),
        ("raised_at", pa.timestamp("ms", "UTC")),
        ("delivered_at", pa.timestamp("ms", "UTC")),
        ("suppressed", pa.bool_()),
    ]
)


@dataclass
class Faults:
    """Injected events that the report should make visible."""

    wan_outage_day: int = 12  # North WAN outage, 14:05-15:40 UK time
    alert_storm_day: int = 20  # Central power-outage alert storm, 18:00-19:00
    dsp_outage_day: int = 26  # DSP Core failover (a shared sub-system), 07:50-08:37
    misconfig_day: int = 8  # SUP-C's orchestration sends malformed requests, 10:00-12:00 (E62)
    firmware_fault_day: int = 17  # devices on firmware 1.3.1 stop answering, 09:00-12:00
    device_effects: bool = True  # a poor device set, an outdated firmware, SUP-E's orchestration
    enabled: bool = True


# Where an incident is raised (None: every region); Any, as numpy types a choice of mixed values.
INCIDENT_REGIONS: list[Any] = ["North", "Central", "South", "SMETS1", None]


def _day_starts(year: int, month: int) -> list[dt.datetime]:
    """UTC instants of each UK local midnight of the month, plus the next month's first."""
    d = dt.date(year, month, 1)
    out: list[dt.datetime] = []
    while d.month == month or not out or out[-1].month == month:
        out.append(dt.datetime(d.year, d.month, d.day, tzinfo=UK).astimezone(dt.UTC))
        if d.month != month:
            break
        d += dt.timedelta(days=1)
    return out


def id_day(start: dt.datetime) -> int:
    """The UK day's number in message ids: days since 2000-01-01, so consecutive months
    simulated apart never reuse a request or alert id (the day of the month would). `start` is
    the day's first instant in UTC (naive or aware); its UK date is the day."""
    aware = start if start.tzinfo else start.replace(tzinfo=dt.UTC)
    return (aware.astimezone(UK).date() - dt.date(2000, 1, 1)).days


def _ms(t: dt.datetime) -> int:
    return int(t.timestamp() * 1000)


def uk_times(rng: np.random.Generator, start: dt.datetime, hourly: Sequence[float], n: int) -> np.ndarray:
    """`n` instants (ms since the epoch) in the UK day starting at `start`, drawn by the UK
    wall-clock hour profile `hourly`: a day of 23, 24 or 25 hours has that many hours, each
    weighted by its wall-clock hour (on 25 October 01:00-02:00 comes twice), so the clock
    changes leave no hour without traffic and shift no traffic by an hour."""
    first = start.astimezone(dt.UTC)
    nxt = (start.astimezone(UK) + dt.timedelta(days=1)).replace(hour=0, minute=0, tzinfo=None)
    hours = int((nxt.replace(tzinfo=UK).astimezone(dt.UTC) - first).total_seconds() // 3600)
    wall = [(first + dt.timedelta(hours=h)).astimezone(UK).hour for h in range(hours)]
    w = np.array([hourly[x] for x in wall], dtype=float)
    hour = rng.choice(hours, size=n, p=w / w.sum()) + rng.random(n)
    return _ms(start) + (hour * 3_600_000).astype(np.int64)


def _local_ms(day_start: dt.datetime, hour: float) -> int:
    return _ms(day_start) + int(hour * 3_600_000)


class _DayGen:
    """One day of traffic: base SRV volumes, the scenarios' footprints, alerts and legs."""

    def __init__(self, estate: Estate, scale: Scale, seed: int, faults: Faults):
        self.estate, self.scale, self.seed, self.faults = estate, scale, seed, faults
        m = methodology.load()
        self.critical = {s.srv: s.critical for s in m.srvs}
        self.total_share = sum(s.share for s in P.SRV_MIX)
        self.region_names = pa.array(P.REGIONS)
        self.type_names = pa.array(P.DEVICE_TYPES)
        self.party_ids = pa.array([p.party_id for p in P.PARTIES])
        self.party_euis = pa.array([p.eui for p in P.PARTIES])
        self.dno_for_region = np.array([P.PARTIES.index(d) for d in P.DNOS])

    def volumes(self, day_no: int, weekday: int) -> list[int]:
        rng = np.random.default_rng([self.seed, day_no, 0])
        base = self.scale.requests_per_day / self.total_share
        return [
            0
            if s.srv in P.INSTALL_ONLY_SRVS
            else int(rng.poisson(base * s.share * P.WEEKDAY[s.profile][weekday]))
            for s in P.SRV_MIX
        ]

    def requests(
        self, day_no: int, start: dt.datetime, counts: list[int], chunk: int
    ) -> tuple[pa.Table, pa.Table]:
        rng = np.random.default_rng([self.seed, day_no, 1, chunk])
        parts = [self.srv_rows(rng, spec, n, start) for spec, n in zip(P.SRV_MIX, counts, strict=True) if n]
        if chunk == 0:
            parts += scenarios.install_requests(self, rng, day_no, start)
        parts += scenarios.follow_ups(self, rng, parts, start)
        cols = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
        return self._to_tables(rng, cols, id_day(start), chunk)

    def srv_rows(
        self,
        rng: np.random.Generator,
        spec: P.SrvSpec,
        n: int,
        start: dt.datetime,
        dev: np.ndarray | None = None,
        at: np.ndarray | None = None,
    ) -> dict:
        """Rows of one SRV: random devices and times, or the given devices at the given times."""
        e, f = self.estate, self.faults
        received = uk_times(rng, start, P.HOURLY[spec.profile], n) if at is None else at.astype(np.int64)
        if dev is None:
            types = list(spec.devices)
            dtype_idx = np.array([P.DEVICE_TYPES.index(t) for t in types])[
                rng.choice(len(types), size=n, p=np.array(list(spec.devices.values())))
            ]
            smets1 = rng.random(n) < spec.smets1
            dev = e.pick(rng, dtype_idx, smets1)
        region = e.region[dev]
        dtype_idx = e.type[dev]
        if spec.sender == "dno":
            party = np.where(
                region < 3,
                self.dno_for_region[np.minimum(region, 2)],
                self.dno_for_region[rng.integers(0, 3, size=n)],
            )
            role = np.full(n, "ED", dtype=object)
        else:
            party = e.party[dev].astype(np.int64)
            role = np.where(np.isin(dtype_idx, [1, 2]), "GS", "IS").astype(object)
        modes = list(spec.modes)
        mode_idx = rng.choice(len(modes), size=n, p=np.array(list(spec.modes.values())))
        on_demand = np.array([m == "on-demand" for m in modes])[mode_idx]

        # Speed: lognormal body, Pareto tail, gas wake-ups, DSP retries.
        med = (
            np.array([P.RTT_MEDIAN_S[t] for t in P.DEVICE_TYPES])[dtype_idx]
            * np.array(P.REGION_FACTOR)[region]
        )
        rtt = med * np.exp(P.RTT_SIGMA * rng.standard_normal(n))
        tail = rng.random(n) < P.TAIL_P
        rtt[tail] += np.minimum(8 * (rng.pareto(1.4, int(tail.sum())) + 1), P.TAIL_CAP_S)
        wake = (dtype_idx == 1) & (rng.random(n) < P.GSME_WAKE_P)
        wake_s = np.zeros(n)
        wake_s[wake] = rng.uniform(0, 1800, int(wake.sum()))
        rtt += wake_s
        attempts = 1 + (rng.random(n) < 0.04) + (rng.random(n) < 0.01)
        rtt += (attempts - 1) * rng.uniform(8, 15, n)
        later = ~on_demand
        rtt[later] = rng.uniform(1_800, 72_000, int(later.sum()))
        late = later & (rng.random(n) < 0.004)
        rtt[late] = rng.uniform(86_400, 108_000, int(late.sum()))

        # Payload: comms failures (more in a WAN outage), other errors, no response, pending.
        u = rng.random(n)
        p_fail = np.array(P.P_COMMS_FAIL)[region]
        if f.enabled and start.astimezone(UK).day == f.wan_outage_day:
            o0, o1 = _local_ms(start, 14 + 5 / 60), _local_ms(start, 15 + 40 / 60)
            in_outage = (region == 0) & (received >= o0) & (received < o1)
            p_fail = np.where(in_outage, 0.65, p_fail)
            rtt[in_outage] *= 3
        sets = scenarios.device_sets(dev, e.party[dev].astype(np.int64), dtype_idx.astype(np.int64))
        if f.enabled and f.device_effects:
            # Planted device-set effects (issue 12): a poor set and an outdated firmware.
            p_fail = p_fail + P.POOR_SET_EXTRA_FAIL * sets["poor"] + P.OUTDATED_EXTRA_FAIL * sets["outdated"]
        if f.enabled and start.astimezone(UK).day == f.firmware_fault_day:
            # A faulty firmware release: devices on 1.3.1 stop answering reliably.
            o0, o1 = _local_ms(start, 9), _local_ms(start, 12)
            bad_fw = sets["firmware"] == "1.3.1"
            in_fault = bad_fw & (received >= o0) & (received < o1)
            p_fail = np.where(in_fault, 0.6, p_fail)
        if f.enabled and start.astimezone(UK).day == 15:
            # SMETS1 service adapter failure 03:10-04:05 UK (the Category 1 incident).
            o0, o1 = _local_ms(start, 3 + 10 / 60), _local_ms(start, 4 + 5 / 60)
            in_outage = (region == 3) & (received >= o0) & (received < o1)
            p_fail = np.where(in_outage, 0.9, p_fail)
        if f.enabled and start.astimezone(UK).day == f.dsp_outage_day:
            # DSP Core failover 07:50-08:37 UK: every region fails, slowly.
            o0, o1 = _local_ms(start, 7 + 50 / 60), _local_ms(start, 8 + 37 / 60)
            in_outage = (received >= o0) & (received < o1)
            p_fail = np.where(in_outage, 0.9, p_fail)
            rtt[in_outage] *= 3
        comms = u < p_fail
        other = (u >= p_fail) & (u < p_fail + P.P_OTHER_ERROR)
        misconfigured = np.zeros(n, dtype=bool)
        if f.enabled and start.astimezone(UK).day == f.misconfig_day:
            o0, o1 = _local_ms(start, 10), _local_ms(start, 12)
            sup_c = [p.party_id for p in P.PARTIES].index("SUP-C")
            misconfigured = (party == sup_c) & (received >= o0) & (received < o1) & on_demand
            comms &= ~misconfigured
            other |= misconfigured
        v = rng.random(n)
        if f.enabled and f.device_effects and spec.sender != "dno":
            # SUP-E's orchestration: a share of its on-demand requests are malformed (E51). Drawn
            # from the top of `v`, whose low end decides no-response and pending.
            e_sup = [p.party_id for p in P.PARTIES].index(P.ORCHESTRATION_PARTY)
            rejected = (party == e_sup) & on_demand & ~comms & ~other & (v > 1 - P.ORCHESTRATION_REJECT)
            other |= rejected
            misconfigured_e51 = rejected
        else:
            misconfigured_e51 = np.zeros(n, dtype=bool)
        no_resp = ~comms & ~other & (v < P.P_NO_RESPONSE)
        pending = ~comms & ~other & (v >= P.P_NO_RESPONSE) & (v < P.P_NO_RESPONSE + P.P_PENDING)
        e21 = comms & (rng.random(n) < 0.55)
        rtt[e21 & on_demand] = rng.uniform(30, 95, int((e21 & on_demand).sum()))
        rtt[other] = rng.uniform(0.15, 1.2, int(other.sum()))
        code = np.full(n, spec.ok_code, dtype=object)
        code[comms] = np.where(e21[comms], "E21", "E20")
        code[other] = rng.choice(["E4", "E8", "E51", "E62"], size=int(other.sum()))
        code[misconfigured] = "E62"  # the DCC rejects the malformed requests
        code[misconfigured_e51] = "E51"
        code[no_resp | pending] = None
        status = np.where(
            on_demand,
            spec.status_ok,
            np.where(np.array([m == "future-dated" for m in modes])[mode_idx], 28, 6),
        )
        status = np.where(other, 8, status)
        status = np.where(no_resp, 34, np.where(pending, 1, status))

        quarantined = rng.random(n) < P.P_QUARANTINE
        released = np.where(quarantined, received + rng.integers(600_000, 172_800_000, n), -1)
        start_ms = np.where(quarantined, released, received)
        responded = np.where(no_resp | pending, -1, start_ms + (rtt * 1000).astype(np.int64))
        legs = _legs(start_ms, responded, wake_s, code, comms, no_resp | pending, on_demand)
        return {
            **legs,
            "srv": np.full(n, spec.srv, dtype=object),
            "dev": dev,
            "dtype": dtype_idx,
            "region": region,
            "party": party,
            "role": role,
            "mode": np.array(modes, dtype=object)[mode_idx],
            "critical": np.full(n, self.critical.get(spec.srv, False)),
            "received": received,
            "responded": responded,
            "code": code,
            "status": status.astype(np.int8),
            "attempts": attempts.astype(np.int8),
            "released": released,
        }

    def _to_tables(
        self, rng: np.random.Generator, c: dict, day_id: int, chunk: int
    ) -> tuple[pa.Table, pa.Table]:
        n = len(c["srv"])
        order = np.argsort(c["received"], kind="stable")
        c = {k: v[order] for k, v in c.items()}
        counter = (day_id * 100 + chunk) * 100_000_000 + np.arange(n, dtype=np.int64)
        dev_ids = eui64(Estate.DEVICE_BASE + c["dev"])
        party = pa.array(c["party"])
        request_id = pc.binary_join_element_wise(
            self.party_euis.take(party), dev_ids, pc.cast(pa.array(counter), pa.string()), ":"
        )

        ts = scenarios.ts_ms

        smets = np.where(c["region"] == 3, 1, 2).astype(np.int8)
        region = self.region_names.take(pa.array(c["region"]))
        dtype = self.type_names.take(pa.array(c["dtype"]))
        party_id = self.party_ids.take(party)
        sr = pa.table(
            [
                request_id,
                party_id,
                pa.array(c["role"], pa.string()),
                pa.array(c["srv"], pa.string()),
                pa.array(c["mode"], pa.string()),
                pa.array(c["critical"]),
                dev_ids,
                dtype,
                pa.array(smets),
                region,
                ts(c["received"]),
                ts(c["responded"]),
                pa.array(c["code"], pa.string()),
                pa.array(c["status"]),
                pa.array(c["attempts"]),
                ts(c["released"]),
                ts(c["csp_sent"]),
                ts(c["chf_reached"]),
                ts(c["device_answered"]),
                ts(c["csp_returned"]),
            ],
            schema=SR_SCHEMA,
        )

        # N12/N13 DCC alerts for each E20/E21 response, linked by request id; and the device's
        # 8F72 / 8F1C answering an acknowledged firmware update (not linked by request id).
        code = c["code"]
        fail = np.flatnonzero((code == "E20") | (code == "E21"))
        fw_idx, fw_code, fw_raised = scenarios.firmware_alerts(rng, c)
        raised = np.concatenate([c["responded"][fail] + rng.integers(0, 2_000, len(fail)), fw_raised])
        linked = np.concatenate([np.ones(len(fail), bool), np.zeros(len(fw_idx), bool)])
        acode = np.concatenate([np.where(code[fail] == "E20", "N12", "N13"), fw_code])
        kind = np.where(linked, "dcc", "device")
        prefix = np.where(linked, "F", "W")
        fail = np.concatenate([fail, fw_idx])
        delivered = raised + (1000 * rng.lognormal(0.4, 0.7, len(fail))).astype(np.int64)
        k = len(fail)
        alert_ids = pc.binary_join_element_wise(
            pa.array(prefix, pa.string()), pc.cast(pa.array(counter[fail]), pa.string()), "-"
        )
        fail_alerts = pa.table(
            [
                alert_ids,
                pa.array(acode, pa.string()),
                pa.array(kind, pa.string()),
                dev_ids.take(pa.array(fail)),
                dtype.take(pa.array(fail)),
                pa.array(smets[fail]),
                region.take(pa.array(fail)),
                party_id.take(pa.array(fail)),
                pc.if_else(pa.array(linked), request_id.take(pa.array(fail)), pa.scalar(None, pa.string())),
                ts(raised),
                ts(delivered),
                pa.array(np.zeros(k, dtype=bool)),
            ],
            schema=ALERT_SCHEMA,
        )
        return sr, fail_alerts

    def alerts(self, day_no: int, start: dt.datetime, n: int, chunk: int) -> pa.Table:
        rng = np.random.default_rng([self.seed, day_no, 2, chunk])
        e, f = self.estate, self.faults
        dev: np.ndarray = rng.integers(0, e.n, size=n)
        raised: np.ndarray = uk_times(rng, start, P.HOURLY["evening"], n)
        is_dcc: np.ndarray = rng.random(n) < 0.1
        dcodes, dp = list(P.DEVICE_ALERTS), np.array(list(P.DEVICE_ALERTS.values()))
        ccodes, cp = list(P.DCC_ALERTS), np.array(list(P.DCC_ALERTS.values()))
        code: np.ndarray = np.where(
            is_dcc,
            np.array(ccodes)[rng.choice(len(ccodes), size=n, p=cp)],
            np.array(dcodes)[rng.choice(len(dcodes), size=n, p=dp / dp.sum())],
        )
        suppressed: np.ndarray = np.zeros(n, dtype=bool)
        delay = 1000 * rng.lognormal(0.3, 0.8, n)
        slow = rng.random(n) < 0.004
        delay[slow] = rng.uniform(60_000, 900_000, int(slow.sum()))
        if f.enabled and start.astimezone(UK).day == f.alert_storm_day and chunk == 0:
            storm = rng.random(n) < 0.08
            dev[storm] = e.pool[(0, 0)][rng.integers(0, len(e.pool[(0, 0)]), int(storm.sum()))]
            storm &= e.region[dev] == 1
            # A power cut: most meters report at once, the rest trail off over the hour.
            burst = np.minimum(rng.exponential(900_000, int(storm.sum())), 3_599_999).astype(np.int64)
            raised[storm] = _local_ms(start, 18) + burst
            code[storm] = "AD1"
            is_dcc |= storm
            suppressed[storm] = rng.random(int(storm.sum())) < 0.6
            delay[storm] *= rng.uniform(1, 40, int(storm.sum()))
        delivered = raised + delay.astype(np.int64)
        delivered[rng.random(n) < 0.0003] = -1
        order = np.argsort(raised, kind="stable")
        dev, raised, delivered, code, is_dcc, suppressed = (
            a[order] for a in (dev, raised, delivered, code, is_dcc, suppressed)
        )
        region = e.region[dev]
        ids = pc.binary_join_element_wise(
            pa.array(np.full(n, "A"), pa.string()),
            pc.cast(pa.array((id_day(start) * 100 + chunk) * 100_000_000 + np.arange(n)), pa.string()),
            "-",
        )
        return pa.table(
            [
                ids,
                pa.array(code, pa.string()),
                pa.array(np.where(is_dcc, "dcc", "device"), pa.string()),
                eui64(Estate.DEVICE_BASE + dev),
                self.type_names.take(pa.array(e.type[dev])),
                pa.array(np.where(region == 3, 1, 2).astype(np.int8)),
                self.region_names.take(pa.array(region)),
                pa.array([p.party_id for p in P.SUPPLIERS]).take(pa.array(e.party[dev])),
                pa.nulls(n, pa.string()),
                pa.array(raised).cast(pa.timestamp("ms", "UTC")),
                pa.array(delivered, mask=delivered < 0).cast(pa.timestamp("ms", "UTC")),
                pa.array(suppressed),
            ],
            schema=ALERT_SCHEMA,
        )


def _events(
    year: int, month: int, starts: list[dt.datetime], seed: int, faults: Faults
) -> tuple[pa.Table, pa.Table]:
    """Incidents and outages: routine incidents, planned maintenance, the injected outage."""
    rng = np.random.default_rng([seed, 9999])
    inc, out = [], []
    ndays = len(starts) - 1
    tag = f"{year % 100:02d}{month:02d}"
    cats = rng.choice([1, 2, 3, 4, 5], size=36, p=[0.02, 0.05, 0.3, 0.38, 0.25])
    types = ["Service Request", "Device", "Communications Hub", "Security", "Portal"]
    targets_h = {1: 4, 2: 8, 3: 24, 4: 72, 5: 120}
    for i, cat in enumerate(cats, start=10):
        raised = starts[int(rng.integers(0, ndays))] + dt.timedelta(hours=float(rng.uniform(0, 24)))
        assigned = raised + dt.timedelta(minutes=float(rng.exponential(25)))
        resolved = raised + dt.timedelta(hours=float(targets_h[int(cat)] * rng.lognormal(-0.6, 0.6)))
        closed = resolved + dt.timedelta(hours=float(rng.uniform(1, 48)))
        region = rng.choice(INCIDENT_REGIONS)
        inc.append(
            {
                "incident_id": f"INC{tag}-{i:04d}",
                "category": int(cat),
                "dcc_responsible": bool(rng.random() < 0.8),
                "smets": 1 if region == "SMETS1" else (2 if region else None),
                "region": region,
                "raised_at": raised,
                "assigned_at": assigned,
                "resolved_at": resolved,
                "closed_at": closed,
                "services": "DCC User Interface",
                "summary": "Routine incident",
                "incident_type": types[int(rng.integers(0, len(types)))],
            }
        )
    # Two old incidents still open at month end (the over-90-days ageing list).
    for i, days_old in enumerate((120, 95), start=1):
        inc.append(
            {
                "incident_id": f"INC{tag}-A{i}",
                "category": 4,
                "dcc_responsible": True,
                "smets": 2,
                "region": None,
                "raised_at": starts[0] - dt.timedelta(days=days_old),
                "assigned_at": starts[0] - dt.timedelta(days=days_old, minutes=-30),
                "resolved_at": None,
                "closed_at": None,
                "services": "DCC User Interface",
                "summary": "Long-running device firmware investigation",
                "incident_type": "Device",
            }
        )
    sundays = [s for s in starts[:-1] if s.astimezone(UK).weekday() == 6][:2]
    for j, s in enumerate(sundays, start=1):
        out.append(
            {
                "outage_id": f"OUT{tag}-P{j}",
                "service": "DCC User Interface",
                "subsystem": "DSP Core",
                "region": None,
                "start_at": s + dt.timedelta(hours=1),
                "end_at": s + dt.timedelta(hours=3),
                "planned": True,
                "incident_id": None,
            }
        )
    if ndays >= 22:
        # Planned maintenance of a shared sub-system on a Sunday night: it takes every Service
        # through the DCC Gateway, and with the 2 x 2 h above goes over the 6 h allowance.
        sun = [s for s in starts[:-1] if s.astimezone(UK).weekday() == 6][2]
        out.append(
            {
                "outage_id": f"OUT{tag}-P3",
                "service": None,
                "subsystem": "DCC Gateway Network",
                "region": None,
                "start_at": sun + dt.timedelta(hours=1),
                "end_at": sun + dt.timedelta(hours=4),
                "planned": True,
                "incident_id": None,
            }
        )
    if faults.enabled and ndays >= 15:
        # A Category 1 on the SMETS1 service overnight (the "other" band), SMETS1 target times.
        s15 = starts[14] + dt.timedelta(hours=3, minutes=10)
        inc.append(
            {
                "incident_id": f"INC{tag}-0003",
                "category": 1,
                "dcc_responsible": True,
                "smets": 1,
                "region": "SMETS1",
                "raised_at": s15 + dt.timedelta(minutes=3),
                "assigned_at": s15 + dt.timedelta(minutes=8),
                "resolved_at": s15 + dt.timedelta(minutes=55),
                "closed_at": s15 + dt.timedelta(hours=26),
                "services": "DCC User Interface",
                "summary": "SMETS1 service provider adapter failure",
                "incident_type": "Service Request",
            }
        )
        out.append(
            {
                "outage_id": f"OUT{tag}-U4",
                "service": "DCC User Interface",
                "subsystem": "SMETS1 Service",
                "region": "SMETS1",
                "start_at": s15,
                "end_at": s15 + dt.timedelta(minutes=55),
                "planned": False,
                "incident_id": f"INC{tag}-0003",
            }
        )
    if faults.enabled and faults.dsp_outage_day <= ndays:
        s26 = starts[faults.dsp_outage_day - 1] + dt.timedelta(hours=7, minutes=50)
        inc.append(
            {
                "incident_id": f"INC{tag}-0002",
                "category": 2,
                "dcc_responsible": True,
                "smets": None,
                "region": None,
                "raised_at": s26 + dt.timedelta(minutes=4),
                "assigned_at": s26 + dt.timedelta(minutes=9),
                "resolved_at": s26 + dt.timedelta(minutes=47),
                "closed_at": s26 + dt.timedelta(hours=30),
                "services": "DCC User Interface;Registration Data Interface;Self-Service Interface",
                "summary": "DSP Core database failover: Services unavailable",
                "incident_type": "Service Request",
            }
        )
        out.append(
            {
                "outage_id": f"OUT{tag}-U3",
                "service": "DCC User Interface",
                "subsystem": "DSP Core",
                "region": None,
                "start_at": s26,
                "end_at": s26 + dt.timedelta(minutes=47),
                "planned": False,
                "incident_id": f"INC{tag}-0002",
            }
        )
    if faults.enabled and ndays >= 8:
        s8 = starts[7] + dt.timedelta(hours=10, minutes=20)
        out.append(
            {
                "outage_id": f"OUT{tag}-U2",
                "service": "Self-Service Interface",
                "subsystem": "SSI Portal",
                "region": None,
                "start_at": s8,
                "end_at": s8 + dt.timedelta(minutes=25),
                "planned": False,
                "incident_id": None,
            }
        )
    if faults.enabled and faults.wan_outage_day <= ndays:
        s = starts[faults.wan_outage_day - 1]
        o0 = s + dt.timedelta(hours=14, minutes=5)
        o1 = s + dt.timedelta(hours=15, minutes=40)
        inc.append(
            {
                "incident_id": f"INC{tag}-0001",
                "category": 2,
                "dcc_responsible": True,
                "smets": 2,
                "region": "North",
                "raised_at": o0 + dt.timedelta(minutes=6),
                "assigned_at": o0 + dt.timedelta(minutes=11),
                "resolved_at": o1,
                "closed_at": o1 + dt.timedelta(hours=20),
                "services": "DCC User Interface",
                "summary": "CSP North WAN outage: Service Requests to SMETS2 devices timing out",
                "incident_type": "Communications Hub",
            }
        )
        out.append(
            {
                "outage_id": f"OUT{tag}-U1",
                "service": "DCC User Interface",
                "subsystem": "CSP North WAN",
                "region": "North",
                "start_at": o0,
                "end_at": o1,
                "planned": False,
                "incident_id": f"INC{tag}-0001",
            }
        )
    return pa.Table.from_pylist(inc), pa.Table.from_pylist(out)


def _bad_rows_csv(path: Path, good: pa.Table, n: int, seed: int) -> None:
    """A late 'corrections' file: real duplicates and corrupted rows, to exercise quarantine."""
    rng = np.random.default_rng([seed, 4242])
    rows = good.slice(0, max(n, 1)).to_pylist()[:n]
    faults = ["duplicate", "bad_time", "bad_region", "missing_id", "bad_smets", "early_response"]
    out = []
    for i, r in enumerate(rows):
        r = {
            k: (
                v.isoformat(timespec="milliseconds").replace("+00:00", "Z")
                if isinstance(v, dt.datetime)
                else v
            )
            for k, v in r.items()
        }
        kind = faults[i % len(faults)]
        if kind == "bad_time":
            r["received_at"] = "2026-13-45T25:00:00Z"
        elif kind == "bad_region":
            r["region"] = "Midlands"
        elif kind == "missing_id":
            r["request_id"] = ""
        elif kind == "bad_smets":
            r["smets"] = "3"
        elif kind == "early_response" and r["responded_at"]:
            r["responded_at"] = "2020-01-01T00:00:00.000Z"
        out.append(r)
    rng.shuffle(out)
    import csv

    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=SR_SCHEMA.names)
        w.writeheader()
        for r in out:
            w.writerow(
                {k: ("" if v is None else str(v).lower() if isinstance(v, bool) else v) for k, v in r.items()}
            )


# Every table the simulator writes, one folder each.
TABLES = (
    "service_requests",
    "alerts",
    "incidents",
    "outages",
    "devices",
    "ch_status_updates",
    "ch_firmware",
    "smki_requests",
    "dcc_assessments",
    "defects",
    "throttling_events",
    "capacity",
    "registration_changes",
    "parties",
    "forecasts",
    "csp_test_messages",
)


def simulate_month(
    month: str,
    out_dir: str | Path,
    scale: str = "small",
    seed: int = 2026,
    faults: Faults | None = None,
    bad_rows: int = 0,
    on_day: Callable[[int, int, int], None] | None = None,
    days: int | None = None,
    reference: bool = True,
    from_day: int = 1,
) -> dict:
    """Write OUT/{service_requests,alerts,incidents,outages}/... for one month; return a manifest.

    `on_day(day, requests, alerts)` is called after each day, for progress reporting. `days`
    limits the output to N days from the month's day `from_day` (scale benchmarks: one national day;
    the end-to-end benchmark: the month's last two days). Each day is seeded on its own, so a day
    is the same whichever days are written with it.
    `reference=False` leaves out the party register (written once for consecutive months: the
    same register loaded twice would be refused as duplicates).
    """
    try:
        year, mon = (int(x) for x in month.split("-"))
        dt.date(year, mon, 1)
    except ValueError:
        raise ValueError(f"month must look like 2026-10, got {month!r}") from None
    if scale not in SCALES:
        raise ValueError(f"unknown scale {scale!r}; choose one of {list(SCALES)}")
    sc, faults = SCALES[scale], faults or Faults()
    out = Path(out_dir)
    for t in TABLES:
        (out / t).mkdir(parents=True, exist_ok=True)
    estate = Estate(sc.devices, np.random.default_rng([seed, 0]))
    starts = _day_starts(year, mon)
    month_days = len(starts) - 1
    if not 1 <= from_day <= month_days:
        raise ValueError(f"from_day must be between 1 and {month_days}, got {from_day}")
    traffic_days = month_days - from_day + 1 if days is None else days
    if not 1 <= traffic_days <= month_days - from_day + 1:
        raise ValueError(f"days must be between 1 and {month_days - from_day + 1}, got {days}")
    tag = f"{year % 100:02d}{mon:02d}"
    windows = (
        [
            (faults.wan_outage_day, 0, 14 + 5 / 60, 15 + 40 / 60, f"INC{tag}-0001"),
            (faults.dsp_outage_day, None, 7 + 50 / 60, 8 + 37 / 60, f"INC{tag}-0002"),
        ]
        if faults.enabled
        else []
    )
    installs_lost = scenarios.plan_installs(
        estate,
        starts,
        sc.requests_per_day * P.INSTALL_SITES_PER_REQUEST,
        np.random.default_rng([seed, 11]),
        windows,
    )
    gen = _DayGen(estate, sc, seed, faults)
    totals = {"service_requests": 0, "alerts": 0}
    first_day: pa.Table | None = None
    for day_no, start in enumerate(starts[from_day - 1 : from_day - 1 + traffic_days], start=from_day):
        local = start.astimezone(UK).date()
        counts = gen.volumes(day_no, local.weekday())
        nchunks = max(1, -(-sum(counts) // CHUNK_ROWS))
        sr_path = out / "service_requests" / f"{local.isoformat()}.parquet"
        al_path = out / "alerts" / f"{local.isoformat()}.parquet"
        n_req = n_al = 0
        with (
            pq.ParquetWriter(sr_path, SR_SCHEMA, compression="zstd") as sw,
            pq.ParquetWriter(al_path, ALERT_SCHEMA, compression="zstd") as aw,
        ):
            for ch in range(nchunks):
                part = [c // nchunks + (1 if ch < c % nchunks else 0) for c in counts]
                sr, fail_alerts = gen.requests(day_no, start, part, ch)
                sw.write_table(sr)
                n_alerts = max(0, int(sum(part) * P.ALERTS_PER_REQUEST) - fail_alerts.num_rows)
                al = pa.concat_tables([fail_alerts, gen.alerts(day_no, start, n_alerts, ch)])
                aw.write_table(al)
                n_req += sr.num_rows
                n_al += al.num_rows
                if first_day is None and bad_rows:  # the corrections file copies rows of it
                    first_day = sr
                del sr, fail_alerts, al  # one chunk in memory at a time, not two
        totals["service_requests"] += n_req
        totals["alerts"] += n_al
        if on_day:
            on_day(day_no, n_req, n_al)
    incidents, outages = _events(year, mon, starts, seed, faults)
    pq.write_table(incidents, out / "incidents" / f"incidents-{month}.parquet")
    pq.write_table(outages, out / "outages" / f"outages-{month}.parquet")
    rng = np.random.default_rng([seed, 12])
    extracted = starts[-1] - dt.timedelta(minutes=30)
    n_devices, writer = 0, None
    for batch in scenarios.devices_batches(estate, extracted, starts[0], rng):
        if writer is None:
            writer = pq.ParquetWriter(out / "devices" / f"devices-{month}.parquet", batch.schema)
        writer.write_table(batch)
        n_devices += batch.num_rows
    if writer is not None:
        writer.close()
    side = {
        # Ids carry the month's tag, so consecutive months load into one store side by side.
        "ch_status_updates": scenarios.ch_status_table(estate, tag),
        "ch_firmware": scenarios.ch_firmware_table(estate, starts, rng, tag),
        "smki_requests": scenarios.smki_table(
            starts, max(1, int(sc.requests_per_day * P.SMKI_PER_REQUEST)), rng, tag
        ),
        "dcc_assessments": scenarios.assessments_table(month, starts, rng),
        "defects": scenarios.defects_table(month, starts, rng),
        "throttling_events": scenarios.throttling_table(
            month, starts, faults.alert_storm_day if faults.enabled else None, rng
        ),
        "capacity": scenarios.capacity_table(starts, sc.requests_per_day),
        "registration_changes": scenarios.registration_changes_table(out / "service_requests", rng, tag),
        "parties": scenarios.parties_table(starts[0]),
        "forecasts": scenarios.forecasts_table(out / "service_requests", starts[0], rng),
        "csp_test_messages": scenarios.csp_tests_table(
            starts, faults.wan_outage_day if faults.enabled else None, rng, tag
        ),
    }
    if not reference:
        del side["parties"]
    for name, tbl in side.items():
        pq.write_table(tbl, out / name / f"{name}-{month}.parquet")
    if bad_rows and first_day is not None:
        _bad_rows_csv(out / "service_requests" / f"corrections-{month}.csv", first_day, bad_rows, seed)
    manifest = {
        "month": month,
        "scale": scale,
        "seed": seed,
        "days": traffic_days,
        "rows": {
            **totals,
            "devices": n_devices,
            "incidents": incidents.num_rows,
            "outages": outages.num_rows,
            **{name: tbl.num_rows for name, tbl in side.items()},
            "bad_rows": bad_rows,
        },
        "faults": {
            "wan_outage_day": faults.wan_outage_day,
            "alert_storm_day": faults.alert_storm_day,
            "dsp_outage_day": faults.dsp_outage_day,
        }
        if faults.enabled
        else None,
        # What the simulator knows and the measures must estimate (outage-impact backtest).
        "truth": {"installs_lost": installs_lost},
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return manifest
