"""Correlated business-process traffic, so every outcome measure has something to find.

The generator's base traffic picks devices at random per SRV. Real processes leave footprints
across requests: installs send a burst of I&C SRVs to new devices on the commissioning day, a
6.23 is followed by the gaining supplier's tariff and billing-calendar updates, failed top-ups
are resent, a firmware update is answered days later by a verification alert. This module adds
those footprints, plus the estate extract and the smaller inputs (CH status updates, CH
firmware, SMKI requests, DCC Assessments).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Protocol
from zoneinfo import ZoneInfo

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from opmetrics.simulate import profiles as P
from opmetrics.simulate.estate import Estate, eui64


class DayTraffic(Protocol):
    """What the scenarios need of a day's traffic generator: the estate, and rows of one SRV."""

    estate: Estate

    def srv_rows(
        self,
        rng: np.random.Generator,
        spec: P.SrvSpec,
        n: int,
        start: dt.datetime,
        dev: np.ndarray | None = None,
        at: np.ndarray | None = None,
    ) -> dict: ...


MS_MIN = 60_000
MS_DAY = 86_400_000
SPEC = {s.srv: s for s in P.SRV_MIX}
CHF, ESME, GSME = (P.DEVICE_TYPES.index(t) for t in ("CHF", "ESME", "GSME"))


def firmware_index(dev: np.ndarray) -> np.ndarray:
    """Each device's firmware version (index into P.FIRMWARE_VERSIONS), fixed by its number so
    the traffic generator and the estate extract agree."""
    return (dev * 7 + dev // 11) % len(P.FIRMWARE_VERSIONS)


def device_sets(dev: np.ndarray, owner: np.ndarray, dtype: np.ndarray) -> dict[str, np.ndarray]:
    """Manufacturer, model, CH variant and firmware of each device, fixed by its number and its
    supplier so the estate extract and the traffic agree. Two device effects are planted here:
    SUP-D owns most of a poor set (gas meter Europa G4 on CH-C; others own a few), and SUP-F kept
    half its devices on an outdated firmware (1.1.0; others a few)."""
    types = np.array(P.DEVICE_TYPES)[dtype]
    manufacturer = np.empty(len(dev), dtype=object)
    model = np.empty(len(dev), dtype=object)
    for t, options in P.MODELS.items():
        m = types == t
        k = ((dev[m] * 5 + dev[m] // 7) % len(options)).astype(np.int64)
        manufacturer[m] = np.array([o[0] for o in options], dtype=object)[k]
        model[m] = np.array([o[1] for o in options], dtype=object)[k]
    ch = np.array(P.CH_VARIANTS, dtype=object)[(dev + dev // 3) % len(P.CH_VARIANTS)]
    sup = [p.party_id for p in P.SUPPLIERS]
    poor = (types == "GSME") & (((owner == sup.index("SUP-D")) & (dev % 3 == 0)) | (dev % 23 == 0))
    ch = np.where(poor, P.POOR_SET[0], ch)
    manufacturer = np.where(poor, P.POOR_SET[1], manufacturer)
    model = np.where(poor, P.POOR_SET[2], model)
    fw = np.array(P.FIRMWARE_VERSIONS, dtype=object)[firmware_index(dev)]
    outdated = ((owner == sup.index("SUP-F")) & (dev % 2 == 0)) | (dev % 31 == 0)
    fw = np.where(outdated, P.OUTDATED_FIRMWARE, fw)
    return {"manufacturer": manufacturer, "model": model, "ch_variant": ch, "firmware": fw, "poor": poor,
            "outdated": outdated}  # fmt: skip


def ts_ms(ms: np.ndarray) -> pa.Array:
    """Epoch milliseconds as UTC timestamps; negative values mean "none" (null)."""
    return pa.array(ms, pa.int64(), mask=ms < 0).cast(pa.timestamp("ms", "UTC"))


def plan_installs(
    estate: Estate,
    starts: list[dt.datetime],
    per_day: float,
    rng: np.random.Generator,
    outages: Sequence[tuple[int, int | None, float, float, str]] = (),
) -> dict[str, int]:
    """Append the month's new sites (CH + ESME, often a GSME) to the estate, with outcomes.

    `outages` = (day, region or None, start hour, end hour, incident id), UK time: a site
    visited during one cannot commission. Returns the true impact per incident: Communications
    Hubs that would have been commissioned but were not (the outage-impact backtest's truth).
    """
    lost: dict[str, int] = {o[4]: 0 for o in outages}
    types, regions, parties, days, at, comm, il = [], [], [], [], [], [], []
    shares = np.array([p.share for p in P.SUPPLIERS])
    for day_no, start in enumerate(starts[:-1], start=1):
        wd = start.astimezone(ZoneInfo("Europe/London")).date().weekday()
        n_sites = int(rng.poisson(per_day * P.WEEKDAY["work"][wd]))
        for _ in range(n_sites):
            region = int(rng.choice(3, p=P.SMETS2_REGION_MIX))
            party = int(rng.choice(len(P.SUPPLIERS), p=shares / shares.sum()))
            hour = float(rng.uniform(8.5, 17.5))
            t0 = int(start.timestamp() * 1000 + hour * 3_600_000)
            u = rng.random()
            ch_ok, ch_il = (
                u < P.P_INSTALL_COMMISSIONED,
                P.P_INSTALL_COMMISSIONED <= u < P.P_INSTALL_COMMISSIONED + P.P_INSTALL_LEAVE,
            )
            hit = next(
                (o for o in outages if o[0] == day_no and o[1] in (None, region) and o[2] <= hour < o[3]),
                None,
            )
            if hit is not None:
                lost[hit[4]] += int(ch_ok)
                ch_ok = ch_il = False
            site = [CHF, ESME] + ([GSME] if rng.random() < 0.6 else [])
            for k, t in enumerate(site):
                ok = ch_ok if t == CHF else (ch_ok and rng.random() < 0.97)
                types.append(t)
                regions.append(region)
                parties.append(party)
                days.append(day_no)
                at.append(t0 + k * 5 * MS_MIN)
                comm.append(t0 + (30 + 5 * k) * MS_MIN if ok else -1)
                il.append(ch_il and t == CHF)
    estate.add_installs(
        np.array(types, np.int8),
        np.array(regions, np.int8),
        np.array(parties, np.int8),
        np.array(days, np.int32),
        np.array(at, np.int64),
        np.array(comm, np.int64),
        np.array(il, bool),
    )
    return lost


# I&C SRVs per device type, in the order a site sends them (001 Table 4 I&C row).
IC_SRVS = {
    CHF: ["8.11"],
    ESME: ["8.1.1", "6.20.1", "6.21", "1.1.1", "6.8"],
    GSME: ["8.1.1", "8.7.2", "1.1.1", "6.8"],
}


def install_requests(
    gen: DayTraffic, rng: np.random.Generator, day_no: int, start: dt.datetime
) -> list[dict]:
    """The I&C SRVs (and the CH's 8.14.1 / 8.14.2) sent to the day's new devices."""
    e = gen.estate
    new = e.n + np.flatnonzero(e.install_day == day_no)
    parts = []
    for t, srvs in IC_SRVS.items():
        devs = new[e.type[new] == t]
        for j, srv in enumerate(srvs):
            if len(devs):
                at = e.installed_ms[devs - e.n] + (10 + 3 * j) * MS_MIN
                parts.append(gen.srv_rows(rng, SPEC[srv], len(devs), start, dev=devs, at=at))
    hubs = new[e.type[new] == CHF]
    for srv, sel in (("8.14.1", e.commissioned_ms[hubs - e.n] >= 0), ("8.14.2", e.install_leave[hubs - e.n])):
        devs = hubs[sel]
        if len(devs):
            parts.append(
                gen.srv_rows(
                    rng, SPEC[srv], len(devs), start, dev=devs, at=e.installed_ms[devs - e.n] + 25 * MS_MIN
                )
            )
    return parts


def follow_ups(
    gen: DayTraffic, rng: np.random.Generator, parts: list[dict], start: dt.datetime
) -> list[dict]:
    """A 6.23's same-day tariff and billing-calendar updates; resends of failed top-ups."""
    day_end = int(start.timestamp() * 1000) + MS_DAY - MS_MIN
    out: list[dict] = []
    for p in parts:
        if p["srv"][0] == "6.23":
            pick = (rng.random(len(p["dev"])) < P.P_COS_FOLLOW_UP) & (p["mode"] == "on-demand")
            at = p["received"][pick] + rng.integers(10, 60, int(pick.sum())) * MS_MIN
            keep = at < day_end
            for srv in ("1.1.1", "6.8"):
                if keep.any():
                    out.append(
                        gen.srv_rows(
                            rng, SPEC[srv], int(keep.sum()), start, dev=p["dev"][pick][keep], at=at[keep]
                        )
                    )
    resend_from = [p for p in parts if p["srv"][0] == "2.2"]
    for _ in range(2):  # a failed top-up is resent, and a failed resend sometimes again
        nxt = []
        for p in resend_from:
            failed = (p["responded"] < 0) | np.isin(p["code"], ["E20", "E21"])
            pick = failed & (rng.random(len(failed)) < P.P_TOPUP_RESEND)
            at = p["received"][pick] + rng.integers(2, 20, int(pick.sum())) * MS_MIN
            keep = at < day_end
            if keep.any():
                nxt.append(
                    gen.srv_rows(
                        rng, SPEC["2.2"], int(keep.sum()), start, dev=p["dev"][pick][keep], at=at[keep]
                    )
                )
        out += nxt
        resend_from = nxt
    return out


def firmware_alerts(rng: np.random.Generator, c: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(row index, alert code, raised ms) of the 8F72 / 8F1C answering each acknowledged 11.1."""
    idx = np.flatnonzero((c["srv"] == "11.1") & (c["code"] == "I99") & (c["region"] < 3))
    u = rng.random(len(idx))
    code = np.where(u < P.P_FW_VERIFIED, "8F72", np.where(u < P.P_FW_VERIFIED + P.P_FW_FAILED, "8F1C", ""))
    raised = c["responded"][idx] + rng.integers(30 * MS_MIN, 4 * MS_DAY + 12 * 3_600_000, len(idx))
    keep = code != ""
    return idx[keep], code[keep], raised[keep]


def devices_table(
    e: Estate, extracted: dt.datetime, month_start: dt.datetime, rng: np.random.Generator
) -> pa.Table:
    """The estate extract at month end, as one table (small estates)."""
    return pa.concat_tables(devices_batches(e, extracted, month_start, rng))


def devices_batches(
    e: Estate,
    extracted: dt.datetime,
    month_start: dt.datetime,
    rng: np.random.Generator,
    batch: int = 2_000_000,
) -> Iterator[pa.Table]:
    """The estate extract at month end, old devices commissioned long ago plus the month's
    installs, in batches: a national estate (50 M devices) never exists as one table."""

    n = len(e.type)
    ext = int(extracted.timestamp() * 1000)
    m0 = int(month_start.timestamp() * 1000)
    statuses = pa.array(["commissioned", "install_and_leave", "installed_not_commissioned"])
    parties = pa.array([p.party_id for p in P.SUPPLIERS])
    # The month's sites are appended hub first (CH, ESME, maybe GSME): a meter that commissioned
    # is joined to its site's hub (IC1 counts a hub with a meter attached as a success).
    new_types = e.type[e.n :]
    site_hub = np.maximum.accumulate(np.where(new_types == CHF, np.arange(len(new_types)), -1))
    joined = np.isin(new_types, [ESME, GSME]) & (e.commissioned_ms >= 0) & (site_hub >= 0)
    hub_of_new = np.where(joined, e.n + site_hub, -1)
    seed = int(rng.integers(2**62))
    for a in range(0, n, batch):
        b = min(n, a + batch)
        k = b - a
        # Each batch draws from its own stream, so memory depends on the batch, not the estate.
        r = np.random.default_rng([seed, a])
        dev = np.arange(a, b)
        old = dev < e.n
        installed = m0 - r.integers(30, 2_000, k) * MS_DAY
        commissioned = installed + 3_600_000
        leave = np.zeros(k, bool)
        j = dev[~old] - e.n  # the month's installs in this batch
        installed[~old] = e.installed_ms[j]
        commissioned[~old] = e.commissioned_ms[j]
        leave[~old] = e.install_leave[j]
        silent = old & (r.random(k) < P.P_SILENT_60D)
        last = np.where(silent, ext - r.integers(61, 400, k) * MS_DAY, ext - r.integers(0, 2 * MS_DAY, k))
        last = np.where(commissioned < 0, -1, last)
        status_code = np.where(commissioned >= 0, 0, np.where(leave, 1, 2)).astype(np.int8)
        hub = np.full(k, -1, np.int64)
        hub[~old] = hub_of_new[j]
        ch_id = pc.if_else(pa.array(hub >= 0), eui64(Estate.DEVICE_BASE + np.maximum(hub, 0)), None)
        sets = device_sets(dev, e.party[a:b].astype(np.int64), e.type[a:b].astype(np.int64))
        yield pa.table(
            {
                "device_id": eui64(Estate.DEVICE_BASE + dev),
                "extracted_at": ts_ms(np.full(k, ext, np.int64)),
                "device_type": pa.array(P.DEVICE_TYPES).take(pa.array(e.type[a:b])),
                "smets": pa.array(np.where(e.region[a:b] == 3, 1, 2).astype(np.int8)),
                "region": pa.array(P.REGIONS).take(pa.array(e.region[a:b])),
                "party_id": parties.take(pa.array(e.party[a:b])),
                "ch_id": ch_id,
                "installed_at": ts_ms(installed),
                "commissioned_at": ts_ms(commissioned),
                "status": statuses.take(pa.array(status_code)),
                "firmware_version": pa.array(sets["firmware"], pa.string()),
                "last_communicated_at": ts_ms(last),
                "manufacturer": pa.array(sets["manufacturer"], pa.string()),
                "model": pa.array(sets["model"], pa.string()),
                "ch_variant": pa.array(sets["ch_variant"], pa.string()),
            }
        )


def ch_status_table(e: Estate, tag: str) -> pa.Table:

    new = e.new
    hubs = new[e.type[new] == CHF]
    ok = e.commissioned_ms[hubs - e.n] >= 0
    il = e.install_leave[hubs - e.n]
    sel = hubs[ok | il]
    srv = np.where(e.commissioned_ms[sel - e.n] >= 0, "8.14.1", "8.14.2")
    at = e.installed_ms[sel - e.n] + 25 * MS_MIN
    return pa.table(
        {
            "update_id": pa.array([f"CSU-{tag}-{i}" for i in sel], pa.string()),
            "srv": pa.array(srv, pa.string()),
            "device_id": eui64(Estate.DEVICE_BASE + sel),
            "party_id": pa.array([p.party_id for p in P.SUPPLIERS]).take(pa.array(e.party[sel])),
            "region": pa.array(P.REGIONS).take(pa.array(e.region[sel])),
            "sent_at": pa.array(at).cast(pa.timestamp("ms", "UTC")),
            "incident_id": pa.nulls(len(sel), pa.string()),
        }
    )


def ch_firmware_table(e: Estate, starts: list[dt.datetime], rng: np.random.Generator, tag: str) -> pa.Table:
    """A CH firmware campaign: a share of SMETS2 hubs get an image; a few fail or are still going."""

    hubs = np.flatnonzero((e.type[: e.n] == CHF) & (e.region[: e.n] < 3))
    sel = hubs[rng.random(len(hubs)) < P.P_CH_FIRMWARE]
    k = len(sel)
    day = rng.integers(0, len(starts) - 1, k)
    dist = np.array([int(starts[d].timestamp() * 1000) for d in day], np.int64) + rng.integers(0, MS_DAY, k)
    u = rng.random(k)
    delivery = np.where(u < 0.988, "delivered", np.where(u < 0.995, "failed", "in_progress"))
    delivered = np.where(delivery == "delivered", dist + rng.integers(MS_MIN, 2 * MS_DAY, k), -1)
    v = rng.random(k)
    activation = np.where(
        delivery != "delivered",
        "not_attempted",
        np.where(v < 0.985, "activated", np.where(v < 0.995, "failed", "in_progress")),
    )
    activated = np.where(activation == "activated", delivered + rng.integers(MS_MIN, MS_DAY, k), -1)

    return pa.table(
        {
            "update_id": pa.array([f"CHFW-{tag}-{i}" for i in sel], pa.string()),
            "device_id": eui64(Estate.DEVICE_BASE + sel),
            "region": pa.array(P.REGIONS).take(pa.array(e.region[sel])),
            "image_version": pa.array(np.full(k, "CH-5.2.1"), pa.string()),
            "distributed_at": ts_ms(dist),
            "delivery_outcome": pa.array(delivery, pa.string()),
            "delivered_at": ts_ms(delivered),
            "activation_outcome": pa.array(activation, pa.string()),
            "activated_at": ts_ms(activated),
        }
    )


def smki_table(starts: list[dt.datetime], per_day: int, rng: np.random.Generator, tag: str) -> pa.Table:
    rows = []
    for d, start in enumerate(starts[:-1]):
        for service, share, median in (("certificate", 0.3, 4.0), ("repository", 0.7, 0.6)):
            n = int(rng.poisson(per_day * share))
            for i in range(n):
                at = start + dt.timedelta(seconds=float(rng.uniform(0, 86_400)))
                secs = median * float(rng.lognormal(0, 0.6)) * (8 if rng.random() < 0.006 else 1)
                rows.append(
                    {
                        "request_id": f"SMKI-{tag}-{d + 1:02d}-{service[0]}{i}",
                        "service": service,
                        "party_id": P.SUPPLIERS[int(rng.integers(0, len(P.SUPPLIERS)))].party_id,
                        "received_at": at,
                        "responded_at": at + dt.timedelta(seconds=secs),
                    }
                )
    return pa.Table.from_pylist(rows)


def assessments_table(month: str, starts: list[dt.datetime], rng: np.random.Generator) -> pa.Table:
    rows = []
    for i in range(6):
        due = starts[int(rng.integers(0, len(starts) - 1))] + dt.timedelta(hours=17)
        late = i == 4
        rows.append(
            {
                "assessment_id": f"DA-{month}-{i + 1}",
                "modification_id": f"MP{200 + i}",
                "requested_at": due - dt.timedelta(days=30),
                "due_at": due,
                "completed_at": due + dt.timedelta(days=3)
                if late
                else due - dt.timedelta(days=int(rng.integers(1, 8))),
            }
        )
    return pa.Table.from_pylist(rows)


def defects_table(month: str, starts: list[dt.datetime], rng: np.random.Generator) -> pa.Table:
    """Known defects: a release into live mid-month carrying a few, plus an older stock."""
    release_at = starts[min(14, len(starts) - 2)] + dt.timedelta(hours=22)
    rows = []
    for i in range(14):
        old = i >= 5
        identified = (
            (starts[0] - dt.timedelta(days=int(rng.integers(10, 200))))
            if old
            else (release_at - dt.timedelta(days=int(rng.integers(1, 20))))
        )
        resolved = None
        if old and rng.random() < 0.3:
            resolved = starts[int(rng.integers(0, len(starts) - 1))] + dt.timedelta(hours=12)
        rows.append(
            {
                "defect_id": f"DEF-{month}-{i + 1:02d}",
                "severity": int(rng.choice([1, 2, 3, 4], p=[0.05, 0.25, 0.4, 0.3])),
                "identified_at": identified,
                "released_at": release_at if not old else identified + dt.timedelta(days=3),
                "accepted": bool(rng.random() < 0.7),
                "resolved_at": resolved,
                "release_id": f"R{month}" if not old else "R-earlier",
            }
        )
    return pa.Table.from_pylist(rows)


def throttling_table(
    month: str, starts: list[dt.datetime], storm_day: int | None, rng: np.random.Generator
) -> pa.Table:
    """Alert storm protection events (the injected Central storm, plus a few noisy devices)."""
    rows = []
    days = [storm_day] * 6 if storm_day else []
    days += [int(d) for d in rng.integers(1, len(starts), 4)]
    for i, day in enumerate(days):
        at = starts[day - 1] + dt.timedelta(hours=17 if i < 6 else float(rng.uniform(0, 23)))
        secs = float(rng.uniform(300, 3_600))
        rows.append(
            {
                "event_id": f"THR-{month}-{i + 1:02d}",
                "mechanism": "alert_storm",
                "device_id": f"ESME-{int(rng.integers(1, 99_999)):08d}",
                "alert_code": "AD1" if i < 6 else str(rng.choice(["8F35", "8183"])),
                "party_id": None,
                "started_at": at,
                "ended_at": at + dt.timedelta(seconds=secs),
                "forwarded": int(rng.integers(5, 40)),
                "dropped": int(rng.integers(50, 2_000)),
                "exempted": int(rng.integers(0, 5)),
                "incident_id": f"DSMS-{month}-{i + 1:02d}",
            }
        )
    return pa.Table.from_pylist(
        rows,
        schema=pa.schema(
            [
                ("event_id", pa.string()),
                ("mechanism", pa.string()),
                ("device_id", pa.string()),
                ("alert_code", pa.string()),
                ("party_id", pa.string()),
                ("started_at", pa.timestamp("us", "UTC")),
                ("ended_at", pa.timestamp("us", "UTC")),
                ("forwarded", pa.int64()),
                ("dropped", pa.int64()),
                ("exempted", pa.int64()),
                ("incident_id", pa.string()),
            ]
        ),
    )


def capacity_table(starts: list[dt.datetime], requests_per_day: int) -> pa.Table:
    """Declared capacity: sized at about three times the average hourly load."""
    return pa.Table.from_pylist(
        [
            {
                "resource": "service_requests",
                "per_hour": max(1, requests_per_day // 8),
                "effective_from": starts[0] - dt.timedelta(days=365),
            },
            {
                "resource": "alerts",
                "per_hour": max(1, int(requests_per_day * P.ALERTS_PER_REQUEST) // 8),
                "effective_from": starts[0] - dt.timedelta(days=365),
            },
        ]
    )


def registration_changes_table(sr_dir: Path, rng: np.random.Generator, tag: str) -> pa.Table:
    """Industry CoS registrations: one per device that received a 6.23 (DCC enrolled, effective
    the next day), plus CoS of supply points not enrolled with the DCC (about a third more)."""
    import duckdb

    # Each device's first 6.23, found by DuckDB streaming the day files (a national month's
    # requests never sit in memory here).
    cos = (
        duckdb.connect()
        .sql(
            "SELECT device_id, arg_min(device_type, received_at) AS device_type,"
            " arg_min(party_id, received_at) AS party_id, min(received_at) AS received_at"
            " FROM read_parquet(?) WHERE srv = '6.23' GROUP BY device_id ORDER BY device_id",
            params=[str(sr_dir / "*.parquet")],
        )
        .to_arrow_table()
    )
    k, extra = cos.num_rows, cos.num_rows // 3
    parties = pa.array([p.party_id for p in P.SUPPLIERS])
    gas = np.isin(cos["device_type"].to_numpy(zero_copy_only=False), ["GSME", "GPF"])
    mpxn = np.where(gas, rng.integers(10**6, 10**10, k), rng.integers(10**12, 10**13, k))
    effective = pc.add(cos["received_at"], pa.scalar(dt.timedelta(days=1), pa.duration("ms")))
    effective = effective.cast(pa.timestamp("ms", "UTC"))
    enrolled = pa.table(
        {
            "change_id": pa.array([f"REG-{tag}-{i:08d}" for i in range(k)], pa.string()),
            "mpxn": pa.array(mpxn.astype(str), pa.string()),
            "fuel": pa.array(np.where(gas, "gas", "electricity"), pa.string()),
            "gaining_party_id": cos["party_id"].cast(pa.string()),
            "losing_party_id": parties.take(rng.integers(0, len(parties), k)),
            "effective_at": effective,
            "dcc_enrolled": pa.array(np.ones(k, bool)),
            "device_id": cos["device_id"].cast(pa.string()),
        }
    )
    others = pa.table(
        {
            "change_id": pa.array([f"REG-{tag}-N{j:08d}" for j in range(extra)], pa.string()),
            "mpxn": pa.array(rng.integers(10**12, 10**13, extra).astype(str), pa.string()),
            "fuel": pa.array(np.full(extra, "electricity"), pa.string()),
            "gaining_party_id": parties.take(rng.integers(0, len(parties), extra)),
            "losing_party_id": parties.take(rng.integers(0, len(parties), extra)),
            "effective_at": effective.take(rng.integers(0, max(k, 1), extra)),
            "dcc_enrolled": pa.array(np.zeros(extra, bool)),
            "device_id": pa.nulls(extra, pa.string()),
        }
    )
    return pa.concat_tables([enrolled, others])


def forecasts_table(sr_dir: Path, month_start: dt.datetime, rng: np.random.Generator) -> pa.Table:
    """Each party's forecast of its month's requests (SEC H3.24): close to what it sends, except
    SUP-G, which forecast 30 % too few, and SUP-J, which sent none."""
    import duckdb

    sql = "SELECT party_id, count(*) FROM read_parquet(?) GROUP BY party_id"
    counts = dict(duckdb.connect().execute(sql, [str(sr_dir / "*.parquet")]).fetchall())
    rows = []
    for p in P.PARTIES:
        if p.party_id == "SUP-J":
            continue
        actual = counts.get(p.party_id, 0)
        factor = 0.7 if p.party_id == "SUP-G" else float(rng.uniform(0.95, 1.06))
        rows.append(
            {
                "party_id": p.party_id,
                "month_start": month_start,
                "requests": int(round(actual * factor)),
                "submitted_at": month_start - dt.timedelta(days=40),
            }
        )
    return pa.Table.from_pylist(
        rows,
        schema=pa.schema(
            [("party_id", pa.string()), ("month_start", pa.timestamp("ms", "UTC")), ("requests", pa.int64()),
             ("submitted_at", pa.timestamp("ms", "UTC"))]
        ),
    )  # fmt: skip


CSP_TESTS_PER_DAY = {25: 24, 7200: 6, 79200: 2}  # per provider and target
CSP_PROVIDERS = {"North": "CSP North", "Central": "CSP Central", "South": "CSP South", "SMETS1": "S1SP"}


def csp_tests_table(
    starts: list[dt.datetime], wan_outage_day: int | None, rng: np.random.Generator, tag: str
) -> pa.Table:
    """Round-trip test messages per provider and target
    (001 l.3500 "Target RTTs are twenty-five seconds, two hours and twenty-two"): most back well
    within target, 1 % lost; the North's 25 s tests fail during the WAN outage (14:05-15:40)."""
    rows = []
    for d, start in enumerate(starts[:-1]):
        for region, provider in CSP_PROVIDERS.items():
            for target, n in CSP_TESTS_PER_DAY.items():
                sent = [start + dt.timedelta(seconds=float(x)) for x in np.sort(rng.uniform(1, 86_000, n))]
                rtt = target * rng.lognormal(np.log(0.25), 0.6, n)
                lost = rng.random(n) < 0.01
                for i in range(n):
                    t = sent[i]
                    uk = t.astimezone(ZoneInfo("Europe/London"))
                    if (
                        wan_outage_day == uk.day and region == "North" and target == 25
                        and dt.time(14, 5) <= uk.time() < dt.time(15, 40)
                    ):  # fmt: skip
                        lost[i] = True
                    rows.append(
                        {
                            "test_id": f"T{tag}-{d:02d}-{region[:2]}-{target}-{i:03d}",
                            "provider": provider,
                            "region": region,
                            "target_s": target,
                            "sent_at": t,
                            "returned_at": None if lost[i] else t + dt.timedelta(seconds=float(rtt[i])),
                        }
                    )
    return pa.Table.from_pylist(
        rows,
        schema=pa.schema(
            [("test_id", pa.string()), ("provider", pa.string()), ("region", pa.string()),
             ("target_s", pa.int64()), ("sent_at", pa.timestamp("ms", "UTC")),
             ("returned_at", pa.timestamp("ms", "UTC"))]
        ),
    )  # fmt: skip


def parties_table(month_start: dt.datetime) -> pa.Table:
    """SEC Parties and the DUIS User IDs they send under (maps RequestIDs to parties)."""
    return pa.Table.from_pylist(
        [
            {
                "user_id": p.eui,
                "party_id": p.party_id,
                "user_role": "IS" if p.kind == "supplier" else "ED",
                "valid_from": month_start - dt.timedelta(days=365),
            }
            for p in P.PARTIES
        ]
    )
