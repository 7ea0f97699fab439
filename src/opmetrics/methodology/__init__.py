"""The methodology: measurement rules as versioned data, validated on load.

Analysts change the YAML, not the code. `load()` turns it into typed objects and refuses a
file that is inconsistent (an unknown SRV in a process, a minimum above its target, ...).
"""

from __future__ import annotations

import datetime as dt
import hashlib
from importlib import resources
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

Mode = Literal["on-demand", "future-dated", "dcc-scheduled"]

DEFAULT_FILE = "opmetrics-2026.1.yaml"


class MethodologyError(ValueError):
    """A methodology file that cannot be used, with every problem listed."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Segments(_Strict):
    smets2_regions: list[str]
    smets1: str

    @property
    def all(self) -> list[str]:
        return [*self.smets2_regions, self.smets1]


class ReportStatus(_Strict):
    included: list[int]
    excluded_reason: str


class Payload(_Strict):
    failure_response_codes: list[str]
    failure_alert_codes: list[str]
    no_response_is_failure: bool
    success_response_codes: list[str]


class Speed(_Strict):
    exclude_quarantine_time: bool
    no_response_counts_as_late: bool
    rtt_modes: list[Mode]


class AlertRules(_Strict):
    trt_seconds: int = Field(gt=0)
    count_suppressed: bool
    undelivered_counts_as_late: bool


class Srv(_Strict):
    srv: str
    name: str
    smets1: bool
    critical: bool
    trt: dict[Mode, int]
    trt_smets1: dict[Mode, int] = {}


class Process(_Strict):
    id: str
    name: str
    smets1: bool
    srvs: list[str]


class Cpm(_Strict):
    id: str
    name: str
    target: float = Field(ge=0, le=100)
    minimum: float = Field(ge=0, le=100)
    kind: Literal["service_requests", "alerts", "processes"]
    mode: Mode | None = None
    critical: bool | None = None

    @model_validator(mode="after")
    def _minimum_below_target(self) -> Cpm:
        if self.minimum > self.target:
            raise ValueError(f"{self.id}: minimum {self.minimum} is above target {self.target}")
        return self

    def status(self, pct: float | None) -> str:
        """RAG status of an actual figure: met target, met minimum only, or below minimum."""
        if pct is None:
            return "no data"
        if pct >= self.target:
            return "target met"
        return "below target" if pct >= self.minimum else "below minimum"


class Methodology(_Strict):
    version: str
    title: str
    effective_from: dt.date
    report_timezone: str
    segments: Segments
    report_status: ReportStatus
    payload: Payload
    speed: Speed
    trt_defaults_seconds: dict[Mode, int]
    alerts: AlertRules
    srvs: list[Srv]
    processes: list[Process]
    cpms: list[Cpm]
    fingerprint: str = ""

    @model_validator(mode="after")
    def _consistent(self) -> Methodology:
        problems: list[str] = []
        known = [s.srv for s in self.srvs]
        dupes = {s for s in known if known.count(s) > 1}
        if dupes:
            problems.append(f"srvs: listed more than once: {sorted(dupes)}")
        for p in self.processes:
            missing = [s for s in p.srvs if s not in known]
            if missing:
                problems.append(f"process {p.id!r}: SRVs not in the srvs catalogue: {missing}")
        ids = [p.id for p in self.processes]
        if len(set(ids)) != len(ids):
            problems.append("processes: duplicate ids")
        missing_modes = {"on-demand", "future-dated", "dcc-scheduled"} - set(self.trt_defaults_seconds)
        if missing_modes:
            problems.append(f"trt_defaults_seconds: missing modes {sorted(missing_modes)}")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def srv(self, code: str) -> Srv | None:
        return next((s for s in self.srvs if s.srv == code), None)

    def process(self, pid: str) -> Process:
        for p in self.processes:
            if p.id == pid:
                return p
        raise KeyError(f"unknown business process {pid!r}; known: {[p.id for p in self.processes]}")

    def cpm(self, cid: str) -> Cpm:
        return next(c for c in self.cpms if c.id == cid)

    def trt_rows(self) -> list[dict[str, object]]:
        """(srv, smets, mode) -> TRT seconds for every catalogue entry, for joining to requests."""
        rows = []
        for s in self.srvs:
            for smets in (1, 2):
                table = {**s.trt, **(s.trt_smets1 if smets == 1 else {})}
                for mode, secs in table.items():
                    rows.append({"srv": s.srv, "smets": smets, "mode": mode, "trt_s": secs})
        return rows


def default_path() -> Path:
    return Path(str(resources.files("opmetrics.methodology").joinpath(DEFAULT_FILE)))


def load(path: str | Path | None = None) -> Methodology:
    """Read and validate a methodology file; errors name the file and each bad entry."""
    p = Path(path) if path else default_path()
    try:
        raw = p.read_bytes()
    except OSError as e:
        raise MethodologyError(f"{p}: cannot read methodology file ({e.strerror})") from None
    try:
        data = yaml.safe_load(raw.decode("utf-8"))
    except (UnicodeDecodeError, yaml.YAMLError) as e:
        raise MethodologyError(f"{p}: not valid UTF-8 YAML: {e}") from None
    if not isinstance(data, dict):
        raise MethodologyError(f"{p}: expected a mapping at the top level")
    data["fingerprint"] = hashlib.sha256(raw).hexdigest()
    try:
        return Methodology.model_validate(data)
    except ValidationError as e:
        lines = []
        for err in e.errors():
            where = ".".join(str(x) for x in err["loc"]) or "(top level)"
            lines.append(f"  {where}: {err['msg']}")
        raise MethodologyError(f"{p}: invalid methodology:\n" + "\n".join(lines)) from None
