"""Per-record classification: the rule that included or excluded each record, and its outcome.

Every aggregate in opmetrics is a GROUP BY over these expressions, so any published figure can
be traced back to the records and the methodology rules that produced it (`opmetrics explain`).
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

import ibis
from ibis import _

from opmetrics.engine.backends import Backend, backend_of
from opmetrics.engine.pmel import PmelException
from opmetrics.methodology import Methodology


def month_bounds(period: str) -> tuple[dt.date, dt.date]:
    """First and last UK calendar day of a `YYYY-MM` period."""
    try:
        y, m = (int(x) for x in period.split("-"))
        first = dt.date(y, m, 1)
    except ValueError:
        raise ValueError(f"period must look like 2026-10, got {period!r}") from None
    nxt = dt.date(y + (m == 12), m % 12 + 1, 1)
    return first, nxt - dt.timedelta(days=1)


def uk_midnight_utc(day: dt.date, tz: str = "Europe/London") -> dt.datetime:
    """The naive-UTC instant at which a UK calendar day starts (stored times are naive UTC)."""
    local = dt.datetime(day.year, day.month, day.day, tzinfo=ZoneInfo(tz))
    return local.astimezone(dt.UTC).replace(tzinfo=None)


@dataclass
class Scope:
    """What one computation sees: the backend, the rules, the period and the report time."""

    con: Any
    m: Methodology
    period: str
    as_of: dt.datetime  # naive UTC: "now" for SLA-not-yet-elapsed categories
    exceptions: list[PmelException] = field(default_factory=list)
    # When true, shared intermediate tables (classified requests, attribution, latest devices)
    # are computed once per run into tables (TEMP, or `scratch`) instead of being re-evaluated
    # by every measure that uses them. Results are identical either way (tested).
    materialise: bool = False
    # Limit the request and alert records to these UK days (re-reducing late or corrected days).
    days: tuple[dt.date, ...] | None = None
    # On a writable DuckDB store: keep the cached tables as ordinary tables of the database
    # (prefix SCRATCH, dropped by `release`), not TEMP ones: DuckDB compresses those as it
    # writes them, so they take far less memory and scan faster (docs/performance.md, Design
    # choices measured).
    scratch: bool = False
    _cache: dict[str, ibis.Table] = field(default_factory=dict, repr=False)
    # key -> its TEMP or scratch table (on Spark: the temporary view of each checkpointed DataFrame)
    _tables: dict[str, str] = field(default_factory=dict, repr=False)
    _unordered: int = field(default=0, repr=False)  # depth of `unordered` blocks

    @property
    def backend(self) -> Backend:
        """How this engine keeps and drops intermediates (engine/backends.py)."""
        return backend_of(self.con)

    def cached(self, key: str, build: Callable[[], ibis.Table]) -> ibis.Table:
        """`build()`, evaluated once per Scope and kept when `materialise` is set (a TEMP or
        scratch table on DuckDB, a checkpointed DataFrame on Spark); else the expression itself."""
        if key in self._cache:  # made earlier, or given to `keep`
            return self._cache[key]
        if not self.materialise:
            return build()
        self._cache[key], self._tables[key] = self.backend.keep(key, build, self.scratch)
        return self._cache[key]

    def is_materialised(self, key: str) -> bool:
        """Whether `cached(key, ...)` has written its table (or cached its Spark DataFrame), so
        that reading part of it again costs less than evaluating it again."""
        return key in self._tables

    def keep(self, key: str, expr: ibis.Table) -> ibis.Table:
        """Answer `cached(key, ...)` with `expr` as it is, making no table (an expression that
        is as cheap to read as a copy of it would be)."""
        self._cache[key] = expr
        return expr

    @contextlib.contextmanager
    def unordered(self) -> Iterator[None]:
        """For queries whose row order means nothing (a GROUP BY read into Python, or one with
        its own ORDER BY): the engine need not keep it, which lets DuckDB's joins spill."""
        outer = not self._unordered
        with self.backend.unordered() if outer else contextlib.nullcontext():
            self._unordered += 1
            try:
                yield
            finally:
                self._unordered -= 1

    def forget(self, key: str) -> None:
        """Drop one table made by `cached` before the run ends (a measure's own large
        intermediate, so that its temporary storage is freed for the measures after it)."""
        t = self._cache.pop(key, None)
        if t is None or key not in self._tables:  # never made, or an expression given to `keep`
            return
        self.backend.drop(t, self._tables.pop(key), self.scratch)

    def release(self) -> None:
        """Drop what `cached` kept; forget the expressions given to `keep`."""
        for key, handle in self._tables.items():
            self.backend.drop(self._cache[key], handle, self.scratch)
        self._tables.clear()
        self._cache.clear()

    @property
    def first(self) -> dt.date:
        return month_bounds(self.period)[0]

    @property
    def last(self) -> dt.date:
        return month_bounds(self.period)[1]

    def day_start(self, day: dt.date) -> dt.datetime:
        return uk_midnight_utc(day, self.m.report_timezone)

    def uk_day(self, ts: ibis.Value, pad_days: int = 0) -> ibis.Value:
        """UK calendar day of a naive-UTC timestamp, for days in the period (+/- pad), else null.

        A CASE over the period's UK midnights: portable to any Ibis backend, no time zone
        support needed in the engine.
        """
        days = [
            self.first + dt.timedelta(days=i)
            for i in range(-pad_days, (self.last - self.first).days + 2 + pad_days)
        ]
        starts = [self.day_start(d) for d in days]
        branches = [
            ((ts >= starts[i]) & (ts < starts[i + 1]), ibis.literal(days[i], "date"))
            for i in range(len(days) - 1)
        ]
        return ibis.cases(*branches, else_=ibis.null("date"))


def _pmel_match(t: ibis.Table, e: PmelException, time_col: str) -> ibis.Value:
    cond = ibis.literal(True)
    if e.window_start is not None:
        cond &= t[time_col] >= e.window_start
    if e.window_end is not None:
        cond &= t[time_col] < e.window_end
    for col in ("region", "party_id", "srv", "device_id"):
        val = getattr(e, col)
        if val is not None and col in t.columns:
            cond &= t[col] == val
    if e.request_ids and "request_id" in t.columns:
        cond &= t.request_id.isin(e.request_ids)
    return cond


def _pmel_rule(t: ibis.Table, exceptions: list[PmelException], time_col: str) -> ibis.Value:
    if not exceptions:
        return ibis.null("string")
    return ibis.cases(*[(_pmel_match(t, e, time_col), e.rule) for e in exceptions], else_=ibis.null("string"))


def requests_in_period(s: Scope) -> ibis.Table:
    sr = s.con.table("service_requests")
    return in_scope(s, sr)


def in_scope(s: Scope, t: ibis.Table, day: str = "report_date") -> ibis.Table:
    """Rows whose `day` falls in the period (and in `s.days`, when a reduction names days)."""
    t = t.filter(t[day].between(s.first, s.last))
    return t if s.days is None else t.filter(t[day].isin(list(s.days)))


def classified_requests(s: Scope, table: ibis.Table | None = None) -> ibis.Table:
    """service_requests with inclusion rule, payload outcome, RTT and TRT per record."""
    if table is not None:
        return _classify_requests(s, table)
    alone = s.m.counting.party_retries_count_separately  # else the chains are collapsed first
    if s.materialise and alone and "classified_requests" not in s._cache:
        # Only the lookups (TRT, failure alert, record key) and the two flags every measure
        # reads are kept as a table: the other columns are each a function of one row,
        # computed as they are read (docs/performance.md, Design choices measured).
        looked_up = s.cached("looked_up_requests", lambda: _flags(s, _lookups(s, requests_in_period(s))))
        return s.keep("classified_requests", _classify(s, looked_up))
    return s.cached("classified_requests", lambda: _classify_requests(s, requests_in_period(s)))


def outcome_requests(s: Scope) -> ibis.Table:
    """The period's included requests as the outcome measures count them: `failed` is their
    outcome failure (`outcome_failed`, `outcomes.success_basis`), not RSVP's."""
    t = classified_requests(s).filter(ibis._.included)
    return t.mutate(failed=t.outcome_failed)


def every_request_classified(s: Scope) -> ibis.Table:
    """Every stored request, whatever its day, classified by the same rules as a period's
    (`classified_requests`; `s.period` is not read): monitoring's windows cross periods and
    must count a request's fate as the report will."""
    return _classify(s, _lookups(s, s.con.table("service_requests"), any_period=True))


def fate_cube(s: Scope) -> ibis.Table:
    """The scope's requests counted per day by the rule that included or excluded them (`rule`
    of `classified_requests`): the run summary's "included" count and the exclusions beside it,
    kept per day so that a month end adds up its days instead of reading the month's records.
    Read from each row alone where inclusion allows (no lookups), else from the classification."""
    if s.m.counting.party_retries_count_separately:
        t = requests_in_period(s)
        t = t.mutate(rule=inclusion_rule(s, t))
    else:
        t = classified_requests(s)
    return t.group_by(["report_date", "rule"]).aggregate(n=t.count())


def fate_counts(s: Scope, days: ibis.Table | None = None) -> dict[str, int]:
    """The period's requests by fate (`fate_cube`), from its stored days when given."""
    t = in_scope(s, days) if days is not None else fate_cube(s)
    rows = t.group_by("rule").aggregate(n=t.n.sum()).to_pyarrow().to_pylist()
    return {r["rule"]: int(r["n"]) for r in sorted(rows, key=lambda r: r["rule"])}


def has_classified_copy(s: Scope) -> bool:
    """Whether the classified requests are read from a table of this run's (so that reading a
    part of them costs less than classifying those rows again)."""
    return s.is_materialised("classified_requests") or s.is_materialised("looked_up_requests")


def _classify_requests(s: Scope, sr: ibis.Table) -> ibis.Table:
    return _classify(s, _lookups(s, sr))


def _lookups(s: Scope, sr: ibis.Table, any_period: bool = False) -> ibis.Table:
    """The requests with what classifying them looks up in other tables: the TRT (`trt_s`),
    whether a failure alert is linked (`_alert_failure`), and the record key (`_rec`).
    `any_period`: `sr` may hold requests of any day, so failure alerts are looked up by
    request_id among all stored alerts, not among the period's links."""
    t = with_trt(s, sr)
    # One integer per stored record (its file and row): joins between a request and its
    # processes use it, not the long request_id text (half the cost at national volume).
    rec = record_key(t)
    if any_period:
        a = s.con.table("alerts")
        codes = s.m.payload.failure_alert_codes
        linked = t.request_id.isin(a.filter(a.alert_code.isin(codes)).request_id)
    else:
        linked = rec.isin(failure_links(s)._rec)
    return t.mutate(_rec=rec, _alert_failure=linked)


def with_trt(s: Scope, t: ibis.Table) -> ibis.Table:
    """`t` (srv, smets, mode) with the TRT that applies (`trt_s`, seconds): the SRV's own, else
    its mode's default. With `critical_from: catalogue`, `critical` is the catalogue's flag
    (the input's kept only for an SRV the catalogue does not have)."""
    m = s.m
    rows = m.catalogue_rows() if m.critical_from == "catalogue" else m.trt_rows()
    trt = ibis.memtable(rows).rename(trt_srv="srv", trt_smets="smets", trt_mode="mode")
    if "critical" in trt.columns:
        trt = trt.rename(_cat_critical="critical")
    t = t.left_join(trt, [t.srv == trt.trt_srv, t.smets == trt.trt_smets, t.mode == trt.trt_mode]).drop(
        "trt_srv", "trt_smets", "trt_mode"
    )
    if "_cat_critical" in t.columns:
        own = t.critical if "critical" in t.columns else ibis.null("boolean")
        t = t.mutate(critical=t._cat_critical.coalesce(own)).drop("_cat_critical")
    default_trt = ibis.cases(
        *[(t.mode == mode, secs) for mode, secs in m.trt_defaults_seconds.items()], else_=None
    )
    return t.mutate(trt_s=t.trt_s.coalesce(default_trt))


def within_trt_of(rtt_ms: ibis.Value, trt_s: ibis.Value) -> ibis.Value:
    """Whether a round trip met its TRT: at the TRT exactly is on time, 1 ms over is late."""
    return rtt_ms <= trt_s * 1000


def _flags(s: Scope, t: ibis.Table) -> ibis.Table:
    """Looked-up requests (`_lookups`) with `included`, `failed` (RSVP's) and `outcome_failed`
    (the outcome measures'): the columns nearly every measure filters or counts by, kept with the
    lookups in a classified copy."""
    status_ok, pmel, outside = _inclusion(s, t)
    return t.mutate(
        included=status_ok & pmel.isnull() & ~outside,
        failed=rsvp_failed(s, t, t._alert_failure),
        outcome_failed=outcome_failed(s, t, t._alert_failure),
    )


def received(s: Scope, t: ibis.Table) -> ibis.Value:
    """Whether a response reached the User: one was sent, and its report status does not say it
    stopped at the gateway (`payload.undelivered_report_statuses`)."""
    sent = t.responded_at.notnull()
    held = s.m.payload.undelivered_report_statuses
    return sent if not held else sent & ~in_ranges(t.report_status, held)


def payload_failure(s: Scope, t: ibis.Table, alert_failure: ibis.Value) -> ibis.Value:
    """The Payload definition's failure, a failure_dcc response code or a linked failure alert
    (N12/N13): 001 l.100 "A failure is recorded when a Service Response contains an Error"."""
    comms = t.response_code.isin(s.m.codes("failure_dcc") or ["-"]).fill_null(False)
    return comms | alert_failure


def rsvp_failed(s: Scope, t: ibis.Table, alert_failure: ibis.Value) -> ibis.Value:
    """RSVP's failure (`payload.rsvp_success`): no response received, and in 2026.4's reading a
    payload failure too. 001 l.105 "If Users don't receive a response, this would count as a failure"."""
    p = s.m.payload
    missing = ~received(s, t) if p.no_response_is_failure else ibis.literal(False)
    if p.rsvp_success == "response_received":
        return missing
    return payload_failure(s, t, alert_failure) | missing


def success_code(s: Scope, t: ibis.Table) -> ibis.Value:
    """Whether a request was answered with a code that means success for its SRV (the catalogue's
    `success_codes`, else the "success" category: I0; 11.1's acknowledgement I99), from its own
    row."""
    m = s.m
    default = m.codes("success") or ["-"]
    own = {x.srv: tuple(x.success_codes) for x in m.srvs if x.success_codes}
    code = t.response_code
    if not own:
        ok = code.isin(default)
    else:
        by_codes: dict[tuple[str, ...], list[str]] = {}
        for srv, codes in own.items():
            by_codes.setdefault(codes, []).append(srv)
        ok = ibis.cases(
            *[(t.srv.isin(srvs), code.isin(list(codes))) for codes, srvs in by_codes.items()],
            else_=code.isin(default),
        )
    return t.responded_at.notnull() & ok.fill_null(False)


def outcome_failed(s: Scope, t: ibis.Table, alert_failure: ibis.Value) -> ibis.Value:
    """An outcome measure's failure (`outcomes.success_basis`): not answered with a success code
    of its SRV ("response_codes"), or RSVP's 2026.4 failure ("payload")."""
    if s.m.outcomes.success_basis == "payload":
        p = s.m.payload
        missing = t.responded_at.isnull() if p.no_response_is_failure else ibis.literal(False)
        return payload_failure(s, t, alert_failure) | missing
    return ~success_code(s, t)


def _classify(s: Scope, t: ibis.Table) -> ibis.Table:
    """Looked-up requests (`_lookups`), flagged or not (`_flags`), with every column of their
    classification."""
    m = s.m
    if "included" not in t.columns:
        t = _flags(s, t)
    has_response = received(s, t)
    comms_failure = t.response_code.isin(m.codes("failure_dcc") or ["-"]).fill_null(False)
    t = t.mutate(
        rule=inclusion_rule(s, t),
        segment=t.region,
        rtt_ms=_rtt_ms(s, t),
        has_response=has_response,
        success_code=success_code(s, t),
        payload_failure=payload_failure(s, t, t._alert_failure),
        failure_reason=_failure_reason(s, t, comms_failure),
        response_category=response_category(s, t, has_response, comms_failure),
        speed_counted=_speed_counted(s, t),
        # DSP automatic retries: one request (and success if any attempt succeeded), or each
        # attempt counted, all but the last as failures (counting.dsp_retries_count_once).
        count_weight=ibis.literal(1) if m.counting.dsp_retries_count_once else t.dsp_attempts,
    )
    late_if_missing = ibis.literal(not m.speed.no_response_counts_as_late)
    t = t.mutate(
        within_trt=ibis.ifelse(_.has_response, within_trt_of(_.rtt_ms, _.trt_s), late_if_missing),
        extra_failures=_.count_weight - 1,
    )
    t = t.drop("_alert_failure")
    if not m.counting.party_retries_count_separately:
        t = collapse_party_retries(s, t)
    return t


# The four response categories of 001 l.941-944 "No Response received (successful response code)"
# (and l.990-993 for B1), in the order the seed lists them.
CATEGORIES = (
    "no response received: success code",
    "no response received: other code",
    "response received: success code",
    "response received: other code",
)


def response_category(
    s: Scope, t: ibis.Table, has_response: ibis.Value, comms_failure: ibis.Value
) -> ibis.Value:
    """A request's response category: the four of 001 l.941 "No Response received (successful"
    and the three after it (a success code is its SRV's, `success_code`), or with
    `payload.rsvp_success: no_payload_failure` 2026.4's four (no response; a success code; a
    communications failure code; another code)."""
    ok = success_code(s, t)
    if s.m.payload.rsvp_success == "no_payload_failure":
        return ibis.cases(
            (~has_response, "no response"),
            (ok, "response: success code"),
            (comms_failure, "response: communications failure code"),
            else_="response: other code",
        )
    return ibis.cases(
        (has_response & ok, CATEGORIES[2]),
        (has_response, CATEGORIES[3]),
        (ok, CATEGORIES[0]),
        else_=CATEGORIES[1],
    )


def _failure_reason(s: Scope, t: ibis.Table, comms_failure: ibis.Value) -> ibis.Value:
    """Why an outcome measure counts a request as failed (null when it does not): no response,
    or the response code; 2026.4's basis names a linked failure alert too."""
    no_response = t.responded_at.isnull()
    if s.m.outcomes.success_basis == "payload":
        return ibis.cases(
            (comms_failure, ibis.literal("response code ") + t.response_code),
            (t._alert_failure, ibis.literal("failure alert (N12/N13) linked to request")),
            (no_response, ibis.literal("no response")),
            else_=None,
        )
    return ibis.cases(
        (no_response, ibis.literal("no response")),
        (~success_code(s, t), ibis.literal("response code ") + t.response_code),
        else_=None,
    )


def _rtt_ms(s: Scope, t: ibis.Table) -> ibis.Value:
    """Round-trip time in milliseconds (null without a response); quarantine time excluded
    if the methodology says so."""
    start = t.received_at
    if s.m.speed.exclude_quarantine_time:
        start = t.quarantine_released_at.coalesce(t.received_at)
    return t.responded_at.delta(start, unit="millisecond")


def _speed_counted(s: Scope, t: ibis.Table) -> ibis.Value:
    """Whether a request's RTT counts in Speed: its mode is measured and it was answered."""
    return t.mode.isin(s.m.speed.rtt_modes) & received(s, t)


def speed_requests(s: Scope) -> ibis.Table:
    """The period's included, speed-counted requests with `segment` and `rtt_ms`: the RTT
    histogram needs no TRT, payload or failure-alert lookup (`included_requests`)."""
    t = included_requests(s, None, lambda r: _speed_counted(s, r))
    return t.mutate(segment=t.region, rtt_ms=_rtt_ms(s, t))


def srv_in(t: ibis.Table, srvs: Sequence[str]) -> ibis.Value:
    """`t.srv.isin(srvs)`, with the range of `srvs` it implies: DuckDB reads a range filter
    into the scan itself, so a pass over the requests reads the other columns for the rows in
    the range alone, where a list filter is applied after reading every row."""
    ordered = sorted(srvs)
    if not ordered:
        return ibis.literal(False)
    return t.srv.between(ordered[0], ordered[-1]) & t.srv.isin(ordered)


def included_requests(
    s: Scope, srvs: Sequence[str] | None, keep: Callable[[ibis.Table], ibis.Value] | None = None
) -> ibis.Table:
    """The period's included requests of `srvs` (None: of every SRV) that `keep` (if given)
    selects, with the input's columns alone: read from their own rows where inclusion allows
    (no TRT, payload or failure-alert lookup, which a left join keeps in a query even when
    nothing reads it), else from the classified requests."""

    def wanted(t: ibis.Table) -> ibis.Value:
        w = ibis.literal(True) if srvs is None else srv_in(t, srvs)
        return w if keep is None else w & keep(t)

    if not has_classified_copy(s):
        sr = requests_in_period(s)
        sr = sr.filter(wanted(sr))
        included = included_alone(s, sr)
        if included is not None:
            return sr.filter(included)
    t = classified_requests(s)
    return t.filter(t.included & wanted(t))


def _inclusion(s: Scope, t: ibis.Table) -> tuple[ibis.Value, ibis.Value, ibis.Value]:
    """What includes a request, reading its own row alone: its report status is counted, the
    PMEL exception that excludes it (null if none), its response code is outside DCC control."""
    m = s.m
    status_ok = in_ranges(t.report_status, m.report_status.included)
    outside_codes = m.codes("failure_outside")
    outside = (
        t.response_code.isin(outside_codes).fill_null(False)
        if m.counting.exclude_outside_dcc_control and outside_codes
        else ibis.literal(False)
    )
    return status_ok, _pmel_rule(t, s.exceptions, "received_at"), outside


INCLUDED_RULE = "included: report status in reporting set"


def inclusion_rule(s: Scope, t: ibis.Table) -> ibis.Value:
    """The rule that includes or excludes each request, as text (the first that applies):
    its report status, a PMEL exception, a response code outside DCC control."""
    status_ok, pmel, outside = _inclusion(s, t)
    return ibis.cases(
        (
            ~status_ok,
            ibis.literal("excluded: report status ")
            + t.report_status.cast("string")
            + ' not in reporting (001 l.598 "Included in Reporting")',
        ),
        (pmel.notnull(), pmel),
        (
            outside,
            ibis.literal("excluded: response code ") + t.response_code + " is outside DCC control (003)",
        ),
        else_=ibis.literal(INCLUDED_RULE),
    )


def in_ranges(col: ibis.Value, values: list[int]) -> ibis.Value:
    """`col.isin(values)` for integers, as comparisons with the runs of consecutive values:
    DuckDB makes a join of a list of more than a few values."""
    runs: list[list[int]] = []
    for v in sorted(set(values)):
        if runs and v == runs[-1][1] + 1:
            runs[-1][1] = v
        else:
            runs.append([v, v])
    if not runs:
        return ibis.literal(False)
    tests = [col == lo if lo == hi else col.between(lo, hi) for lo, hi in runs]
    return ibis.or_(*tests).fill_null(False)


def included_alone(s: Scope, t: ibis.Table) -> ibis.Value | None:
    """Whether each request of `t` is included, where that reads its own row alone (when party
    resends count separately); None when resends are collapsed into chains first."""
    if not s.m.counting.party_retries_count_separately:
        return None
    status_ok, pmel, outside = _inclusion(s, t)
    return status_ok & pmel.isnull() & ~outside


def failure_links(s: Scope) -> ibis.Table:
    """Each failure alert (N12/N13) linked to a request of the period: the request's record
    key (`_rec`) and UK day, and the alert's record key (`_alert`). Computed once per run, for
    the requests to look their failure up by an integer, not the long request_id text, and for
    the days' fingerprints (a late failure alert changes its request's day)."""

    def build() -> ibis.Table:
        a = s.con.table("alerts")
        a = a.filter(a.alert_code.isin(s.m.payload.failure_alert_codes) & a.request_id.notnull())
        a = a.select(_rid=a.request_id, _alert=record_key(a))
        r = requests_in_period(s)
        r = r.select("request_id", "report_date", _rec=record_key(r))
        # request_id is the requests' key (the contract): an alert meets one request at most
        j = a.inner_join(r, a._rid == r.request_id)
        return j.select("_rec", "report_date", "_alert")

    return s.cached("failure_links", build)


def record_key(t: ibis.Table) -> ibis.Value:
    """A stored record's file and row as one integer (rows of a file stay below 2**32)."""
    return t._file_id.cast("int64") * 4_294_967_296 + t._row.cast("int64")


CHAIN_KEYS = ["party_id", "device_id", "srv"]


def alone_and_repeated(t: ibis.Table, repeated: ibis.Table | None = None) -> tuple[ibis.Table, ibis.Table]:
    """The sends with no other of their SRV, party and device in `t`, and the rest, told apart
    by `repeated` (`repeated_chain_hashes(t)`, computed here unless given)."""
    if repeated is None:
        repeated = repeated_chain_hashes(t)
    h = t.mutate(_h=chain_hash(t))
    return h.anti_join(repeated, "_h").drop("_h"), h.semi_join(repeated, "_h").drop("_h")


def attempt_chains(s: Scope, t: ibis.Table) -> ibis.Table:
    """Number each request within its chain of SEC Party resends (003; PP1 attempts table).

    A chain is the same SRV from the same party to the same device; a new chain starts after
    a success or when more than `retry_window_minutes` passed since the previous send. A send
    with no other of its SRV, party and device in the period is a chain of one, numbered
    without the window functions (most sends at national volume: it saves sorting them).
    """
    alone, repeated = alone_and_repeated(t)
    single = alone.mutate(
        chain_no=ibis.literal(1, "int64"),
        attempt_no=ibis.literal(1, "int64"),
        chain_size=ibis.literal(1, "int64"),
        chain_succeeded=~ibis._.failed,
    )
    chained = number_chains(s, repeated)
    return chained.union(single.select(*chained.columns).cast(chained.schema()))


def chain_hash(t: ibis.Table) -> ibis.Value:
    """An integer per chain key (party, device, SRV). Keys that share one are only sorted into
    chains together with their exact keys, so a collision costs time, never a wrong chain."""
    return t.party_id.hash() ^ t.device_id.hash() ^ t.srv.hash()


def repeated_chain_hashes(t: ibis.Table) -> ibis.Table:
    """`_h` of the chain keys sent more than once in `t` (hashes of keys sent once are not)."""
    k = t.select(_h=chain_hash(t))
    return k.group_by("_h").aggregate(_n=k.count()).filter(ibis._._n > 1).select("_h")


def chain_outcomes(
    s: Scope,
    t: ibis.Table,
    key: str = "request_id",
    carry: Sequence[str] = (),
    repeated: ibis.Table | None = None,
) -> ibis.Table:
    """One row per chain of resends: its first send's `key` (as `head_id`), the attempt that
    first succeeded (`won`, null if none) and the first send's `carry` columns, for "success on
    which attempt" (ATT1, PP1).

    A send whose chain key no other send shares (most sends at national volume) is its own
    chain, won at once or never. Those are told apart by a grouping of one integer per send
    (`repeated`: `repeated_chain_hashes(t)`, given when the caller keeps it as a table, since
    it is read twice); only the other sends are sorted into chains, by their exact keys, and
    grouping one integer costs less than grouping the three text keys.
    """
    carry = list(dict.fromkeys(carry))
    alone, sends = alone_and_repeated(t, repeated)
    first_time = ibis.ifelse(alone.failed, ibis.null("int64"), ibis.literal(1, "int64"))
    single = alone.select(head_id=alone[key], won=first_time, **{c: alone[c] for c in carry})
    sends = sends.select(*dict.fromkeys([key, "request_id", *CHAIN_KEYS, "received_at", "failed", *carry]))
    c = number_chains(s, sends, sizes=False)
    # One grouping, no self-join: a chain has exactly one first attempt.
    first = c.attempt_no == 1
    j = c.group_by([*CHAIN_KEYS, "chain_no"]).aggregate(
        head_id=c[key].max(where=first),
        won=c.attempt_no.min(where=~c.failed),
        **{f"_c_{x}": c[x].max(where=first) for x in carry},
    )
    chained = j.select(head_id=j.head_id, won=j.won.cast("int64"), **{x: j[f"_c_{x}"] for x in carry})
    return chained.union(single.cast(chained.schema()))


def number_chains(s: Scope, t: ibis.Table, sizes: bool = True, weight: str | None = None) -> ibis.Table:
    """Number each send's chain and attempt; with `sizes`, each chain's size and success.

    `weight`: a column counting each row as that many attempts (a chain carried from an earlier
    day stands as one failed row of its attempts so far); the attempt number is then the running
    sum of weights from the chain's start."""
    t = number_attempts(chain_starts(s, t, weight), weight)
    if not sizes:
        return t
    cg = ibis.window(group_by=[*(t[k] for k in CHAIN_KEYS), t.chain_no])
    return t.mutate(
        chain_size=t.count().over(cg),
        chain_succeeded=(~t.failed).cast("int64").max().over(cg) == 1,
    )


def _key_order(t: ibis.Table) -> dict[str, Any]:
    """The window of a chain key's sends in the order sent (both sorts of `number_chains`)."""
    return {"group_by": [t[k] for k in CHAIN_KEYS], "order_by": [t.received_at, t.request_id]}


def chain_starts(s: Scope, t: ibis.Table, weight: str | None = None) -> ibis.Table:
    """`number_chains`' first sort: each send with `_new_chain` (1 where a chain starts: its
    key's first send, or the one before succeeded or came more than the window before) and
    `_send_no` (its key's running count of sends, or of `weight`). A send that starts a chain
    and succeeded is a whole chain won at once; the other sends' chains are the same whether
    those are numbered with them or not (`number_attempts`)."""
    window_ms = s.m.counting.retry_window_minutes * 60_000
    w = ibis.window(**_key_order(t))
    prev_failed = t.failed.lag().over(w)
    prev_at = t.received_at.lag().over(w)
    if weight is None:
        send_no = ibis.row_number().over(w)
    else:
        send_no = t[weight].sum().over(ibis.cumulative_window(**_key_order(t))).cast("int64")
    return t.mutate(
        _new_chain=(
            prev_failed.isnull()
            | ~prev_failed
            | (t.received_at.delta(prev_at, unit="millisecond") > window_ms)
        ).cast("int64"),
        _send_no=send_no,
    )


def number_attempts(t: ibis.Table, weight: str | None = None) -> ibis.Table:
    """`number_chains`' second sort, over `chain_starts`' sends: `chain_no` (the chain within
    its key) and `attempt_no` (from the send that started the chain)."""
    # The attempt number counts from the send that started the chain: two sorts of the sends
    # (`chain_starts`' and the running sums below), not a third one per chain. Weighted, a
    # chain starting at a row counts from the attempts before it, plus one.
    before = t._send_no if weight is None else t._send_no - t[weight] + 1
    running = ibis.cumulative_window(**_key_order(t))
    t = t.mutate(
        chain_no=t._new_chain.sum().over(running),
        _chain_start=ibis.ifelse(t._new_chain == 1, before, None).max().over(running),
    )
    return t.mutate(attempt_no=t._send_no - t._chain_start + 1).drop("_new_chain", "_send_no", "_chain_start")


def collapse_party_retries(s: Scope, t: ibis.Table) -> ibis.Table:
    """Count a chain of resends once, at its last send, successful if any send was. A party
    resends because the outcome failed, so the chains follow `outcome_failed`; the chain's RSVP
    failure is that no send of it was answered (2026.4: the two are the same)."""
    inc = t.filter(t.included)
    inc = attempt_chains(s, inc.mutate(failed=inc.outcome_failed, _rsvp_failed=inc.failed))
    chain = ibis.window(group_by=[*[inc[k] for k in CHAIN_KEYS], inc.chain_no])
    rsvp_ok = (~inc._rsvp_failed).cast("int64").max().over(chain) == 1
    last = inc.attempt_no == inc.chain_size
    inc = inc.mutate(
        included=last,
        rule=ibis.ifelse(last, inc.rule, "excluded: a resend in a chain counted once (counting rule)"),
        failed=~rsvp_ok,
        outcome_failed=~inc.chain_succeeded,
    ).drop("attempt_no", "chain_size", "chain_succeeded", "chain_no", "_rsvp_failed")
    return inc.union(t.filter(~t.included))


def classified_alerts(s: Scope, table: ibis.Table | None = None) -> ibis.Table:
    """alerts with CPM3 inclusion rule and delivery time per record.

    Never cached: classifying an alert reads only its own row, so a scan of the stored alerts
    costs less than writing a classified copy of them.
    """
    return _classify_alerts(s, in_scope(s, s.con.table("alerts")) if table is None else table)


def _classify_alerts(s: Scope, a: ibis.Table) -> ibis.Table:
    m = s.m
    pmel = _pmel_rule(a, s.exceptions, "raised_at")
    suppressed = ibis.literal(False) if m.alerts.count_suppressed else a.suppressed
    delivered = a.delivered_at.notnull()
    return a.mutate(
        included=~suppressed & pmel.isnull(),
        rule=ibis.cases(
            (
                suppressed,
                ibis.literal(
                    "excluded: suppressed by Alert Management Mechanism "
                    '(001 l.1007 "any Alerts that are suppressed")'
                ),
            ),
            (pmel.notnull(), pmel),
            else_=ibis.literal("included"),
        ),
        segment=a.region,
        delivery_ms=a.delivered_at.delta(a.raised_at, unit="millisecond"),
        within_trt=ibis.ifelse(
            delivered,
            a.delivered_at.delta(a.raised_at, unit="millisecond") <= m.alerts.trt_seconds * 1000,
            not m.alerts.undelivered_counts_as_late,
        ),
    )


def latest_devices(s: Scope) -> ibis.Table:
    """Each device's latest extract taken no later than the report time."""
    key = "latest_devices"
    if key not in s._cache and s.materialise and s.backend.cheap_checks:
        d = _extracts(s)
        if _one_extract_time(s):
            return s.keep(key, d)
        got = d.aggregate(n=d.count(), devices=d.device_id.nunique()).to_pyarrow().to_pylist()[0]
        if got["n"] == got["devices"]:
            # One extract per device (a monthly extract): the latest is the extract itself, and
            # the measures read the stored table instead of a full copy of a national estate.
            return s.keep(key, d)
    return s.cached(key, lambda: _latest_of(_extracts(s)))


def _one_extract_time(s: Scope) -> bool:
    """Whether every extract in force was taken at one time (a DuckDB run that materialises).

    (device_id, extracted_at) is the table's key (the contract), so each device then has one
    extract, its latest: a check of two values, where counting distinct devices took 7.5 s of
    CPU at 0.3 of a national estate."""
    if not (s.materialise and s.backend.cheap_checks):
        return False
    d = _extracts(s)
    at = d.aggregate(first=d.extracted_at.min(), last=d.extracted_at.max()).to_pyarrow().to_pylist()[0]
    return at["first"] == at["last"]


def _extracts(s: Scope) -> ibis.Table:
    d = s.con.table("devices")
    return d.filter(d.extracted_at <= s.as_of)


def _latest_of(d: ibis.Table) -> ibis.Table:
    # (device_id, extracted_at) is the table's key, so the latest extract is one row per device:
    # two hash passes instead of sorting a national estate for a window function.
    latest = d.group_by("device_id").aggregate(_latest=d.extracted_at.max())
    return d.semi_join(latest, [d.device_id == latest.device_id, d.extracted_at == latest._latest])


def silent(last_communicated: ibis.Value, installed: ibis.Value, before: ibis.Value) -> ibis.Value:
    """Whether a device had been silent since before `before`: its last communication, or its
    installation when it never communicated, is earlier. One rule for every measure that sets
    silent devices apart (B1, PP1, EH1): a device that never communicated since an install
    months ago is silent, one installed yesterday is not; with neither date known, silent."""
    return last_communicated.coalesce(installed).isnull() | (last_communicated.coalesce(installed) < before)


def commissioning_days(s: Scope, day_of: str = "commissioned") -> ibis.Table:
    """(device_id, comm_day): devices whose latest extract says they were commissioned
    (`day_of: commissioned`) or installed, commissioned or not (`installed`), on a UK day of the
    period (I&C attribution)."""
    return s.cached(f"commissioning_days_{day_of}", lambda: _commissioning_days(s, day_of))


def _commissioning_days(s: Scope, day_of: str) -> ibis.Table:
    d = _extracts(s)
    at = d.commissioned_at if day_of == "commissioned" else d.installed_at
    # Only devices with some extract in the period (or in the days reduced) can qualify:
    # finding the latest extract of those alone spares a pass over the whole estate (50 M
    # devices), and a small set of days is a small table for the requests to meet.
    first, last = (min(s.days), max(s.days)) if s.days else (s.first, s.last)
    start, end = s.day_start(first), s.day_start(last + dt.timedelta(days=1))
    near = d.filter((at >= start) & (at < end))
    if _one_extract_time(s):
        latest = near  # each device's one extract is its latest
    else:
        latest = _latest_of(d.semi_join(near.select("device_id").distinct(), "device_id"))
    day = latest.commissioned_at if day_of == "commissioned" else latest.installed_at
    latest = latest.select("device_id", comm_day=s.uk_day(day))
    return in_scope(s, latest.filter(latest.comm_day.notnull()), "comm_day")
