"""Ingest: validation, quarantine with file/row/field/reason, idempotency, atomic file loads."""

from __future__ import annotations

import gzip

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import alert, limit_watch, load_rows, memory_limit, rid, sr, write_csv

from opmetrics.ingest.load import IngestError, load_file


def quarantine(store):
    cur = store.con.execute(
        "SELECT row_number, field, value, reason, path FROM quarantine ORDER BY row_number"
    )
    return cur.fetchall()


@pytest.mark.parametrize(
    ("override", "field", "reason_part"),
    [
        ({"request_id": ""}, "request_id", "missing required value"),
        ({"request_id": "not-a-duis-id"}, "request_id", "expected format"),
        ({"received_at": "2026-10-32T00:00:00Z"}, "received_at", "ISO 8601"),
        ({"smets": "3", "region": "North"}, "smets", "not one of"),
        ({"smets": "two"}, "smets", "not an integer"),
        ({"critical": "maybe"}, "critical", "not a boolean"),
        ({"region": "Midlands"}, "region", "not one of"),
        ({"mode": "whenever"}, "mode", "not one of"),
        ({"dsp_attempts": "4"}, "dsp_attempts", "greater than 3"),
        ({"report_status": "1.5"}, "report_status", "not an integer"),
        ({"responded_at": "2026-10-05T09:00:00Z"}, "responded_at", "earlier than received_at"),
        ({"response_code": ""}, "response_code", "both be present or both be null"),
        ({"smets": "1"}, "region", "SMETS1 exactly when smets is 1"),
        ({"quarantine_released_at": "2026-10-05T09:00:00Z"}, "quarantine_released_at", "earlier"),
    ],
)
def test_each_bad_value_is_quarantined_with_row_field_and_reason(
    store, tmp_path, override, field, reason_part
):
    rows = [sr(1), sr(2, **override), sr(3)]
    res = load_rows(store, tmp_path, "service_requests", rows)
    assert (res.rows_read, res.accepted, res.quarantined) == (3, 2, 1)
    [(row, qfield, value, reason, path)] = quarantine(store)
    assert row == 2 and qfield == field and reason_part in reason
    assert path.endswith(".csv")
    assert store.count("service_requests") == 2


def test_wrong_field_count_rows_keep_numbering(store, tmp_path):
    path = write_csv(tmp_path / "sr.csv", [sr(1), sr(2), sr(3)])
    lines = path.read_text().splitlines()
    lines[2] = lines[2].rsplit(",", 3)[0]  # row 2 loses three fields
    path.write_text("\n".join(lines) + "\n")
    res = load_file(store, path, "service_requests")
    assert (res.accepted, res.quarantined) == (2, 1)
    assert quarantine(store)[0][0] == 2 and "wrong number of fields" in quarantine(store)[0][3]
    loaded = store.con.execute("SELECT _row FROM service_requests ORDER BY _row").fetchall()
    assert loaded == [(1,), (3,)]


def test_same_file_twice_changes_nothing(store, tmp_path):
    path = write_csv(tmp_path / "sr.csv", [sr(1), sr(2, region="Nowhere")])
    first = load_file(store, path, "service_requests")
    second = load_file(store, path, "service_requests")
    assert first.status == "loaded" and second.status == "already loaded"
    assert store.count("service_requests") == 1
    assert store.count("quarantine") == 1
    assert store.count("loaded_files") == 1


def test_duplicates_within_and_across_files_are_not_double_counted(store, tmp_path):
    load_rows(store, tmp_path, "service_requests", [sr(1), sr(2), sr(2)], name="a")
    res = load_rows(store, tmp_path, "service_requests", [sr(2), sr(3)], name="b")
    assert store.count("service_requests") == 3
    assert res.accepted == 1 and res.quarantined == 1
    reasons = [r[3] for r in quarantine(store)]
    assert any("same as row 2 of this file" in r for r in reasons)
    assert any("already loaded from" in r and "a-service_requests.csv row 2" in r for r in reasons)


def test_ids_that_share_a_hash_are_told_apart_and_repeats_still_caught(store, tmp_path):
    """Two alert ids DuckDB's `hash` gives one value (found at a national day) are different
    records: both load. A true repeat in the same file is still quarantined, naming its first
    row, and the rows of the file add up (accepted + quarantined = read)."""
    a, b = "A-97700000093673", "A-97700900093678"
    assert store.con.execute(f"SELECT hash('{a}') = hash('{b}')").fetchall()[0][0]
    res = load_rows(store, tmp_path, "alerts", [alert(a), alert(b), alert("A-3"), alert(b)])
    assert (res.rows_read, res.accepted, res.quarantined) == (4, 3, 1)
    loaded = store.con.execute("SELECT alert_id, _row FROM alerts ORDER BY _row").fetchall()
    assert loaded == [(a, 1), (b, 2), ("A-3", 3)]
    assert [(r[0], r[2]) for r in quarantine(store)] == [(4, b)]
    assert "same as row 2 of this file" in quarantine(store)[0][3]


@pytest.mark.parametrize(
    ("mangle", "message"),
    [
        (lambda p: p.write_text("request_id,party\nx,y\n"), "header does not match"),
        (lambda p: p.write_bytes(p.read_bytes().replace(b"SUP-A", b"SUP-\xff\xfe", 1)), "UTF-8"),
        (lambda p: p.write_text(""), "empty file"),
    ],
)
def test_unreadable_csv_fails_whole_file(store, tmp_path, mangle, message):
    path = write_csv(tmp_path / "sr.csv", [sr(1), sr(2)])
    mangle(path)
    with pytest.raises(IngestError, match=message) as e:
        load_file(store, path, "service_requests")
    assert str(path) in str(e.value)
    assert store.count("service_requests") == 0 and store.count("loaded_files") == 0
    assert store.count("quarantine") == 0


def test_unknown_column_fails(store, tmp_path):
    rows = [{**sr(1), "colour": "blue"}]
    with pytest.raises(IngestError, match=r"unknown column\(s\) \['colour'\]"):
        load_file(store, write_csv(tmp_path / "sr.csv", rows), "service_requests")


def _parquet(tmp_path, rows, name="sr.parquet"):
    t = pa.Table.from_pylist(rows)
    path = tmp_path / name
    pq.write_table(t, path, row_group_size=2)
    return path


def test_parquet_loads_and_truncated_parquet_fails_cleanly(store, tmp_path):
    path = _parquet(tmp_path, [sr(i) for i in range(1, 7)])
    cut = tmp_path / "cut.parquet"
    cut.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(IngestError, match="cut.parquet"):
        load_file(store, cut, "service_requests")
    assert store.count("service_requests") == 0
    assert load_file(store, path, "service_requests").accepted == 6


def test_failure_midway_rolls_back_everything(store, tmp_path, monkeypatch):
    """A crash after some batches were staged leaves no rows, no quarantine, no file record."""
    import opmetrics.ingest.load as load_mod

    path = write_csv(tmp_path / "sr.csv", [sr(i) for i in range(1, 9)] + [sr(99, region="Atlantis")])
    real = load_mod._csv_batches

    def exploding(*args):
        yield from real(*args)
        raise OSError("disk went away")

    monkeypatch.setattr(load_mod, "_csv_batches", exploding)
    with pytest.raises(OSError):
        load_file(store, path, "service_requests")
    assert store.count("service_requests") == 0
    assert store.count("quarantine") == 0 and store.count("loaded_files") == 0
    monkeypatch.setattr(load_mod, "_csv_batches", real)
    res = load_file(store, path, "service_requests")
    assert (res.accepted, res.quarantined) == (8, 1)


def test_parquet_damaged_after_its_first_row_groups_loads_nothing(store, tmp_path):
    """DuckDB reads the row groups in turn: a damaged later one fails the file, and the rows
    already staged from the earlier ones are rolled back with it."""
    rows = [sr(i) for i in range(1, 10)]
    path = tmp_path / "sr.parquet"
    pq.write_table(pa.Table.from_pylist(rows), path, row_group_size=3, compression="none")
    meta = pq.ParquetFile(path).metadata
    last = meta.row_group(2).column(0)  # request_id of the third row group
    data = bytearray(path.read_bytes())
    start = last.data_page_offset
    data[start : start + 24] = b"\xff" * 24  # its page header is now garbage
    path.write_bytes(bytes(data))
    with pytest.raises(IngestError, match="sr.parquet: Parquet data cannot be read"):
        load_file(store, path, "service_requests")
    assert store.count("service_requests") == 0
    assert store.count("quarantine") == 0 and store.count("loaded_files") == 0
    ok = tmp_path / "ok.parquet"
    pq.write_table(pa.Table.from_pylist(rows), ok, row_group_size=3)
    assert load_file(store, ok, "service_requests").accepted == 9


def test_timestamps_offsets_precision_and_uk_report_day(store, tmp_path):
    rows = [
        sr(1, received_at="2026-10-01T23:30:00+00:00", responded_at="2026-10-02T00:30:01.2345+01:00"),
        sr(2, received_at="2026-10-26 00:30:00", responded_at="2026-10-26 00:30:02"),
    ]
    load_rows(store, tmp_path, "service_requests", rows)
    got = store.con.execute(
        "SELECT request_id, CAST(received_at AS VARCHAR), CAST(responded_at AS VARCHAR), "
        "report_date FROM service_requests ORDER BY request_id"
    ).fetchall()
    # 23:30 UTC on 1 Oct is 00:30 BST on 2 Oct; 00:30 UTC on 26 Oct is GMT, the same day.
    assert got[0][1:3] == ("2026-10-01 23:30:00", "2026-10-01 23:30:01.234")
    assert str(got[0][3]) == "2026-10-02"
    assert str(got[1][3]) == "2026-10-26"


def test_gzip_csv_and_table_from_folder_name(store, tmp_path):
    folder = tmp_path / "alerts"
    plain = write_csv(tmp_path / "x.csv", [alert("a1"), alert("a2", request_id=rid(5))])
    folder.mkdir()
    gz = folder / "day1.csv.gz"
    gz.write_bytes(gzip.compress(plain.read_bytes()))
    res = load_file(store, gz)
    assert res.table == "alerts" and res.accepted == 2


def test_file_with_no_table_is_refused(store, tmp_path):
    path = write_csv(tmp_path / "mystery.csv", [sr(1)])
    with pytest.raises(IngestError, match="cannot tell which table"):
        load_file(store, path)


def test_columns_added_in_a_later_contract_may_be_absent_from_older_files(store, tmp_path):
    """Contract 1.2 added manufacturer, model and ch_variant to devices: a 1.1 file (CSV or
    Parquet) without them loads with those fields empty; a 1.2 file keeps them."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    old = {
        "device_id": "00-DB-00-00-00-00-00-01", "extracted_at": "2026-10-31T12:00:00Z",
        "device_type": "GSME", "smets": "2", "region": "North", "party_id": "SUP-A", "ch_id": "",
        "installed_at": "2026-10-05T09:00:00Z", "commissioned_at": "2026-10-05T09:30:00Z",
        "status": "commissioned",
        "firmware_version": "1.0", "last_communicated_at": "2026-10-30T00:00:00Z",
    }  # fmt: skip
    r1 = load_file(store, write_csv(tmp_path / "devices-old.csv", [old]), "devices")
    new = {**old, "device_id": "00-DB-00-00-00-00-00-02", "manufacturer": "Flonidan",
           "model": "G4SRTV", "ch_variant": "CH-B"}  # fmt: skip
    r2 = load_file(store, write_csv(tmp_path / "devices-new.csv", [new]), "devices")
    third = {**old, "device_id": "00-DB-00-00-00-00-00-03"}
    pq.write_table(pa.table({k: [v] for k, v in third.items()}), tmp_path / "devices-old.parquet")
    r3 = load_file(store, tmp_path / "devices-old.parquet", "devices")
    assert (r1.accepted, r2.accepted, r3.accepted) == (1, 1, 1)
    got = store.rows("SELECT device_id, manufacturer, model, ch_variant FROM devices ORDER BY device_id")
    assert [tuple(r.values())[1:] for r in got] == [
        (None, None, None),
        ("Flonidan", "G4SRTV", "CH-B"),
        (None, None, None),
    ]
    missing_required = {k: v for k, v in old.items() if k != "region"}
    with pytest.raises(IngestError, match=r"missing column\(s\) \['region'\]"):
        load_file(store, write_csv(tmp_path / "devices-bad.csv", [missing_required]), "devices")


def test_parquet_with_bytes_or_invalid_utf8_is_refused_and_the_database_stays_usable(store, tmp_path):
    """Found by fuzzing: invalid UTF-8 handed to DuckDB invalidated the whole database."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    good = sr(1)
    cols = {k: pa.array([v]) for k, v in good.items()}
    cols["region"] = pa.array([b"\xff\xfeNorth"], pa.binary()).view(pa.string())
    pq.write_table(pa.table(cols), tmp_path / "bad-utf8.parquet")
    with pytest.raises(IngestError, match="'region' is not valid UTF-8 text"):
        load_file(store, tmp_path / "bad-utf8.parquet", "service_requests")
    cols["region"] = pa.array([b"North"], pa.binary())
    pq.write_table(pa.table(cols), tmp_path / "bytes.parquet")
    with pytest.raises(IngestError, match="'region' holds bytes, not text"):
        load_file(store, tmp_path / "bytes.parquet", "service_requests")
    assert load_file(store, write_csv(tmp_path / "ok.csv", [good]), "service_requests").accepted == 1


def test_infinite_timestamps_are_quarantined(store, tmp_path):
    """DuckDB reads 'infinity' as a timestamp; no record time can be infinite (found by fuzzing)."""
    path = write_csv(
        tmp_path / "service_requests.csv",
        [sr(1), sr(2, responded_at="INFINITY"), sr(3, received_at="-infinity")],
    )
    res = load_file(store, path)
    assert (res.accepted, res.quarantined) == (1, 2)
    got = store.rows("SELECT row_number, field, reason FROM quarantine ORDER BY row_number")
    assert [(r["row_number"], r["field"], r["reason"]) for r in got] == [
        (2, "responded_at", "not an ISO 8601 timestamp"),
        (3, "received_at", "not an ISO 8601 timestamp"),
    ]


def test_a_load_runs_under_the_ingest_memory_limit_and_restores_the_store_limit(tmp_path, monkeypatch):
    """Each file loads under its own DuckDB memory limit (lower than compute's: Arrow's batches
    come on top), and the store's limit is back afterwards, also when the file fails."""
    from opmetrics.engine.store import Store
    from opmetrics.ingest import load

    monkeypatch.setenv("OPMETRICS_MEMORY_LIMIT", "3GB")
    monkeypatch.setattr(load, "INGEST_MEMORY_LIMIT", "500MB")

    with Store(tmp_path / "s.duckdb") as store:
        own, ingest_limit, seen = limit_watch(store, "500MB", monkeypatch)
        load_file(store, write_csv(tmp_path / "service_requests.csv", [sr(1)]))
        assert seen == [ingest_limit] and memory_limit(store.con) == own
        with pytest.raises(IngestError):
            load_file(store, write_csv(tmp_path / "service_requests_bad.csv", [{"nonsense": 1}]))
        assert memory_limit(store.con) == own


def test_parquet_text_is_trimmed_typed_columns_kept_and_bad_rows_named_by_file_row(store, tmp_path):
    """DuckDB reads the Parquet itself: blanks are trimmed and a blank value is missing (as for
    CSV), typed columns load as they are, and a bad row keeps its 1-based row in the file
    across row groups."""
    import datetime as dt

    rows = [sr(i) for i in range(1, 8)]
    rows[1]["party_id"] = "\t SUP-B \r\n"  # row 2: trimmed
    rows[4]["region"] = "Atlantis"  # row 5: quarantined
    rows[5]["party_id"] = " \t "  # row 6: blank is missing, and party_id is required
    t = pa.Table.from_pylist(rows)
    when = pa.array([dt.datetime(2026, 10, 5, 9, 59, 59, 123456)] * len(rows), pa.timestamp("us"))
    t = t.set_column(t.schema.get_field_index("received_at"), "received_at", when)
    t = t.set_column(t.schema.get_field_index("dsp_attempts"), "dsp_attempts", pa.array([2] * 7, pa.int32()))
    pq.write_table(t, tmp_path / "sr.parquet", row_group_size=3)
    res = load_file(store, tmp_path / "sr.parquet", "service_requests")
    assert (res.rows_read, res.accepted, res.quarantined) == (7, 5, 2)
    got = quarantine(store)
    assert [(r[0], r[1], r[2]) for r in got] == [(5, "region", "Atlantis"), (6, "party_id", None)]
    assert "missing required value" in got[1][3]
    loaded = store.con.execute(
        "SELECT _row, party_id, dsp_attempts, CAST(received_at AS VARCHAR) "
        "FROM service_requests ORDER BY _row"
    ).fetchall()
    assert [r[0] for r in loaded] == [1, 2, 3, 4, 7]
    assert loaded[1][1] == "SUP-B" and {r[2] for r in loaded} == {2}
    assert {r[3] for r in loaded} == {"2026-10-05 09:59:59.123"}


def test_typed_parquet_times_become_naive_utc_floored_to_the_millisecond(store, tmp_path):
    """Typed Parquet times, worked by hand: a zoned nanosecond time at UK midnight on the
    autumn clock change (01:00 BST = 00:00 UTC) loses its sub-millisecond part; a time before
    1970 is floored, not rounded towards zero (23:59:59.9995 -> .999); a time 1 us short of the
    next millisecond stays in its own."""
    import datetime as dt

    def write(name: str, values: list[int], arrow_type: pa.DataType, first: int):  # noqa: ANN202
        rows = [sr(first + i, responded_at="", response_code="") for i in range(len(values))]
        t = pa.Table.from_pylist(rows)
        t = t.set_column(t.schema.get_field_index("received_at"), "received_at", pa.array(values, arrow_type))
        pq.write_table(t, tmp_path / name)
        return tmp_path / name

    zoned_ns = [
        1_792_886_400_000_000_000 + 999_000,  # 2026-10-25T00:00:00.000999Z (ns are first cast to us)
        -500_000,  # 1969-12-31T23:59:59.9995Z
        1_792_886_400_001_999_000,  # 2026-10-25T00:00:00.001999Z
    ]
    a = load_file(
        store, write("ns.parquet", zoned_ns, pa.timestamp("ns", "Europe/London"), 1), "service_requests"
    )
    assert (a.accepted, a.quarantined) == (3, 0)
    got = dict(store.con.execute("SELECT _row, received_at FROM service_requests").fetchall())
    assert got == {
        1: dt.datetime(2026, 10, 25, 0, 0, 0),
        2: dt.datetime(1969, 12, 31, 23, 59, 59, 999000),
        3: dt.datetime(2026, 10, 25, 0, 0, 0, 1000),
    }


def test_parquet_text_trimming_matches_python_strip_at_every_edge():
    """The Parquet path trims in SQL only where a value starts or ends with a blank; checked
    against Python's `str.strip` over the blank set, value by value: each blank at each end,
    blanks inside kept, a non-breaking space and multi-byte letters at the ends kept, a value of
    only blanks and an empty value both missing."""
    import duckdb
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from opmetrics.ingest.load import _trimmed
    from opmetrics.ingest.validate import BLANK

    con = duckdb.connect()

    def check(values: list[str]) -> None:
        got = con.execute(f"SELECT list_transform(?, lambda v: {_trimmed('v')})", [values]).fetchall()[0][0]
        assert got == [v.strip(BLANK) or None for v in values]

    edges = [f"{b}x" for b in BLANK] + [f"x{b}" for b in BLANK] + [f"{b}x y{b}" for b in BLANK]
    edges += ["", " ", BLANK, "x", "a b", "\u00a0x\u00a0", "é", "éé ", " 日本", "x\t\t"]
    check(edges)
    alphabet = st.sampled_from([*BLANK, "a", "é", "\u00a0", "-", "日"])

    @settings(max_examples=200, deadline=None)
    @given(st.lists(st.text(alphabet, max_size=6), min_size=1, max_size=20))
    def random_values(values: list[str]) -> None:
        check(values)

    random_values()


def test_a_load_that_would_lose_a_row_stores_nothing(store, tmp_path, monkeypatch):
    """Tamper test for the row accounting: if the pass that writes the good rows dropped one,
    accepted + quarantined would fall short of the rows read; the file is refused whole."""
    import opmetrics.ingest.load as load

    real = load.typed_sql
    monkeypatch.setattr(load, "typed_sql", lambda *a: f"SELECT * FROM ({real(*a)}) WHERE _row > 1")
    path = write_csv(tmp_path / "sr.csv", [sr(1), sr(2), sr(3, region="Nowhere")])
    with pytest.raises(IngestError, match="3 rows read but 1 accepted and 1 quarantined"):
        load_file(store, path, "service_requests")
    assert store.count("service_requests") == 0 and store.count("quarantine") == 0
    assert store.count("loaded_files") == 0
