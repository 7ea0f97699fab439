"""The methodology: measurement rules as versioned data, validated on load.

Analysts change the YAML, not the code. `load()` turns it into typed objects and refuses a
file that is inconsistent (an unknown SRV in a process, a minimum above its target, ...).
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterable
from importlib import resources
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from opmetrics.methodology.status import Status

Mode = Literal["on-demand", "future-dated", "dcc-scheduled"]
MODES: tuple[Mode, ...] = ("on-demand", "future-dated", "dcc-scheduled")

# What a DUIS response code says about a request's fate (issue 31): the User got what it asked
# for; an acknowledgement only; a failure within the DCC's control (communications failures);
# a failure or rejection due to a factor outside it; anything else.
# 003 l.278 "DCC exclude any Response Codes that indicate a failure due to a factor outside DCC".
ResponseCategory = Literal["success", "acknowledgement", "failure_dcc", "failure_outside", "other"]

DEFAULT_FILE = "opmetrics-2027.1.yaml"


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
    """How a request's outcome is read (issue 31: `rsvp_success`; 2026.4 named the codes here,
    2027.1 classifies every code in `response_codes`)."""

    failure_alert_codes: list[str]
    no_response_is_failure: bool
    # RSVP's success: "response_received" = a response reached the User, whatever its code (001
    # l.105); "no_payload_failure" = no response, a communications-failure code or a linked
    # failure alert is a failure, any other response a success (2026.4).
    rsvp_success: Literal["response_received", "no_payload_failure"] = "no_payload_failure"
    # Report statuses whose response the DSP had but the User did not receive (the "No Response
    # received" categories with a response code: 001 l.941 "No Response received (successful").
    undelivered_report_statuses: list[int] = []
    failure_response_codes: list[str] | None = None  # 2026.4 only
    success_response_codes: list[str] | None = None  # 2026.4 only


class ResponseCode(_Strict):
    category: ResponseCategory
    meaning: str
    source: str = ""


class ResponseCodes(_Strict):
    """Every DUIS response code the project can receive, classified (issue 31)."""

    source: str = ""
    # The category of a code not listed (never silently a success).
    unlisted: ResponseCategory = "other"
    codes: dict[str, ResponseCode]


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
    # Applies to SMETS1 (001 Table 4); None where the seeds do not say (SRVs outside Table 4).
    smets1: bool | None = None
    critical: bool
    trt: dict[Mode, int]
    trt_smets1: dict[Mode, int] = {}
    non_device: bool = False  # answered by the DCC itself (DUIS "Non-Device Request")
    trt_cited: list[Mode] = []  # the modes whose TRT is in the seeds' MoO table (others: defaults)
    # The response codes that mean success for this SRV (empty: the "success" category's);
    # 11.1's only response is an acknowledgement: 001 l.998 "merely an acknowledgement".
    success_codes: list[str] = []


class Attribution(_Strict):
    """Which requests of a process's SRVs belong to it (001 l.945 "Requirement 2.1.1 Table 4 Notes")."""

    rule: Literal["all", "commissioning_day", "same_day_as", "not_in", "pairs", "user_roles"] = "all"
    anchor_srv: str | None = None
    processes: list[str] = []
    pair: list[str] = []
    # commissioning_day: which day of the device counts ("commissioned": it reached Commissioned
    # that UK day, 2026.4; "installed": it was installed that day, commissioned or not).
    day_of: Literal["commissioned", "installed"] = "commissioned"
    # pairs: the two SRVs pair on the same UK day (2026.4) or within the second SRV's TRT.
    pair_within: Literal["same_day", "trt"] = "same_day"
    user_roles: list[str] = []  # user_roles: the DUIS User Roles whose requests belong

    @model_validator(mode="after")
    def _complete(self) -> Attribution:
        if self.rule == "same_day_as" and not self.anchor_srv:
            raise ValueError("rule same_day_as needs anchor_srv")
        if self.rule == "not_in" and not self.processes:
            raise ValueError("rule not_in needs processes")
        if self.rule == "pairs" and len(self.pair) != 2:
            raise ValueError("rule pairs needs exactly two SRVs in pair")
        if self.rule == "user_roles" and not self.user_roles:
            raise ValueError("rule user_roles needs user_roles")
        return self


class Process(_Strict):
    id: str
    name: str
    smets1: bool
    srvs: list[str]
    attribution: Attribution = Attribution()


class AttributionSwitch(_Strict):
    enabled: bool


class Counting(_Strict):
    dsp_retries_count_once: bool
    party_retries_count_separately: bool
    retry_window_minutes: int = Field(gt=0)
    exclude_outside_dcc_control: bool
    outside_dcc_control_codes: dict[str, str] | None = None  # 2026.4 only (2027.1: response_codes)


class Outcomes(_Strict):
    """Parameters of the outcome measures (001 section 3.4)."""

    install_leave_investigation_days: int = Field(gt=0)
    prediction_lag_days: int = Field(gt=0)
    ic2_deviation_alert_pct: float = Field(gt=0)
    # CoS1: the window in which a gaining party's later SRVs overturn a failed 6.23 ("same_day":
    # the same UK day); `followup_keys` is how a measure reads it.
    cos_followup: Literal["same_day"]
    non_communicating_days: int = Field(gt=0)
    scheduled_read_hours: int = Field(gt=0)
    topup_failure_reason_threshold_pct: float = Field(ge=0, le=100)
    local_credit_alert: str
    firmware_sla_days: int = Field(gt=0)
    firmware_ack_code: str
    firmware_success_alert: str
    firmware_failure_alert: str
    firmware_smets: list[Literal[1, 2]]
    alert_trt_seconds: int = Field(gt=0)
    # What success means to an outcome measure: "response_codes" = answered with the success
    # codes its SRV (or the measure) names; "payload" = not a payload failure (2026.4).
    success_basis: Literal["payload", "response_codes"] = "payload"
    # IC1: a Communications Hub install succeeded when it reached Commissioned ("commissioned",
    # 2026.4) and, with "meter_attached", has at least one meter joined to it.
    ch_install_success: Literal["commissioned", "meter_attached"] = "commissioned"

    @property
    def cos_followup_keys(self) -> list[str]:
        """What a 6.23 and the gaining party's later SRVs must share beyond device and party for
        those SRVs to count as its follow-up (`same_day`: the UK report date)."""
        return {"same_day": ["report_date"]}[self.cos_followup]


def rag_status(pct: float | None, target: float, minimum: float) -> Status:
    """RAG status of an actual figure: met target, met minimum only, or below minimum."""
    if pct is None:
        return Status.NO_DATA
    if pct >= target:
        return Status.TARGET_MET
    return Status.BELOW_TARGET if pct >= minimum else Status.BELOW_MINIMUM


class IncidentTimes(_Strict):
    initial_response_minutes: int | None = Field(default=None, gt=0)
    target_resolution_hours: float | None = Field(default=None, gt=0)


class IncidentTarget(_Strict):
    initial_response_minutes: int = Field(gt=0)
    target_resolution_hours: float = Field(gt=0)
    smets1: IncidentTimes = IncidentTimes()

    def response_minutes(self, smets: int | None) -> int:
        return (self.smets1.initial_response_minutes if smets == 1 else None) or self.initial_response_minutes

    def resolution_hours(self, smets: int | None) -> float:
        return (self.smets1.target_resolution_hours if smets == 1 else None) or self.target_resolution_hours


class MajorLimits(_Strict):
    cat1_per_12_months: int = Field(ge=0)
    cat2_per_month: int = Field(ge=0)


class Incidents(_Strict):
    measured_on: Literal["closed"]
    categories: dict[int, IncidentTarget]
    major_limits: MajorLimits
    ageing_days: int = Field(gt=0)

    @property
    def period_field(self) -> str:
        """The incident time that puts an incident in a period's CPM4/5/5A and category counts:
        `measured_on: closed` is its closing time,
        001 l.556 "report the Incidents closed in period instead of opened"."""
        return {"closed": "closed_at"}[self.measured_on]


class Subsystem(_Strict):
    id: str
    region: str | None = None
    description: str = ""


class Service(_Strict):
    """A DCC interface and the sub-systems it depends on (001 l.4700 "include sub-systems linked")."""

    name: str
    regional: bool
    subsystems: list[str]


class CoreHours(_Strict):
    weekdays: tuple[str, str]
    saturday: tuple[str, str]


class Availability(_Strict):
    planned_maintenance_excluded: bool
    planned_maintenance_allowance_minutes: int = Field(ge=0)
    subsystems: list[Subsystem]
    services: list[Service]
    target: float = Field(ge=0, le=100)
    minimum: float = Field(ge=0, le=100)
    core_hours: CoreHours
    bank_holidays: Literal["other", "weekday"]
    holiday_subdivision: str
    # Regions whose bank holidays follow another calendar (e.g. {North: SCT}); used when bank
    # holidays are "other" time.
    holiday_subdivisions: dict[str, str] = {}
    # A regional Service's headline: "minutes" = its unplanned minutes over its uptime, summed
    # over regions; "mean_of_regions" = the mean of the regions' percentages (2026.3).
    headline: Literal["minutes", "mean_of_regions"] = "mean_of_regions"
    # With no outages loaded: "missing_input" (no figure), or "available" (100 %, 2026.3).
    without_outages: Literal["missing_input", "available"] = "available"
    process_dependencies: dict[str, list[str]] = {}
    degraded_below_pct: float = Field(ge=0, le=100)

    def subsystem(self, sid: str) -> Subsystem | None:
        return next((x for x in self.subsystems if x.id == sid), None)

    def service(self, name: str) -> Service | None:
        return next((x for x in self.services if x.name == name), None)

    def status(self, pct: float | None) -> str:
        return rag_status(pct, self.target, self.minimum)


class Estate(_Strict):
    non_communicating_days: int = Field(gt=0)
    firmware_versions_behind_current: int = Field(ge=0)
    # Firmware versions are ranked per manufacturer and model ("model"), or per device type
    # across manufacturers ("device_type", 2026.4).
    firmware_currency_by: Literal["device_type", "model"] = "device_type"


class Timeliness(_Strict):
    due_working_days: int = Field(gt=0)
    sec_due_working_days: int = Field(gt=0)


class Smki(_Strict):
    certificate_trt_seconds: int = Field(gt=0)
    repository_trt_seconds: int = Field(gt=0)


class ServiceCredits(_Strict):
    monthly_amount_at_risk_gbp: float = Field(ge=0)
    weights: dict[str, float]


class Legs(_Strict):
    """Legs of the journey: the CSP's share of the TRT, per DUIS mode."""

    csp_trt_seconds: dict[str, float]

    def dsp_trt(self, trt_s: float, mode: str) -> float | None:
        csp = self.csp_trt_seconds.get(mode)
        return None if csp is None else max(trt_s - csp, 0.0)


class SummaryGroup(_Strict):
    name: str
    srvs: list[str]


class OpsgSummary(_Strict):
    """The OPSG summary paper's standing metrics (003)."""

    groups: list[SummaryGroup]
    dcc_alerts: list[str]
    anomaly_mad: float = Field(gt=0)
    anomaly_min_volume: int = Field(ge=1)


class Opr(_Strict):
    """Ofgem OPR view: which CPM cells, over how many months, and the score of a missing one."""

    cpms: dict[str, Literal["all"] | list[str]]
    months: int = Field(ge=1, le=36)
    missing_score: float


class League(_Strict):
    min_volume: int = Field(ge=1)
    best_in_class: Literal["max"]

    def best(self, pcts: Iterable[float | None]) -> float | None:
        """Best in class among the ranked parties' rates (`best_in_class: max`: the highest)."""
        shown = [p for p in pcts if p is not None]
        return {"max": max}[self.best_in_class](shown) if shown else None


class Publication(_Strict):
    """What each reader may see. The defaults are the seed's reading, for versions written
    before the block existed (2026.4 is kept byte for byte)."""

    confidential_measures: list[str] = ["THR1.events", "THR1.capacity"]
    # Another party's rate is withheld below this many records (and always at 100 or fewer:
    # `format.anonymised_places`).
    min_cell: int = Field(default=101, ge=1)

    def confidential(self, measure: str) -> bool:
        return measure in self.confidential_measures


class MeasureDef(_Strict):
    """An outcome measure (M) or indicator (I) of the catalogue (001 section 3.4)."""

    id: str
    process: str
    kind: Literal["M", "I"]
    definition: str
    source: str
    inputs: list[str]
    srvs: list[str] = []
    target: float | None = None
    minimum: float | None = None
    params: dict[str, float] = {}
    modes: list[Mode] = []  # the modes it counts (empty: every mode)
    alert_codes: list[str] = []  # the alerts it counts (an alert process's measure)


CpmKind = Literal[
    "service_requests",
    "alerts",
    "processes",
    "incident_resolution",
    "incident_response",
    "availability",
    "ch_firmware_delivery",
    "ch_firmware_activation",
    "smki",
    "assessments",
]


class Cpm(_Strict):
    id: str
    name: str
    target: float = Field(ge=0, le=100)
    minimum: float = Field(ge=0, le=100)
    kind: CpmKind
    source: str = ""
    mode: Mode | None = None
    critical: bool | None = None
    categories: list[int] = []
    per_category: bool = False
    service: Literal["certificate", "repository"] | None = None
    # CPM6A: the business processes the CPM text names (None: every process); the others are
    # reported with the same figures as indicators, without target or service credit.
    processes: list[str] | None = None
    # Incident CPMs: only incidents the DCC is responsible for resolving (CPM4 and CPM5's text);
    # CPM5A's text has no such filter (2027.1: false).
    responsible_only: bool = True
    # CPM6A's numerator: requests answered within the TRT ("within_trt", 2026.4), or answered
    # with a success code within it ("delivered_within_trt").
    numerator: Literal["within_trt", "delivered_within_trt"] = "within_trt"

    @model_validator(mode="after")
    def _minimum_below_target(self) -> Cpm:
        if self.minimum > self.target:
            raise ValueError(f"{self.id}: minimum {self.minimum} is above target {self.target}")
        return self

    def status(self, pct: float | None) -> str:
        return rag_status(pct, self.target, self.minimum)


class Deviation(_Strict):
    """Where a rule departs from the seed's reading (or reads a seed that is silent or
    ambiguous): what the seed says, what we do, why, and the setting that restores the seed."""

    id: str
    kind: Literal["deviation", "reading"]
    affects: list[str]  # measures, CPMs or "RSVP", "availability"
    seed: str  # citation with its verbatim quote
    rule: str
    why: str
    restore: str = ""  # "path: value" restoring the seed's reading (a deviation has one)

    @model_validator(mode="after")
    def _restorable(self) -> Deviation:
        if self.kind == "deviation" and not self.restore:
            raise ValueError(f"deviation {self.id}: says no setting restores the seed's reading")
        return self


class AlertProcess(_Strict):
    """A business process of alerts, not Service Requests (001's Alerts Management): its alert
    codes, reported by delivery within the alert SLA and in the business-process availability."""

    id: str
    name: str
    smets1: bool = True
    alert_codes: list[str]
    source: str


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
    srvs_source: str = ""
    # A request's critical flag (CPM1 counts non-critical ones): from the SRV catalogue, whatever
    # the input says ("catalogue"; the input's flag only for an SRV not in it), or from the input
    # ("input", 2026.4).
    critical_from: Literal["input", "catalogue"] = "input"
    response_codes: ResponseCodes | None = None
    processes: list[Process]
    alert_processes: list[AlertProcess] = []
    attribution: AttributionSwitch
    counting: Counting
    outcomes: Outcomes
    incidents: Incidents
    availability: Availability
    estate: Estate
    timeliness: Timeliness
    smki: Smki
    cpms: list[Cpm]
    service_credits: ServiceCredits
    legs: Legs
    opsg_summary: OpsgSummary
    opr: Opr
    league: League
    publication: Publication = Publication()
    measures: list[MeasureDef]
    deviations: list[Deviation] = []
    fingerprint: str = ""

    @model_validator(mode="before")
    @classmethod
    def _codes_of_2026(cls, data: object) -> object:
        """A 2026.4 file names its codes in payload and counting: classify them as it read them
        (its success codes, I99 among them, as success), so its figures stay as published."""
        if not isinstance(data, dict) or data.get("response_codes") is not None:
            return data
        pay, cnt = data.get("payload") or {}, data.get("counting") or {}
        codes: dict[str, dict[str, str]] = {}
        for code in pay.get("success_response_codes") or []:
            codes[code] = {"category": "success", "meaning": "success code (2026.4 payload)"}
        for code in pay.get("failure_response_codes") or []:
            codes[code] = {"category": "failure_dcc", "meaning": "communications failure (2026.4 payload)"}
        for code, why in (cnt.get("outside_dcc_control_codes") or {}).items():
            codes[code] = {"category": "failure_outside", "meaning": why}
        return {**data, "response_codes": {"codes": codes, "source": "2026.4 payload and counting"}}

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
        for g in self.opsg_summary.groups:
            missing = [s for s in g.srvs if s not in known]
            if missing:
                problems.append(f"opsg_summary group {g.name!r}: SRVs not in the srvs catalogue: {missing}")
        ids = [p.id for p in self.processes]
        if len(set(ids)) != len(ids):
            problems.append("processes: duplicate ids")
        if clash := {x.id for x in self.alert_processes} & set(ids):
            problems.append(f"alert_processes: ids {sorted(clash)} are also processes of Service Requests")
        for p in self.processes:
            a = p.attribution
            for ref in [a.anchor_srv, *a.pair]:
                if ref is not None and ref not in p.srvs:
                    problems.append(f"process {p.id!r}: attribution names SRV {ref!r} not in its srvs")
            unknown = [q for q in a.processes if q not in ids]
            if unknown:
                problems.append(f"process {p.id!r}: attribution names unknown processes {unknown}")
        measure_ids = {d.id for d in self.measures}
        unknown_c = [x for x in self.publication.confidential_measures if x not in measure_ids]
        if unknown_c:
            problems.append(f"publication.confidential_measures: unknown measures {unknown_c}")
        cpm_ids = [c.id for c in self.cpms]
        unknown_w = [k for k in self.service_credits.weights if k not in cpm_ids]
        if unknown_w:
            problems.append(f"service_credits.weights: unknown CPMs {unknown_w}")
        for c in self.cpms:
            missing_cat = [k for k in c.categories if k not in self.incidents.categories]
            if missing_cat:
                problems.append(f"cpm {c.id}: categories {missing_cat} have no incidents target")
        av = self.availability
        sub_ids = [x.id for x in av.subsystems]
        for svc in av.services:
            unknown_sub = [x for x in svc.subsystems if x not in sub_ids]
            if unknown_sub:
                problems.append(f"availability service {svc.name!r}: unknown sub-systems {unknown_sub}")
        regions = [*self.segments.smets2_regions, self.segments.smets1]
        odd = [r for r in av.holiday_subdivisions if r not in regions]
        if odd:
            problems.append(f"availability.holiday_subdivisions: {odd} are not regions ({regions})")
        svc_names = [x.name for x in av.services]
        for pid, deps in av.process_dependencies.items():
            if pid not in ids and pid not in [x.id for x in self.alert_processes]:
                problems.append(f"availability.process_dependencies: unknown process {pid!r}")
            bad_dep = [d for d in deps if d not in svc_names and d not in sub_ids]
            if bad_dep:
                problems.append(
                    f"availability.process_dependencies.{pid}: {bad_dep} are neither services nor sub-systems"
                )
        if av.minimum > av.target:
            problems.append("availability: minimum is above target")
        mids = [x.id for x in self.measures]
        if len(set(mids)) != len(mids):
            problems.append("measures: duplicate ids")
        for x in self.measures:
            bad = [s for s in x.srvs if s not in known]
            if bad:
                problems.append(f"measure {x.id!r}: SRVs not in the srvs catalogue: {bad}")
        missing_modes = {"on-demand", "future-dated", "dcc-scheduled"} - set(self.trt_defaults_seconds)
        if missing_modes:
            problems.append(f"trt_defaults_seconds: missing modes {sorted(missing_modes)}")
        listed = set(self.response_codes.codes) if self.response_codes else set()
        for s in self.srvs:
            unknown_codes = [c for c in s.success_codes if c not in listed]
            if unknown_codes:
                problems.append(f"srv {s.srv}: success_codes {unknown_codes} are not in response_codes")
        for p in self.processes:
            unstated = [c for c in p.srvs if (srv := self.srv(c)) is not None and srv.smets1 is None]
            if unstated:
                problems.append(f"process {p.id!r}: SRVs {unstated} need smets1 (001 Table 4)")
        for c in self.cpms:
            unknown_p = [q for q in c.processes or [] if q not in ids]
            if unknown_p:
                problems.append(f"cpm {c.id}: unknown processes {unknown_p}")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def srv(self, code: str) -> Srv | None:
        return next((s for s in self.srvs if s.srv == code), None)

    def codes(self, *categories: ResponseCategory) -> list[str]:
        """The listed response codes of these categories, sorted."""
        rc = self.response_codes
        return sorted(c for c, x in (rc.codes.items() if rc else []) if x.category in categories)

    def category_of(self, code: str | None) -> ResponseCategory | None:
        """A response code's category (None for no response)."""
        if code is None:
            return None
        rc = self.response_codes
        hit = rc.codes.get(code) if rc else None
        return hit.category if hit else (rc.unlisted if rc else "other")

    def success_codes_of(self, srv: str) -> list[str]:
        """The codes that mean success for an SRV: its own, else the "success" category's."""
        s = self.srv(srv)
        return list(s.success_codes) if s is not None and s.success_codes else self.codes("success")

    @property
    def every_process(self) -> list[Process | AlertProcess]:
        """The business processes of Service Requests, then those of alerts."""
        return [*self.processes, *self.alert_processes]

    def process(self, pid: str) -> Process:
        for p in self.processes:
            if p.id == pid:
                return p
        raise KeyError(f"unknown business process {pid!r}; known: {[p.id for p in self.processes]}")

    def cpm(self, cid: str) -> Cpm:
        return next(c for c in self.cpms if c.id == cid)

    def measure(self, mid: str) -> MeasureDef:
        for x in self.measures:
            if x.id == mid:
                return x
        raise KeyError(f"unknown measure {mid!r}")

    def trt_rows(self) -> list[dict[str, object]]:
        """(srv, smets, mode) -> TRT seconds for every catalogue entry, for joining to requests."""
        rows: list[dict[str, object]] = []
        for s in self.srvs:
            for smets in (1, 2):
                table = {**s.trt, **(s.trt_smets1 if smets == 1 else {})}
                for mode, secs in table.items():
                    rows.append({"srv": s.srv, "smets": smets, "mode": mode, "trt_s": secs})
        return rows

    def catalogue_rows(self) -> list[dict[str, object]]:
        """(srv, smets, mode) -> TRT seconds and the catalogue's critical flag, for every SRV in
        every mode: a mode an SRV does not list takes that mode's default TRT, so a request of a
        catalogued SRV always finds its critical flag."""
        rows: list[dict[str, object]] = []
        for s in self.srvs:
            for smets in (1, 2):
                table = {**s.trt, **(s.trt_smets1 if smets == 1 else {})}
                for mode in MODES:
                    secs = table.get(mode, self.trt_defaults_seconds[mode])
                    rows.append(
                        {"srv": s.srv, "smets": smets, "mode": mode, "trt_s": secs, "critical": s.critical}
                    )
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
        # The C loader when PyYAML has it: the same safe subset of YAML, ten times faster.
        data = yaml.load(raw.decode("utf-8"), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
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


def catalogue_markdown(m: Methodology) -> str:
    """docs/measures.md: every CPM and outcome measure with its definition and seed reference."""
    lines = [
        "# Measure catalogue",
        "",
        f"Generated from methodology {m.version} by `opmetrics measures-doc`; do not edit by hand.",
        "Seed references: 001 = `../shared/seeds/001_0a0f74c54dc85ae9.txt`, 003 = "
        "`../shared/seeds/003_f3ee2c604e5a6b7e.txt`, with line numbers.",
        "",
        "## Code Performance Measures",
        "",
        "| ID | Measure | Kind | Target | Minimum | Source |",
        "|---|---|---|---|---|---|",
    ]
    for c in m.cpms:
        lines.append(f"| {c.id} | {c.name} | {c.kind} | {c.target:g} % | {c.minimum:g} % | {c.source} |")
    lines += [
        "",
        "## Outcome measures (M) and indicators (I)",
        "",
        "| ID | Process | SRVs | M/I | Definition | Inputs | Target | Minimum | Source |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for x in m.measures:
        tgt = "–" if x.target is None else f"{x.target:g} %"
        mn = "–" if x.minimum is None else f"{x.minimum:g} %"
        lines.append(
            f"| {x.id} | {x.process} | {', '.join(x.srvs) or '–'} | {x.kind} | {x.definition} | "
            f"{', '.join(x.inputs)} | {tgt} | {mn} | {x.source} |"
        )
    lines += [
        "",
        "## Business-process attribution",
        "",
        "| Process | SRVs | Rule |",
        "|---|---|---|",
    ]
    for p in m.processes:
        a = p.attribution
        detail = {
            "same_day_as": f" (anchor {a.anchor_srv})",
            "not_in": f" ({', '.join(a.processes)})",
            "pairs": f" ({' + '.join(a.pair)})",
        }.get(a.rule, "")
        lines.append(f"| {p.name} | {', '.join(p.srvs)} | {a.rule}{detail} |")
    defaults = ", ".join(f"{k} {v:,} s" for k, v in m.trt_defaults_seconds.items())
    lines += [
        "",
        "## SRV catalogue: Target Response Times",
        "",
        "Each SRV's TRT per mode in seconds, with a SMETS1 TRT where it differs. A TRT marked * is "
        "the seeds' MoO table's for that SRV (`trt_cited`); the others are the mode's default "
        "SLA. – : the SRV lists no TRT in that mode; a request in it takes the mode's default "
        f"({defaults}). Non-device SRVs are answered by the DCC "
        "itself: a request of one addressed to no device in the inventory is kept apart "
        "(`duis_non_device`), outside the regional measures.",
        "",
        "| SRV | Name | Critical | Non-device | SMETS1 | " + " | ".join(MODES) + " |",
        "|---|---|---|---|---|" + "---|" * len(MODES),
    ]
    for srv in m.srvs:
        trt = [
            (f"{srv.trt[mode]:,}{'*' if mode in srv.trt_cited else ''}" if mode in srv.trt else "–")
            + (f" (SMETS1 {srv.trt_smets1[mode]:,})" if mode in srv.trt_smets1 else "")
            for mode in MODES
        ]
        smets1 = {True: "yes", False: "no", None: "–"}[srv.smets1]
        lines.append(
            f"| {srv.srv} | {srv.name} | {'yes' if srv.critical else 'no'} | "
            f"{'yes' if srv.non_device else 'no'} | {smets1} | " + " | ".join(trt) + " |"
        )
    av = m.availability
    lines += [
        "",
        "## Service availability: the service model",
        "",
        f"Each Service's monthly target is {av.target:g} % and minimum {av.minimum:g} %; CPM6 applies "
        f"its own per Service, region and time band. Planned maintenance allowance: "
        f"{av.planned_maintenance_allowance_minutes} minutes a month (SEC H8.4).",
        "",
        "| Service | Regional split | Depends on sub-systems |",
        "|---|---|---|",
    ]
    for svc in av.services:
        lines.append(f"| {svc.name} | {'yes' if svc.regional else 'N/A'} | {', '.join(svc.subsystems)} |")
    users: dict[str, list[str]] = {}
    for svc in av.services:
        for sub_id in svc.subsystems:
            users.setdefault(sub_id, []).append(svc.name)
    lines += ["", "| Sub-system | Region | Used by | Description |", "|---|---|---|---|"]
    for sub in av.subsystems:
        used = users.get(sub.id, [])
        shared = " (shared)" if len(used) > 1 else ""
        lines.append(
            f"| {sub.id}{shared} | {sub.region or 'all'} | "
            f"{', '.join(used) or 'process dependencies only'} | {sub.description} |"
        )
    lines += ["", "| Business process | Depends on |", "|---|---|"]
    dui = av.services[0].name if av.services else ""
    for p in m.processes:
        lines.append(f"| {p.name} | {', '.join(av.process_dependencies.get(p.id, [dui]))} |")
    return "\n".join(lines) + "\n"
