"""The result tables a run writes, each declared once: its name, its columns and their types,
and the module that computes it.

The store's result tables are created from these declarations, not from whatever a run happens
to return: `conform` checks a computed table against its declaration (the same on DuckDB and on
Spark) and refuses one with a missing, extra or differently typed column before anything is
written, naming the table and the column. A new result table is declared here and nowhere else.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

from opmetrics.measures import availability, benchmarks, cpm, diagnostics, legs, outcome

_S, _I, _F, _D = pa.string(), pa.int64(), pa.float64(), pa.date32()
_PERIOD = pa.field("period", _S)


def _schema(*cols: tuple[str, pa.DataType]) -> pa.Schema:
    return pa.schema([*cols, _PERIOD])


def _with_period(schema: pa.Schema) -> pa.Schema:
    return schema if "period" in schema.names else schema.append(_PERIOD)


_COUNTS = (
    ("volume", _I),
    ("failures", _I),
    ("payload_failures", _I),
    ("no_response", _I),
    ("within_trt", _I),
    ("delivered_within_trt", _I),
    ("trt_denominator", _I),
    ("within_trt_pct", _F),
    ("success_pct", _F),
    ("payload_failure_pct", _F),
)


@dataclass(frozen=True)
class ResultTable:
    name: str
    schema: pa.Schema  # every column a run stores, `period` included (`run_id` is added on write)
    made_by: str  # the module that computes it
    description: str

    def conform(self, rows: pa.Table) -> pa.Table:
        """`rows` in the declared column order and types; a ValueError naming the table and the
        column when a column is missing or extra, or its type cannot be cast without loss."""
        got, want = set(rows.column_names), set(self.schema.names)
        if got != want:
            missing, extra = sorted(want - got), sorted(got - want)
            raise ValueError(
                f"result table {self.name}: computed columns differ from its declaration "
                f"(measures/models.py): missing {missing or 'none'}, not declared {extra or 'none'}"
            )
        rows = rows.select(self.schema.names)
        for f in self.schema:
            have = rows.schema.field(f.name).type
            if have != f.type and not pa.types.is_null(have) and not _widens(have, f.type):
                raise ValueError(
                    f"result table {self.name}: column {f.name} is {have}, declared {f.type} "
                    "(measures/models.py)"
                )
        return rows.cast(self.schema)


def _widens(have: pa.DataType, want: pa.DataType) -> bool:
    """A cast that loses nothing: a narrower integer to int64, an integer or float32 to float64,
    a large string to a string."""
    if pa.types.is_integer(have) and (pa.types.is_int64(want) or pa.types.is_float64(want)):
        return True
    if pa.types.is_floating(have) and pa.types.is_float64(want):
        return True
    if pa.types.is_decimal(have) and have.scale == 0 and pa.types.is_int64(want):
        return True  # DuckDB's sum of integers (an overflow would fail the cast, not wrap)
    return pa.types.is_large_string(have) and pa.types.is_string(want)


RSVP = _schema(
    ("scope", _S),
    ("key", _S),
    ("rate", _S),
    ("day", _D),
    ("segment", _S),
    ("volume", _I),
    ("failures", _I),
    ("no_response", _I),
    ("responses", _I),
    ("rtt_count", _I),
    ("rtt_mean_s", _F),
    ("rtt_median_s", _F),
    ("rtt_min_s", _F),
    ("rtt_max_s", _F),
    ("within_trt", _I),
    ("trt_denominator", _I),
    ("delivered_within_trt", _I),
    ("payload_failures", _I),
    ("no_response_success_code", _I),
    ("no_response_other_code", _I),
    ("response_success_code", _I),
    ("response_other_code", _I),
    ("within_trt_pct", _F),
    ("failure_pct", _F),
    ("success_pct", _F),
    ("payload_failure_pct", _F),
)

RESULT_TABLES: dict[str, ResultTable] = {
    t.name: t
    for t in (
        ResultTable("rsvp", RSVP, "measures.rsvp", "RSVP per SRV and process, segment, month and day"),
        ResultTable(
            "rsvp_modes",
            _schema(("scope", _S), ("key", _S), ("segment", _S), ("mode", _S), *_COUNTS),
            "measures.rsvp",
            "RSVP's month per mode of operation",
        ),
        ResultTable(
            "rsvp_devices",
            _schema(("scope", _S), ("key", _S), ("segment", _S), ("device_type", _S), *_COUNTS),
            "measures.rsvp",
            "RSVP's month per device type",
        ),
        ResultTable("cpm", _with_period(cpm.SCHEMA), "measures.cpm", "Code Performance Measures"),
        ResultTable(
            "outcomes", _with_period(outcome.SCHEMA), "measures.families", "Outcome measures and indicators"
        ),
        ResultTable(
            "availability",
            _with_period(availability.SCHEMA),
            "measures.availability",
            "Service availability, reliability and sub-systems",
        ),
        ResultTable(
            "diagnostics",
            _with_period(diagnostics.SCHEMA),
            "measures.diagnostics",
            "What explains a party's gap to the others",
        ),
        ResultTable(
            "benchmarks",
            _with_period(benchmarks.SCHEMA),
            "measures.benchmarks",
            "Industry, best and own success per process and dimension",
        ),
        ResultTable("legs", _with_period(legs.SCHEMA), "measures.legs", "Legs of the journey"),
        # What the pack and the dashboard show beside the figures, as this run read it.
        ResultTable(
            "run_drill",
            _schema(
                ("process_id", _S), ("report_date", _D), ("srv", _S), ("region", _S), ("smets", _I),
                ("device_type", _S), ("party_id", _S), ("volume", _I), ("failures", _I),
                ("within_trt", _I), ("requests", _I), ("rtt_sum_ms", _F), ("rtt_n", _I),
            ),
            "measures.drill",
            "Each day's requests per process, SRV, region, SMETS, device type and party",
        ),
        ResultTable(
            "run_hourly",
            _schema(
                ("process_id", _S), ("region", _S), ("report_date", _D), ("hour", pa.timestamp("us")),
                ("volume", _I), ("failures", _I), ("within_trt", _I), ("requests", _I),
            ),
            "measures.drill",
            "Each hour's requests per process and region",
        ),
        ResultTable(
            "run_incidents",
            _schema(
                ("incident_id", _S), ("category", _I), ("region", _S), ("report_date", _D), ("summary", _S),
                ("minutes", _F), ("smets", _I), ("raised_at", pa.timestamp("us")),
                ("resolved_at", pa.timestamp("us")), ("closed_at", pa.timestamp("us")), ("services", _S),
            ),
            "measures.context",
            "The period's incidents as the run read them",
        ),
        ResultTable(
            "run_outages",
            _schema(
                ("outage_id", _S), ("service", _S), ("subsystem", _S), ("region", _S),
                ("start_at", pa.timestamp("us")), ("end_at", pa.timestamp("us")), ("planned", pa.bool_()),
                ("incident_id", _S), ("report_date", _D),
            ),
            "measures.context",
            "The period's outages as the run read them",
        ),
        ResultTable(
            "run_parties", _schema(("party_id", _S), ("user_role", _S)), "measures.context", "Parties seen"
        ),
        ResultTable(
            "run_alerts",
            _schema(("kind", _S), ("alert_code", _S), ("n", _I)),
            "measures.context",
            "Alerts per kind and code",
        ),
        ResultTable(
            "run_inputs",
            _schema(
                ("table_name", _S), ("files", _I), ("rows_read", _I), ("accepted", _I), ("quarantined", _I)
            ),
            "measures.context",
            "What was loaded, per input table",
        ),
        ResultTable(
            "run_quarantine",
            _schema(("table_name", _S), ("field", _S), ("reason", _S), ("n", _I)),
            "measures.context",
            "What was quarantined, per table, field and reason",
        ),
        ResultTable(
            "run_prev_cpm",
            _schema(
                ("of_period", _S), ("cpm", _S), ("key", _S), ("segment", _S), ("pct", _F), ("status", _S),
                ("source", _S),
            ),
            "measures.context",
            "The previous period's CPMs (its run, else the published figures)",
        ),
        ResultTable(
            "run_prev_availability",
            _schema(
                ("of_period", _S), ("view", _S), ("subject", _S), ("region", _S), ("band", _S), ("pct", _F),
                ("source", _S),
            ),
            "measures.context",
            "The previous period's availability",
        ),
        ResultTable(
            "run_trend",
            _schema(
                ("of_period", _S), ("scope", _S), ("key", _S), ("volume", _I), ("success_pct", _F),
                ("within_trt_pct", _F), ("source", _S),
            ),
            "measures.context",
            "Earlier periods' RSVP for the trend charts",
        ),
    )
}  # fmt: skip


def conform(name: str, rows: pa.Table) -> pa.Table:
    """A computed result table as declared; an undeclared table is refused."""
    if name not in RESULT_TABLES:
        raise ValueError(f"result table {name} is not declared in measures/models.py")
    return RESULT_TABLES[name].conform(rows)
