"""The synthetic device estate: each device's type, SMETS generation, region and supplier, and
EUI-64 device ids. The traffic generator and the scenarios both draw on it."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from opmetrics.simulate import profiles as P

_HEX = np.frombuffer(b"0123456789ABCDEF", dtype=np.uint8)


def eui64(values: np.ndarray) -> pa.StringArray:
    """Format uint64 values as EUI-64 strings (00-DB-..), vectorised, no Python loop per row."""
    v = values.astype(np.uint64)
    out = np.empty((len(v), 23), dtype=np.uint8)
    out[:, 2::3] = ord("-")
    for i in range(8):
        b = ((v >> np.uint64(8 * (7 - i))) & np.uint64(0xFF)).astype(np.uint8)
        out[:, 3 * i] = _HEX[b >> 4]
        out[:, 3 * i + 1] = _HEX[b & 15]
    offsets = pa.py_buffer(np.arange(0, 23 * len(v) + 1, 23, dtype=np.int32).tobytes())
    return pa.StringArray.from_buffers(len(v), offsets, pa.py_buffer(out.tobytes()))


class Estate:
    """The device population: type, SMETS generation, region and owning supplier per device.

    Devices 0..n-1 existed before the month; the month's installs are appended after them and
    are the only devices with install details (`install_day`, `installed_ms`, `commissioned_ms`,
    `install_leave`, indexed by device number minus n). A national estate is 50 M devices, so
    each one costs three bytes here, plus four for its place in a traffic pool.
    """

    DEVICE_BASE = 0x00DB_0000_0000_0000

    def __init__(self, n: int, rng: np.random.Generator):
        self.n = n
        self.type = rng.choice(len(P.DEVICE_TYPES), size=n, p=P.DEVICE_MIX).astype(np.int8)
        smets1 = rng.random(n) < P.SMETS1_SHARE
        self.region = np.where(smets1, 3, rng.choice(3, size=n, p=P.SMETS2_REGION_MIX)).astype(np.int8)
        shares = np.array([p.share for p in P.SUPPLIERS])
        self.party = rng.choice(len(P.SUPPLIERS), size=n, p=shares / shares.sum()).astype(np.int8)
        order = np.lexsort((self.region == 3, self.type)).astype(np.int32)
        key = self.type[order].astype(np.int8) * 2 + (self.region[order] == 3)
        bounds = np.searchsorted(key, np.arange(len(P.DEVICE_TYPES) * 2 + 1))
        self.pool = {
            (t, s1): order[bounds[t * 2 + s1] : bounds[t * 2 + s1 + 1]]
            for t in range(len(P.DEVICE_TYPES))
            for s1 in (0, 1)
        }

        self.install_day = np.zeros(0, np.int32)  # day of the month each new device was installed
        self.installed_ms = np.zeros(0, np.int64)
        self.commissioned_ms = np.zeros(0, np.int64)  # -1 = not commissioned
        self.install_leave = np.zeros(0, bool)

    @property
    def new(self) -> np.ndarray:
        """Device numbers of the month's installs."""
        return np.arange(self.n, len(self.type))

    def add_installs(self, types, regions, parties, days, at, comm, il) -> None:  # noqa: ANN001
        """Append the month's new devices (outside the random-traffic pools)."""
        self.type = np.concatenate([self.type, types])
        self.region = np.concatenate([self.region, regions])
        self.party = np.concatenate([self.party, parties])
        self.install_day = np.concatenate([self.install_day, days])
        self.installed_ms = np.concatenate([self.installed_ms, at])
        self.commissioned_ms = np.concatenate([self.commissioned_ms, comm])
        self.install_leave = np.concatenate([self.install_leave, il])

    def pick(self, rng: np.random.Generator, dtype: np.ndarray, smets1: np.ndarray) -> np.ndarray:
        idx = np.empty(len(dtype), dtype=np.int64)
        for (t, s1), pool in self.pool.items():
            m = (dtype == t) & (smets1 == bool(s1))
            k = int(m.sum())
            if k:
                if len(pool) == 0:  # tiny estates: fall back to the other generation
                    pool = self.pool[(t, 1 - s1)]
                idx[m] = pool[rng.integers(0, len(pool), size=k)]
        return idx
