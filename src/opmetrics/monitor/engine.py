"""Near-real-time monitoring (issue 8): rolling windows, rules as data, detection, root-cause
hints and alert state.

`Monitor.evaluate(now)` looks only at what was known at `now` (requests received before it,
responses sent before it), so replaying a stored day minute by minute behaves exactly like
watching it live; the tests and the backtest do that.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import statistics
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import pyarrow as pa
import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from opmetrics.engine import pmel
from opmetrics.engine.store import Store
from opmetrics.measures.records import Scope, every_request_classified
from opmetrics.methodology import Methodology

# A window of requests: received in [start, end), outcomes as known at the third time.
Window = tuple[dt.datetime, dt.datetime, dt.datetime]


def _ts(t: dt.datetime) -> str:
    return f"TIMESTAMP '{t.isoformat(sep=' ')}'"


DIMENSIONS = ("region", "smets", "device_type", "firmware_version", "srv", "party_id", "response_code")
MIN_SCORE = 0.2  # root-cause hint: excess explained minus traffic share


class Rule(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str
    kind: Literal["threshold", "spike", "silence"]
    description: str
    measure: Literal["success_pct", "error_pct", "failures", "volume", "alerts"]
    group_by: list[Literal["process", "region", "party_id", "smets", "srv"]]
    window: int = Field(gt=0, description="minutes")
    processes: list[str] | None = None
    min_volume: int = 0
    open_below: float | None = None
    open_above: float | None = None
    close_at_or_above: float | None = None
    close_at_or_below: float | None = None
    history_windows: int = 12
    min_value: float = 0
    factor: float = 4.0
    baseline_days: int = 7
    min_expected: float = 0
    open_below_share: float = 0.25
    close_at_or_above_share: float = 0.6
    confidence: float | None = Field(default=None, gt=0, lt=1)
    severity: Literal["critical", "major", "minor"]

    @model_validator(mode="after")
    def _one_threshold(self) -> Rule:
        """A threshold rule opens below a floor or above a ceiling: exactly one of them."""
        if self.kind == "threshold" and (self.open_below is None) == (self.open_above is None):
            raise ValueError(f"rule {self.id}: a threshold rule needs one of open_below, open_above")
        return self


class Rules(BaseModel):
    model_config = ConfigDict(extra="forbid")
    version: str
    evaluate_every_seconds: int = Field(gt=0)
    rules: list[Rule]


def load_rules(path: Path | None = None) -> Rules:
    p = path or Path(str(resources.files("opmetrics.monitor").joinpath("rules.yaml")))
    try:
        return Rules.model_validate(yaml.safe_load(p.read_text(encoding="utf-8")))
    except Exception as e:
        raise ValueError(f"{p}: invalid monitoring rules: {e}") from None


@dataclass
class Alert:
    alert_id: str
    rule_id: str
    scope: dict[str, Any]
    severity: str
    status: str  # open | closed
    opened_at: dt.datetime
    updated_at: dt.datetime
    closed_at: dt.datetime | None
    value: float
    expected: float | None
    message: str
    root_cause: list[dict[str, Any]] = field(default_factory=list)
    related: list[str] = field(default_factory=list)
    notified_at: dt.datetime | None = None

    def to_json(self) -> dict[str, Any]:
        d = {k: v for k, v in self.__dict__.items() if k != "notified_at"}
        for k in ("opened_at", "updated_at", "closed_at"):
            d[k] = d[k].isoformat() + "Z" if d[k] else None
        return d


_DDL = """
CREATE TABLE IF NOT EXISTS monitor_alerts (
    alert_id VARCHAR, rule_id VARCHAR, scope VARCHAR, severity VARCHAR, status VARCHAR,
    opened_at TIMESTAMP, updated_at TIMESTAMP, closed_at TIMESTAMP, value DOUBLE, expected DOUBLE,
    message VARCHAR, root_cause VARCHAR, related VARCHAR,
    PRIMARY KEY (alert_id, opened_at)
)"""


def _fails_more(rows: list[dict[str, Any]], value: str, z_min: float = 4.0) -> bool:
    """Whether `value` fails more often than the other values together, beyond chance: a
    two-proportion z-test at 4 standard errors, strict because each evaluation tries several
    dimensions and values. A system-wide fault then gives no "where" hint."""
    f1, n1 = next((r["f"], r["v"]) for r in rows if r["value"] == value)
    f2 = sum(r["f"] for r in rows) - f1
    n2 = sum(r["v"] for r in rows) - n1
    if not n1 or not n2:
        return False
    p = (f1 + f2) / (n1 + n2)
    se = (p * (1 - p) * (1 / n1 + 1 / n2)) ** 0.5
    return se > 0 and (f1 / n1 - f2 / n2) / se >= z_min


def wilson(successes: float, n: float, confidence: float) -> tuple[float, float]:
    """Wilson score interval of a proportion, in percent."""
    if n <= 0:
        return 0.0, 100.0
    z = statistics.NormalDist().inv_cdf(0.5 + confidence / 2)
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return 100.0 * max(0.0, centre - half), 100.0 * min(1.0, centre + half)


def _alert_id(rule: str, scope: dict[str, Any]) -> str:
    return hashlib.sha256(f"{rule}|{json.dumps(scope, sort_keys=True)}".encode()).hexdigest()[:12]


class Monitor:
    def __init__(self, store: Store, m: Methodology, rules: Rules, sinks: list[Any] | None = None):
        self.store, self.m, self.rules, self.sinks = store, m, rules, sinks or []
        self.open: dict[str, Alert] = {}
        self.history: list[Alert] = []
        con = store.con
        srv_proc = [{"srv": s, "process": p.id} for p in m.processes for s in p.srvs]
        con.register("_mon_srv_process", pa.Table.from_pylist(srv_proc))
        # Every request's fate (included, failed, payload failure, TRT) by the rules the report
        # applies (measures.records), as a view: live loads show in the next evaluation.
        scope = Scope(con=store.ibis(), m=m, period="", as_of=dt.datetime.max, exceptions=pmel.active(store))
        self._fates = every_request_classified(scope)  # kept: its in-memory TRT table lives with it
        self._fates.limit(0).to_pyarrow()  # registers that table with the connection
        con.execute(f"CREATE OR REPLACE TEMP VIEW _mon_requests AS {store.ibis().compile(self._fates)}")
        # Each device's firmware from its latest extract, for root-cause hints (a faulty release).
        con.execute(
            "CREATE OR REPLACE TEMP TABLE _mon_fw AS SELECT device_id, "
            "arg_max(firmware_version, extracted_at) AS firmware_version FROM devices GROUP BY device_id"
        )
        if not store.read_only:
            con.execute(_DDL)

    # --- window queries -----------------------------------------------------------------------

    def _requests_sql(self, per_process: bool = True, windows: list[Window] | None = None) -> str:
        """Included on-demand requests received in a window [start, end) with the outcome known
        at the window's `now`, and the window's index (`win`); with `per_process`, one row per
        (request, business process listing its SRV). Without `windows`, one window from the
        parameters $start, $end and $now.

        A request fails when the report counts it as an RSVP or a Payload failure (no response
        received, a communications failure code, a linked failure alert): what an operator is
        paged for under either methodology. Unanswered after its TRT, it fails so far; answered
        later, it takes its reported fate. `errored`: answered, neither its SRV's success code
        nor a failure (a rejection, the party's own error)."""
        if windows is None:
            w = "SELECT 0 AS i, $start::TIMESTAMP AS w_start, $end::TIMESTAMP AS w_end, $now::TIMESTAMP AS w_now"  # noqa: E501
            within = "s.received_at >= $start AND s.received_at < $end"
        else:
            rows = ", ".join(f"({i}, {_ts(a)}, {_ts(b)}, {_ts(n)})" for i, (a, b, n) in enumerate(windows))
            w = f"SELECT * FROM (VALUES {rows}) AS v(i, w_start, w_end, w_now)"
            within = " OR ".join(
                f"(s.received_at >= {_ts(a)} AND s.received_at < {_ts(b)})" for a, b, _ in windows
            )
        known = "s.responded_at IS NOT NULL AND s.responded_at <= w.w_now"
        overdue = "s.received_at + to_seconds(s.trt_s) <= w.w_now"
        return f"""
            SELECT w.i AS win, s.region, s.smets, s.device_type, fw.firmware_version, s.srv, s.party_id,
                   {"p.process" if per_process else "NULL AS process"},
                   s.received_at,
                   CASE WHEN {known} THEN s.failed OR s.payload_failure
                        WHEN {overdue} THEN TRUE ELSE NULL END AS failed,
                   CASE WHEN {known} THEN coalesce(s.response_code, 'no response')
                        WHEN {overdue} THEN 'timeout' ELSE NULL END AS response_code,
                   CASE WHEN {known} THEN s.has_response AND NOT s.success_code AND NOT s.payload_failure
                        ELSE NULL END AS errored,
                   CASE WHEN {known} THEN s.failed WHEN {overdue} THEN TRUE ELSE NULL END AS rsvp_failed,
                   CASE WHEN {known} THEN s.payload_failure ELSE NULL END AS payload_failed
            FROM (SELECT * FROM _mon_requests s
                  WHERE s.included AND s.mode = 'on-demand' AND ({within})) s
            JOIN ({w}) w ON s.received_at >= w.w_start AND s.received_at < w.w_end
            {"JOIN _mon_srv_process p USING (srv)" if per_process else ""}
            LEFT JOIN _mon_fw fw ON fw.device_id = s.device_id"""

    def _grouped(
        self, rule: Rule, start: dt.datetime, now: dt.datetime, end: dt.datetime | None = None
    ) -> list[dict[str, Any]]:
        """`rule`'s measure per group, over requests received in [start, end) (end: `now`) with
        what was known at `now`; also each group's RSVP and Payload failures apart."""
        return self._per_window(rule, [(start, end or now, now)])[0]

    def _per_window(self, rule: Rule, windows: list[Window]) -> list[list[dict[str, Any]]]:
        """`_grouped` for each window (start, end, now), in one query."""
        keys = "".join(f"{k}, " for k in rule.group_by)
        out: list[list[dict[str, Any]]] = [[] for _ in windows]
        if rule.measure == "alerts":
            rows = ", ".join(f"({i}, {_ts(a)}, {_ts(b)})" for i, (a, b, _) in enumerate(windows))
            sql = (
                f"SELECT w.i AS win, {keys}count(*) AS value, count(*) AS volume FROM alerts a "
                f"JOIN (SELECT * FROM (VALUES {rows}) AS v(i, w_start, w_end)) w "
                "ON a.raised_at >= w.w_start AND a.raised_at < w.w_end WHERE NOT a.suppressed GROUP BY ALL"
            )
            for r in self.store.rows(sql, {}):
                out[r.pop("win")].append(r)
            return out
        # National scope counts each request once; per process, a request counts in every
        # process that lists its SRV.
        per_process = "process" in rule.group_by or bool(rule.processes)
        sql = f"""
            WITH r AS ({self._requests_sql(per_process, windows)})
            SELECT win, {keys}count(failed) AS volume, count(*) FILTER (WHERE failed) AS failures,
                   count(errored) FILTER (WHERE errored) AS errors,
                   count(*) FILTER (WHERE rsvp_failed) AS rsvp_failures,
                   count(*) FILTER (WHERE payload_failed) AS payload_failures
            FROM r {self._process_filter(rule)} GROUP BY ALL"""
        for r in self.store.rows(sql, {}):
            v = r["volume"]
            r["value"] = {
                "success_pct": 100.0 * (v - r["failures"]) / v if v else None,
                "error_pct": 100.0 * r["errors"] / v if v else None,
                "failures": r["failures"],
                "volume": v,
            }[rule.measure]
            out[r.pop("win")].append(r)
        return out

    def _process_filter(self, rule: Rule) -> str:
        if not rule.processes:
            return ""
        ids = ", ".join(f"'{p}'" for p in rule.processes)
        return f"WHERE process IN ({ids})"

    # --- detection ----------------------------------------------------------------------------

    def evaluate(self, now: dt.datetime) -> list[tuple[str, Alert]]:
        """Evaluate every rule at `now` (naive UTC); returns (event, alert) for open, update, close."""
        events: list[tuple[str, Alert]] = []
        for rule in self.rules.rules:
            seen: set[str] = set()
            for scope, value, expected, breach, recovered in self._check(rule, now):
                aid = _alert_id(rule.id, scope)
                seen.add(aid)
                cur = self.open.get(aid)
                if cur is None and breach:
                    a = Alert(
                        aid,
                        rule.id,
                        scope,
                        rule.severity,
                        "open",
                        now,
                        now,
                        None,
                        value,
                        expected,
                        self._message(rule, scope, value, expected),
                    )
                    a.root_cause = self.root_cause(rule, scope, now)
                    a.related = self.related(scope, now - dt.timedelta(minutes=rule.window), now)
                    self.open[aid] = a
                    events.append(("open", a))
                elif cur is not None and recovered:
                    cur.status, cur.closed_at, cur.updated_at, cur.value = "closed", now, now, value
                    del self.open[aid]
                    self.history.append(cur)
                    events.append(("close", cur))
                elif cur is not None:
                    cur.updated_at, cur.value = now, value
                    if cur.notified_at is None or now - cur.notified_at >= dt.timedelta(minutes=15):
                        events.append(("update", cur))
            # A scope that vanished (no traffic any more) closes only through its own rule.
        for event, a in events:
            a.notified_at = now
            self._persist(a)
            for sink in self.sinks:
                sink.send(event, a)
        return events

    def _check(self, rule: Rule, now: dt.datetime):
        start = now - dt.timedelta(minutes=rule.window)
        if rule.kind == "threshold":
            for r in self._grouped(rule, start, now):
                v = r["value"]
                if v is None or r["volume"] < rule.min_volume:
                    continue
                scope = {k: r[k] for k in rule.group_by}
                hits = r["volume"] - r["failures"] if rule.measure == "success_pct" else r.get("errors", 0)
                lo, hi = wilson(hits, r["volume"], rule.confidence) if rule.confidence else (v, v)
                if rule.open_below is not None:
                    close = rule.close_at_or_above if rule.close_at_or_above is not None else rule.open_below
                    yield scope, v, rule.open_below, hi < rule.open_below, v >= close
                else:
                    assert rule.open_above is not None  # the rule's validator requires one or the other
                    close = rule.close_at_or_below if rule.close_at_or_below is not None else rule.open_above
                    yield scope, v, rule.open_above, lo > rule.open_above, v <= close
        elif rule.kind == "spike":
            series: dict[tuple, list[float]] = {}
            width = dt.timedelta(minutes=rule.window)
            # Oldest first; each window as it was known when it closed.
            starts = [now - width * (k + 1) for k in range(rule.history_windows, -1, -1)]
            for i, rows in enumerate(self._per_window(rule, [(a, a + width, a + width) for a in starts])):
                for r in rows:
                    key = tuple(r[g] for g in rule.group_by)
                    series.setdefault(key, [0.0] * (rule.history_windows + 1))[i] = float(r["value"] or 0)
            for key, vals in series.items():
                past, v = vals[:-1], vals[-1]
                med = statistics.median(past)
                mad = statistics.median([abs(x - med) for x in past]) or 1.0
                limit = max(med * rule.factor, med + 6 * mad, rule.min_value)
                scope = dict(zip(rule.group_by, key, strict=True))
                calm = max(med * (1 + (rule.factor - 1) / 2), rule.min_value / 2)  # hysteresis
                yield scope, v, med, v > limit, v <= calm
        else:  # silence against the same time of day on previous days
            width = dt.timedelta(minutes=rule.window)
            days = [start - dt.timedelta(days=d) for d in range(1, rule.baseline_days + 1)]
            current, *before = self._per_window(
                rule, [(start, now, now)] + [(a, a + width, a + width) for a in days]
            )
            now_rows = {tuple(r[g] for g in rule.group_by): r["value"] or 0 for r in current}
            history: dict[tuple, list[float]] = {}
            for rows in before:
                for r in rows:
                    history.setdefault(tuple(r[g] for g in rule.group_by), []).append(float(r["value"] or 0))
            for key, vals in history.items():
                if len(vals) < 3:
                    continue  # not enough history for a baseline
                expected = statistics.median(vals)
                if expected < rule.min_expected:
                    continue
                v = float(now_rows.get(key, 0))
                scope = dict(zip(rule.group_by, key, strict=True))
                yield (
                    scope,
                    v,
                    expected,
                    v < expected * rule.open_below_share,
                    v >= expected * rule.close_at_or_above_share,
                )

    def _message(self, rule: Rule, scope: dict, value: float, expected: float | None) -> str:
        where = ", ".join(f"{k} {v}" for k, v in scope.items())
        unit = "%" if rule.measure.endswith("pct") else ""
        exp = f" (expected {expected:.1f}{unit})" if expected is not None else ""
        return f"{rule.description}: {where}: {value:.1f}{unit}{exp}"

    # --- root cause ---------------------------------------------------------------------------

    def root_cause(self, rule: Rule, scope: dict[str, Any], now: dt.datetime) -> list[dict[str, Any]]:
        """Rank dimensions by the share of the excess failures their top value explains: excess =
        failures - volume x the scope's failure rate over the previous 24 hours."""
        if rule.measure in ("alerts",):
            return []
        start = now - dt.timedelta(minutes=rule.window)
        where = " AND ".join(f"{k} = ${k}" for k in scope) or "TRUE"
        params = {"start": start, "now": now, "end": now, **scope}
        per_process = "process" in scope
        flag = "errored" if rule.measure == "error_pct" else "failed"  # what the alert is about
        base = self.store.rows(
            f"WITH r AS ({self._requests_sql(per_process)}) "
            f"SELECT count({flag}) AS v, count(*) FILTER (WHERE {flag}) AS f "
            f"FROM r WHERE {where}",
            {**params, "start": now - dt.timedelta(hours=24), "now": start, "end": start},
        )[0]
        rate = base["f"] / base["v"] if base["v"] else 0.0
        out = []
        dims = [d for d in ("region", "process", *DIMENSIONS[1:]) if d not in scope]
        for dim in dims if per_process else [d for d in dims if d != "process"]:
            rows = self.store.rows(
                f"WITH r AS ({self._requests_sql(per_process)}) SELECT CAST({dim} AS VARCHAR) AS value, "
                f"count({flag}) AS v, "
                f"count(*) FILTER (WHERE {flag}) AS f FROM r WHERE {where} AND {flag} IS NOT NULL "
                "GROUP BY 1",
                params,
            )
            if len(rows) < 2:
                continue  # a dimension with one value in scope explains nothing
            excess = {r["value"]: r["f"] - rate * r["v"] for r in rows}
            total = sum(x for x in excess.values() if x > 0)
            volume = sum(r["v"] for r in rows)
            if total <= 0 or not volume:
                continue
            top = max(excess, key=lambda k: excess[k])
            share = next(r["v"] for r in rows if r["value"] == top) / volume
            explains = excess[top] / total
            if dim != "response_code" and not _fails_more(rows, top):
                continue  # the top value fails no more than the rest: chance, not a cause
            # Rank by how much more of the excess the value explains than its size alone would:
            # SMETS2 carries most traffic, so it "explains" much without saying anything.
            out.append(
                {
                    "dimension": dim,
                    "value": top,
                    "explains": round(explains, 3),
                    "traffic_share": round(share, 3),
                    "score": round(explains - share, 3),
                }
            )
        # A value must explain clearly more than its share of traffic to be a hint; when none
        # does, the cause is system-wide (see the linked incidents and outages).
        # The response code says what failed, not where: it is listed after the "where" hints,
        # by the share of the excess it explains.
        where_ = sorted(
            (x for x in out if x["dimension"] != "response_code" and x["score"] >= MIN_SCORE),
            key=lambda x: -x["score"],
        )
        what = [x for x in out if x["dimension"] == "response_code" and x["explains"] >= 0.5]
        return where_ + what

    def related(self, scope: dict[str, Any], start: dt.datetime, end: dt.datetime) -> list[str]:
        """Incidents and outages overlapping the window (and the scope's region, if any)."""
        region = scope.get("region")
        rows = self.store.rows(
            "SELECT 'incident ' || incident_id AS id FROM incidents WHERE raised_at < $end "
            "AND coalesce(resolved_at, $end) >= $start "
            "AND (region IS NULL OR $region IS NULL OR region = $region) "
            "UNION ALL SELECT 'outage ' || outage_id FROM outages WHERE start_at < $end "
            "AND coalesce(end_at, $end) >= $start "
            "AND (region IS NULL OR $region IS NULL OR region = $region) "
            "ORDER BY 1",
            {"start": start - dt.timedelta(minutes=30), "end": end, "region": region},
        )
        return [r["id"] for r in rows]

    def _persist(self, a: Alert) -> None:
        if self.store.read_only:
            return
        self.store.con.execute(
            "INSERT OR REPLACE INTO monitor_alerts VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                a.alert_id,
                a.rule_id,
                json.dumps(a.scope, sort_keys=True),
                a.severity,
                a.status,
                a.opened_at,
                a.updated_at,
                a.closed_at,
                a.value,
                a.expected,
                a.message,
                json.dumps(a.root_cause),
                json.dumps(a.related),
            ],
        )


def replay(
    monitor: Monitor, start: dt.datetime, end: dt.datetime, step_minutes: int = 1
) -> list[tuple[str, Alert]]:
    """Evaluate as if live, every `step_minutes`, from `start` to `end` (naive UTC)."""
    events = []
    t = start
    while t <= end:
        events += [(e, a) for e, a in monitor.evaluate(t)]
        t += dt.timedelta(minutes=step_minutes)
    return events
