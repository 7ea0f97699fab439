"""The stored day cubes' bookkeeping in the DuckDB store: which days were reduced from what, the
model fingerprints, the per-day lineage a day's fingerprint is made of, ATT1's fold state, and
replacing a day's rows of a cube (with its month total moved by the change).

`measures/incremental.py` decides what is stale and builds the cubes as Ibis expressions; every
statement it needs the store to run is here, so the measures talk no SQL of their own."""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Iterator, Sequence
from typing import Any

from opmetrics.engine.store import Store

MODELS_TABLE = "cube_models"
# What a day that hands on no chain of resends hands on (`open_chains` has no row for it).
NO_CHAINS = "0:None"
DAY_STATE = "day_state"
FOLD_STATE = "day_att1_state"

_DDL = {
    DAY_STATE: "report_date DATE PRIMARY KEY, fingerprint VARCHAR NOT NULL, computed_at TIMESTAMP NOT NULL",
    FOLD_STATE: (
        "report_date DATE PRIMARY KEY, fingerprint VARCHAR NOT NULL, carried VARCHAR NOT NULL, "
        "handed_on VARCHAR NOT NULL"
    ),
    MODELS_TABLE: "name VARCHAR PRIMARY KEY, fingerprint VARCHAR NOT NULL, code_key VARCHAR NOT NULL",
}
# Rows and content of each day's records, identified by lineage (file and row): a corrected or
# added record changes its day's value.
_LINEAGE = "count(*), sum(hash(_file_id, _row))"


def _per_day(rows: list[tuple]) -> dict[dt.date, str]:
    return {d: f"{n}:{h}" for d, n, h in rows}


class DayStore:
    """The day cubes' state in one store."""

    def __init__(self, store: Store):
        self.store, self.con = store, store.con

    def ensure(self, *tables: str) -> None:
        for name in tables:
            self.con.execute(f"CREATE TABLE IF NOT EXISTS {name} ({_DDL[name]})")

    def ensure_tables(self, columns: dict[str, str]) -> None:
        """Tables given as name -> column definitions (ATT1's fold tables)."""
        for name, cols in columns.items():
            self.con.execute(f"CREATE TABLE IF NOT EXISTS {name} ({cols})")

    # --- what a day's fingerprint is made of ---------------------------------------------------

    def lineage(
        self, table: str, first: dt.date, last: dt.date, srvs: Sequence[str] | None = None
    ) -> dict[dt.date, str]:
        """Per day of `table` between two days: its rows' count and lineage hash."""
        where = "report_date BETWEEN ? AND ?"
        params: list[Any] = [first, last]
        if srvs is not None:
            where += " AND srv IN (SELECT unnest(?))"
            params.append(list(srvs))
        return _per_day(
            self.con.execute(
                f"SELECT report_date, {_LINEAGE} FROM {table} WHERE {where} GROUP BY 1", params
            ).fetchall()
        )

    def linked(self, links_sql: str) -> dict[dt.date, str]:
        """Per request day: the failure alerts linked to it (`links_sql`: compiled links)."""
        return _per_day(
            self.con.execute(
                f"SELECT report_date, count(*), sum(hash(_alert)) FROM ({links_sql}) GROUP BY 1"
            ).fetchall()
        )

    def devices_in_force(self, as_of: dt.datetime) -> str:
        """The devices extract rows in force at the report time, as count and lineage hash."""
        n, h = self.con.execute(
            "SELECT count(*), sum(hash(_file_id, _row)) FROM devices WHERE extracted_at <= ?", [as_of]
        ).fetchall()[0]
        return f"{n}:{h}"

    def input_columns(self) -> str:
        """Every input table's columns and types, in one string."""
        return self.con.execute(
            "SELECT string_agg(table_name || '.' || column_name || ' ' || data_type, ',' ORDER BY ALL) "
            "FROM information_schema.columns WHERE table_name IN (SELECT unnest(?))",
            [list(self.store.contract.tables)],
        ).fetchall()[0][0]

    def requests_per_day(self, first: dt.date, last: dt.date) -> dict[dt.date, int]:
        return dict(
            self.con.execute(
                "SELECT report_date, count(*) FROM service_requests "
                "WHERE report_date BETWEEN ? AND ? GROUP BY 1",
                [first, last],
            ).fetchall()
        )

    # --- model fingerprints -------------------------------------------------------------------

    def models(self, code_key: str) -> dict[str, str]:
        """The stored model fingerprints compiled under `code_key` (none under another)."""
        self.ensure(MODELS_TABLE)
        return dict(
            self.con.execute(
                f"SELECT name, fingerprint FROM {MODELS_TABLE} WHERE code_key = ?", [code_key]
            ).fetchall()
        )

    def save_models(self, code_key: str, fingerprints: dict[str, str]) -> None:
        self.ensure(MODELS_TABLE)
        self.con.execute(f"DELETE FROM {MODELS_TABLE}")
        rows = [[name, fp, code_key] for name, fp in fingerprints.items()]
        self.con.executemany(f"INSERT INTO {MODELS_TABLE} VALUES (?, ?, ?)", rows)

    # --- day state ----------------------------------------------------------------------------

    def day_state(self, first: dt.date, last: dt.date) -> dict[dt.date, str]:
        """Each reduced day's fingerprint, as stored."""
        self.ensure(DAY_STATE)
        return dict(
            self.con.execute(
                f"SELECT report_date, fingerprint FROM {DAY_STATE} WHERE report_date BETWEEN ? AND ?",
                [first, last],
            ).fetchall()
        )

    def set_day_state(self, days: list[dt.date], fingerprints: dict[dt.date, str]) -> None:
        """The state of `days` replaced by `fingerprints` (a day not in it: no longer reduced)."""
        now = dt.datetime.now(dt.UTC).replace(tzinfo=None, microsecond=0)
        self.con.execute(f"DELETE FROM {DAY_STATE} WHERE report_date IN (SELECT unnest(?))", [days])
        self.con.executemany(
            f"INSERT INTO {DAY_STATE} VALUES (?, ?, ?)", [[d, fp, now] for d, fp in fingerprints.items()]
        )

    def fold_state(self, first: dt.date, last: dt.date) -> dict[dt.date, tuple[str, str, str]]:
        """Each folded day: its inputs' fingerprint, the chains carried in, the chains handed on."""
        self.ensure(FOLD_STATE)
        return {
            d: (fp, carried, out)
            for d, fp, carried, out in self.con.execute(
                f"SELECT report_date, fingerprint, carried, handed_on FROM {FOLD_STATE} "
                "WHERE report_date BETWEEN ? AND ?",
                [first, last],
            ).fetchall()
        }

    def record_folds(self, days: list[dt.date], inputs: dict[dt.date, str], carried: str) -> str:
        """What consecutive `days`, just folded, were folded from: each day's inputs' fingerprint,
        the chains carried into it (`carried` for the first, then the day before's) and those it
        hands on (`open_chains`). Returns what the last day hands on."""
        handed, rows = self.open_chains(days), []
        for d in days:
            out = handed.get(d, NO_CHAINS)
            rows.append([d, inputs[d], carried, out])
            carried = out
        self.con.executemany(f"INSERT INTO {FOLD_STATE} VALUES (?, ?, ?, ?)", rows)
        return carried

    def open_chains(self, days: list[dt.date]) -> dict[dt.date, str]:
        """Per day: the chains of resends it hands on, as count and content hash (a day that
        hands on none is missing: NO_CHAINS)."""
        return _per_day(
            self.con.execute(
                "SELECT report_date, count(*), "
                "sum(hash(party_id, device_id, srv, last_at, attempts, smets, _bits)) "
                "FROM day_att1_open WHERE report_date IN (SELECT unnest(?)) GROUP BY 1",
                [days],
            ).fetchall()
        )

    # --- rows of days ---------------------------------------------------------------------------

    def delete_days(self, names: Sequence[str], days: list[dt.date], column: str = "report_date") -> None:
        for name in names:
            self.con.execute(f"DELETE FROM {name} WHERE {column} IN (SELECT unnest(?))", [days])

    def drop(self, names: Sequence[str]) -> None:
        for name in names:
            self.con.execute(f"DROP TABLE IF EXISTS {name}")

    def insert(self, name: str, expr: Any) -> None:
        """Append the rows of Ibis expression `expr` to table `name`, by column name.

        Compiled once and run as SQL: Ibis's own `insert` parses the SQL it compiled back into
        a tree and copies it (a small month's compute took 8.2 s that way, 7.1 s this way;
        docs/performance.md). Ibis registers
        the in-memory tables an expression reads (the rules per combination) before it runs
        anything; its hook for that is called here too."""
        backend = self.store.ibis()
        sql = backend.compile(expr)
        backend._run_pre_execute_hooks(expr)
        columns = ", ".join(f'"{c}"' for c in expr.columns)
        self.con.execute(f'INSERT INTO "{name}" ({columns}) {sql}')

    def replace_days(
        self,
        name: str,
        column: str,
        expr: Any,
        stale: list[dt.date],
        gone: list[dt.date],
        month_total: tuple[str, list[str], str] | None = None,
    ) -> None:
        """Within the caller's transaction: the rows of `stale` and `gone` days of table `name`
        out, `expr` (the stale days' new rows) in. A table whose columns differ from the
        expression's (a cube defined anew) is written anew. `month_total` (month table, its
        keys, period): the merged month the change moves (`month_total_moved`)."""
        backend = self.store.ibis()
        if self.store.has_table(name) and backend.table(name).columns != expr.columns:
            self.con.execute(f"DROP TABLE {name}")
        if not self.store.has_table(name):
            # Through Ibis, not compiled SQL: an expression may read in-memory tables (the rules
            # per combination), which Ibis registers as it runs it.
            backend.create_table(name, schema=expr.schema())
        moved: contextlib.AbstractContextManager[None] = contextlib.nullcontext()
        if month_total is not None:
            month, keys, period = month_total
            moved = self.month_total_moved(name, month, keys, period, stale, gone)
        with moved:
            self.delete_days([name], stale + gone, column)
            if stale:
                self.insert(name, expr)

    @contextlib.contextmanager
    def month_total_moved(
        self, name: str, month: str, keys: list[str], period: str, stale: list[dt.date], gone: list[dt.date]
    ) -> Iterator[None]:
        """Around replacing days of day cube `name`: its month total `month` moved by the change,
        the days' old counts out and their new ones in; a value whose count falls to 0 goes.
        Only the values the days hold are touched (rewriting the month's rows cost as much as
        merging its days). One MERGE of old and new counts together: the old ones are kept
        aside, negated, before the days are replaced."""
        con, cols = self.con, ", ".join(keys)
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE _old_counts AS SELECT {cols}, -n AS n FROM {name} "
            "WHERE report_date IN (SELECT unnest(?))",
            [stale + gone],
        )
        yield
        if not self.store.has_table(month):
            con.execute(
                f"CREATE TABLE {month} AS SELECT ''::VARCHAR AS period, {cols}, n FROM {name} LIMIT 0"
            )
        same = " AND ".join(f"m.{k} IS NOT DISTINCT FROM d.{k}" for k in keys)
        con.execute(
            f"""MERGE INTO {month} m USING (
                SELECT {cols}, sum(n)::BIGINT AS n FROM (
                    SELECT {cols}, n FROM _old_counts
                    UNION ALL SELECT {cols}, n FROM {name} WHERE report_date IN (SELECT unnest(?))
                ) GROUP BY ALL HAVING sum(n) <> 0
            ) d ON m.period = ? AND {same}
            WHEN MATCHED AND m.n + d.n = 0 THEN DELETE
            WHEN MATCHED THEN UPDATE SET n = m.n + d.n
            WHEN NOT MATCHED THEN INSERT VALUES (?, {", ".join(f"d.{k}" for k in keys)}, d.n)""",
            [stale, period, period],
        )
        con.execute("DROP TABLE _old_counts")
