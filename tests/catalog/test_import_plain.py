"""The fast PostgreSQL load of plain CSV files (catalog.csv_copy): the same rows as the
row-by-row load, and everything it cannot vouch for handed back to the row loader, which
names the line, field and reason."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from catalog.importer import import_package
from catalog.package import PackageError
from tests.catalog import test_import as classic
from tests.catalog.test_import import counts, data_tables
from tests.packages import STATION_FIELDS, station_rows, write_package

HEADER = ",".join(f["name"] for f in STATION_FIELDS)
GOOD = "0,b,市北区,1,1.0,false,2024-01-01,2024-01-01T00:00:00"


def csv_text(rows: list[list[object]], quoting: int) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, quoting=quoting, lineterminator="\n")
    writer.writerows([[f["name"] for f in STATION_FIELDS], *rows])
    return buffer.getvalue()


def stored(engine: Engine, table: str, dataset: str) -> tuple[list[tuple], list[bool]]:
    with engine.connect() as conn:
        rows = conn.execute(sa.text(f"SELECT * FROM {table} ORDER BY reading_id")).all()
        nulls = conn.execute(
            sa.text("SELECT has_nulls FROM dataset_fields WHERE dataset_id = :d ORDER BY position"),
            {"d": dataset},
        ).scalars()
        return [tuple(r) for r in rows], list(nulls)


def test_a_plain_file_loads_the_same_rows_as_the_row_loader(engine: Engine, packages: Path):
    rows = station_rows(500)
    plain = write_package(packages, data_text=csv_text(rows, csv.QUOTE_MINIMAL))
    quoted = write_package(packages, name="quoted", data_text=csv_text(rows, csv.QUOTE_ALL))
    fast = import_package(engine, plain)
    slow = import_package(engine, quoted)
    assert fast.plain_copy is (engine.dialect.name == "postgresql")
    assert slow.plain_copy is False
    assert fast.row_count == slow.row_count == 500
    first = stored(engine, "data_air_readings_v1", "air-readings")
    second = stored(engine, "data_quoted_v1", "quoted")
    assert first == second
    # station_rows leaves every 7th aqi and every 11th pm25 empty, nothing else.
    assert first[1] == [False, False, False, True, True, False, False, False]
    assert first[0][6][3] is None and first[0][10][4] is None


def test_reordered_columns_and_a_bom_take_the_plain_path(engine: Engine, packages: Path):
    names = [f["name"] for f in STATION_FIELDS]
    text = "\ufeff" + ",".join(reversed(names)) + "\n" + ",".join(reversed(GOOD.split(","))) + "\n"
    result = import_package(engine, write_package(packages, data_text=text))
    assert result.plain_copy is (engine.dialect.name == "postgresql")
    with engine.connect() as conn:
        row = conn.execute(sa.text("SELECT reading_id, station, aqi FROM data_air_readings_v1"))
        assert tuple(row.one()) == (0, "b", 1)


def test_row_keys_are_drawn_by_the_server_on_the_plain_path(engine: Engine, packages: Path):
    result = import_package(
        engine, write_package(packages, open_type="conditional", rows=station_rows(2000))
    )
    assert result.plain_copy is (engine.dialect.name == "postgresql")
    with engine.connect() as conn:
        query = "SELECT _row FROM data_air_readings_v1 ORDER BY reading_id"
        keys = conn.execute(sa.text(query)).scalars().all()
        defaults = conn.execute(
            sa.text(
                "SELECT count(*) FROM pragma_table_info('data_air_readings_v1') "
                "WHERE dflt_value IS NOT NULL"
                if engine.dialect.name == "sqlite"
                else "SELECT count(*) FROM information_schema.columns WHERE table_name = "
                "'data_air_readings_v1' AND column_default IS NOT NULL"
            )
        ).scalar_one()
    assert len(keys) == len(set(keys)) == 2000
    assert all(0 <= k < 1 << 62 for k in keys)
    assert max(keys) > 1 << 61 and min(keys) < 1 << 60  # spread over the 62 bits
    assert keys != sorted(keys)  # in no relation to the file's order
    assert defaults == 0  # the server's default was only for the load


def test_a_dataset_with_a_subject_key_goes_row_by_row(engine: Engine, packages: Path):
    fields = [
        {"name": "record_id", "type": "integer", "level": 1},
        {"name": "id_number", "type": "string", "level": 4, "pii": "id_number"}
        | {"subject_key": True},
    ]
    text = "record_id,id_number\n1,370202199001011237\n"
    package = write_package(
        packages, name="si", open_type="conditional", fields=fields, data_text=text
    )
    result = import_package(engine, package, subject_hmac=lambda v: "h" * 64)
    assert result.plain_copy is False
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT _subject_hmac FROM data_si_v1")).scalar_one() == (
            "h" * 64
        )


# Cells PostgreSQL would read but the package format refuses: the plain path must hand
# them back so that the row loader refuses them as it always has.
LENIENT = [
    ("1,a,市南区,5,1,t,2024-01-01,2024-01-01T00:00:00", "第 3 行，字段 calibrated", "不是布尔值"),
    ("1,a,市南区,5,1,yes,2024-01-01,2024-01-01T00:00:00", "第 3 行，字段 calibrated", "不是布尔值"),
    ("1,a,市南区,5,Infinity,true,2024-01-01,2024-01-01T00:00:00", "第 3 行，字段 pm25", "不是数字"),
    ("1,a,市南区,5,1e400,true,2024-01-01,2024-01-01T00:00:00", "第 3 行，字段 pm25", "不是数字"),
    ("1,a,市南区,5,1,true,2024-1-01,2024-01-01T00:00:00", "第 3 行，字段 day", "不是日期（"),
    ("1,a,市南区,5,1,true,20240101,2024-01-01T00:00:00", "第 3 行，字段 day", "不是日期（"),
    ("1,a,市南区,5,1,true,0000-01-01,2024-01-01T00:00:00", "第 3 行，字段 day", "不是日期（"),
    ("1,a,市南区,5,1,true,2024-13-01,2024-01-01T00:00:00", "第 3 行，字段 day", "不是日期（"),
    ("1,a,市南区,5,1,true,2024-01-01,2024-01-01T24:00:00", "字段 observed_at", "不是日期时间"),
    ("1,a,市南区,5,1,true,2024-01-01,2024-01-01T23:59:60", "字段 observed_at", "不是日期时间"),
    ("1,a,市南区,5,1,true,2024-01-01,2024-02-30T10:00:00", "字段 observed_at", "不是日期时间"),
    ("1,a,市南区,99999999999999999999,1,true,2024-01-01,", "第 3 行，字段 aqi", "不是整数"),
    ("1,a,市南区,--5,1,true,2024-01-01,", "第 3 行，字段 aqi", "不是整数"),
    ("1,a,市南区,5-,1,true,2024-01-01,", "第 3 行，字段 aqi", "不是整数"),
    ("00,a,市南区,5,1,true,2024-01-01,", "第 3 行，字段 reading_id", "与前面某一行重复"),
    (",a,市南区,5,1,true,2024-01-01,", "第 3 行，字段 reading_id", "主键为空"),
    ("1,a,市南区,5,1,true,2024-01-01,,extra", "第 3 行", "有 9 个值，表头却有 8 列"),
]


@pytest.mark.parametrize(("row", "where", "reason"), LENIENT)
def test_what_only_postgresql_would_read_is_refused_as_before(
    engine: Engine, packages: Path, row: str, where: str, reason: str
):
    # The same checks as for the classic bad rows: line, field, reason, one line, nothing
    # changed.
    classic.test_bad_rows_name_line_field_and_reason_and_change_nothing(
        engine, packages, row, where, reason
    )


def test_invalid_utf8_in_a_cell_is_refused_with_its_line(engine: Engine, packages: Path):
    # Far enough down that the header is decoded alone (the reader decodes in blocks).
    package = write_package(packages, rows=station_rows(400))
    good = (package / "data.csv").read_bytes()
    (package / "data.csv").write_bytes(good + b"401,\xff\xfe,x,5,,,,\n")
    with pytest.raises(PackageError, match=r"第 \d+ 行附近：不是有效的 UTF-8 编码"):
        import_package(engine, package)
    assert counts(engine) == (0, 0, 0)
    assert data_tables(engine) == []


def test_cells_the_fast_checks_leave_to_the_row_loader_are_stored_as_before(
    engine: Engine, packages: Path
):
    # Valid for the package format, but not in the plain form csv_copy vouches for: an
    # offset (stored as UTC), a space before the time, a "+" sign.
    text = (
        f"{HEADER}\n{GOOD}\n"
        "1,a,市南区,+5,1,true,2024-01-01,2024-01-01T08:00:00+08:00\n"
        "2,a,市南区,5,1,true,2024-01-01,2024-01-01 09:30:00\n"
    )
    result = import_package(engine, write_package(packages, data_text=text))
    assert result.plain_copy is False
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text("SELECT aqi, observed_at FROM data_air_readings_v1 ORDER BY reading_id")
        ).all()
    times = [str(r[1]).replace(" ", "T") for r in rows]
    assert [r[0] for r in rows] == [1, 5, 5]
    assert times == ["2024-01-01T00:00:00", "2024-01-01T00:00:00", "2024-01-01T09:30:00"]
