"""Package import: typed tables, versions, and all-or-nothing failure on bad input."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from catalog.importer import import_package
from catalog.package import PackageError
from tests.packages import STATION_FIELDS, station_rows, write_package


def data_tables(engine: Engine) -> list[str]:
    return sorted(t for t in sa.inspect(engine).get_table_names() if t.startswith("data_"))


def counts(engine: Engine) -> tuple[int, int, int]:
    with engine.connect() as conn:
        return tuple(  # type: ignore[return-value]
            conn.execute(sa.text(f"SELECT count(*) FROM {t}")).scalar_one()
            for t in ("datasets", "dataset_versions", "dataset_fields")
        )


def test_import_creates_typed_table_with_primary_key_index(engine: Engine, packages: Path):
    result = import_package(engine, write_package(packages))
    assert (result.dataset_id, result.version, result.row_count) == ("air-readings", 1, 250)
    inspector = sa.inspect(engine)
    assert data_tables(engine) == ["data_air_readings_v1"]
    columns = {c["name"]: c["type"] for c in inspector.get_columns("data_air_readings_v1")}
    assert list(columns) == [f["name"] for f in STATION_FIELDS]
    assert isinstance(columns["aqi"], sa.Integer)
    assert isinstance(columns["pm25"], sa.Float)
    unique = inspector.get_pk_constraint("data_air_readings_v1")["constrained_columns"] or [
        c
        for ix in inspector.get_indexes("data_air_readings_v1")
        if ix["unique"]
        for c in ix["column_names"]
    ]
    assert unique == ["reading_id"]
    with engine.connect() as conn:
        nulls = conn.execute(
            sa.text("SELECT count(*) FROM data_air_readings_v1 WHERE aqi IS NULL")
        ).scalar_one()
    assert nulls == 250 // 7


def test_existing_dataset_needs_replace(engine: Engine, packages: Path):
    package = write_package(packages)
    import_package(engine, package)
    with pytest.raises(PackageError, match="already exists; use --replace"):
        import_package(engine, package)
    assert counts(engine) == (1, 1, len(STATION_FIELDS))


def test_replace_publishes_new_version_and_drops_versions_two_behind(
    engine: Engine, packages: Path
):
    package = write_package(packages)
    import_package(engine, package)
    write_package(packages, rows=station_rows(10))
    second = import_package(engine, package, replace=True)
    assert (second.version, second.row_count) == (2, 10)
    assert data_tables(engine) == ["data_air_readings_v1", "data_air_readings_v2"]
    third = import_package(engine, package, replace=True)
    assert third.version == 3
    # the previous version stays for readers with a cached view; older ones go
    assert data_tables(engine) == ["data_air_readings_v2", "data_air_readings_v3"]
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT current_version, row_count FROM datasets")).one() == (
            3,
            10,
        )


def test_skip_unchanged_is_a_no_op(engine: Engine, packages: Path):
    package = write_package(packages)
    import_package(engine, package)
    again = import_package(engine, package, replace=True, skip_unchanged=True)
    assert again.unchanged and again.version == 1
    assert data_tables(engine) == ["data_air_readings_v1"]


def test_bom_and_reordered_columns_are_accepted(engine: Engine, packages: Path):
    header = [
        "station",
        "reading_id",
        "district",
        "aqi",
        "pm25",
        "calibrated",
        "day",
        "observed_at",
    ]
    text = (
        "\ufeff"
        + ",".join(header)
        + "\n市南站,1,市南区,42,3.5,true,2024-05-01,2024-05-01T08:00:00\n"
    )
    result = import_package(engine, write_package(packages, data_text=text))
    assert result.row_count == 1
    with engine.connect() as conn:
        row = conn.execute(sa.text("SELECT reading_id, station FROM data_air_readings_v1")).one()
    assert tuple(row) == (1, "市南站")


BAD_ROWS = [
    ("1,a,市南区,abc,1.0,true,2024-01-01,2024-01-01T00:00:00", "line 3, field 'aqi'", "integer"),
    ("1,a,市南区,5,x1,true,2024-01-01,2024-01-01T00:00:00", "line 3, field 'pm25'", "number"),
    ("1,a,市南区,5,nan,true,2024-01-01,2024-01-01T00:00:00", "field 'pm25'", "number"),
    ("1,a,市南区,5,1,maybe,2024-01-01,2024-01-01T00:00:00", "field 'calibrated'", "boolean"),
    ("1,a,市南区,5,1,true,2024-02-30,2024-01-01T00:00:00", "field 'day'", "date"),
    ("1,a,市南区,5,1,true,2024-01-01,yesterday", "field 'observed_at'", "datetime"),
    ("0,a,市南区,5,1,true,2024-01-01,2024-01-01T00:00:00", "field 'reading_id'", "repeats"),
    (",a,市南区,5,1,true,2024-01-01,2024-01-01T00:00:00", "field 'reading_id'", "empty"),
    ("1,a,市南区,5", "line 3", "4 values"),
]


@pytest.mark.parametrize(("row", "where", "reason"), BAD_ROWS)
def test_bad_rows_name_line_field_and_reason_and_change_nothing(
    engine: Engine, packages: Path, row: str, where: str, reason: str
):
    header = ",".join(f["name"] for f in STATION_FIELDS)
    text = f"{header}\n0,b,市北区,1,1.0,false,2024-01-01,2024-01-01T00:00:00\n{row}\n"
    with pytest.raises(PackageError) as info:
        import_package(engine, write_package(packages, data_text=text))
    message = str(info.value)
    assert where in message and reason in message
    assert "\n" not in message
    assert counts(engine) == (0, 0, 0)
    assert data_tables(engine) == []


def test_failed_replace_keeps_the_published_version(engine: Engine, packages: Path):
    package = write_package(packages)
    import_package(engine, package)
    header = ",".join(f["name"] for f in STATION_FIELDS)
    write_package(packages, data_text=f"{header}\n1,a,市南区,bad,1,true,2024-01-01,\n")
    with pytest.raises(PackageError):
        import_package(engine, package, replace=True)
    assert data_tables(engine) == ["data_air_readings_v1"]
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT current_version FROM datasets")).scalar_one() == 1


SENSITIVE = [
    {"name": "record_id", "type": "integer", "level": 1},
    {"name": "id_number", "type": "string", "level": 4, "pii": "id_number", "subject_key": True},
    {"name": "monthly_base", "type": "integer", "level": 3},
]


def test_errors_never_echo_sensitive_values(engine: Engine, packages: Path):
    text = "record_id,id_number,monthly_base\n1,370202199001011237,SECRET-9\n"
    with pytest.raises(PackageError) as info:
        import_package(
            engine,
            write_package(
                packages, name="si", open_type="conditional", fields=SENSITIVE, data_text=text
            ),
        )
    assert "monthly_base" in str(info.value)
    assert "SECRET" not in str(info.value)


BAD_PACKAGES = [
    ({"name": "Bad_Name"}, "name"),
    ({"name": "x"}, "name"),
    ({"open_type": "sometimes"}, "open_type"),
    (
        {"fields": [*STATION_FIELDS[:3], {"name": "aqi", "type": "integer", "level": 3}]},
        "level 3 is not allowed in an unconditional",
    ),
    ({"fields": [{"name": "reading_id", "type": "uuid"}]}, "type"),
    ({"fields": [{"name": "reading id", "type": "integer"}]}, "name"),
    ({"fields": [{"name": "reading_id", "type": "integer", "level": 5}]}, "level"),
    ({"primary_key": "nope"}, "primaryKey"),
    ({"header": [f["name"] for f in STATION_FIELDS[:-1]]}, "column 'observed_at' is missing"),
    ({"header": [*(f["name"] for f in STATION_FIELDS), "extra"]}, "column 'extra' is not in"),
]


@pytest.mark.parametrize(("change", "expected"), BAD_PACKAGES)
def test_bad_packages_are_refused_whole(
    engine: Engine, packages: Path, change: dict, expected: str
):
    kwargs = dict(change)
    if "header" in kwargs:
        kwargs["rows"] = []
    with pytest.raises(PackageError, match=expected):
        import_package(engine, write_package(packages, **kwargs))
    assert counts(engine) == (0, 0, 0)
    assert data_tables(engine) == []


def test_missing_descriptor_and_data_file(engine: Engine, tmp_path: Path, packages: Path):
    with pytest.raises(PackageError, match=r"no datapackage\.json"):
        import_package(engine, tmp_path / "nowhere")
    package = write_package(packages)
    (package / "data.csv").unlink()
    with pytest.raises(PackageError, match="not found"):
        import_package(engine, package)
    (package / "data.csv").write_bytes(b"reading_id\n\xff\xfe\n")
    with pytest.raises(PackageError):
        import_package(engine, package)


def test_special_characters_round_trip(engine: Engine, packages: Path):
    fields = [
        {"name": "k", "type": "integer", "level": 1},
        {"name": "text", "type": "string", "level": 1},
    ]
    values = ["tab\there", "back\\slash \\N", "two\nlines", "cr\rlf", 'quote " 引号', "\\."]
    buffer = io.StringIO()
    writer = csv.writer(buffer, quoting=csv.QUOTE_ALL, lineterminator="\n")
    writer.writerows([["k", "text"], *([i, v] for i, v in enumerate(values, start=1))])
    package = write_package(packages, name="odd", fields=fields, data_text=buffer.getvalue())
    import_package(engine, package)
    with engine.connect() as conn:
        stored = conn.execute(sa.text("SELECT text FROM data_odd_v1 ORDER BY k")).scalars().all()
    assert stored == values


@pytest.mark.parametrize(
    ("cells", "reason"),
    [
        (["7", "007"], "repeats"),
        (["1", "9223372036854775808"], "integer"),
        (["1", "-9223372036854775809"], "integer"),
    ],
)
def test_integer_keys_are_canonical_and_in_range(
    engine: Engine, packages: Path, cells: list[str], reason: str
):
    fields = [{"name": "k", "type": "integer", "level": 1}]
    with pytest.raises(PackageError, match=reason):
        import_package(
            engine, write_package(packages, name="keys", fields=fields, rows=[[c] for c in cells])
        )
    assert data_tables(engine) == []


def test_nul_characters_are_refused_with_their_line(engine: Engine, packages: Path):
    fields = [
        {"name": "k", "type": "integer", "level": 1},
        {"name": "text", "type": "string", "level": 1},
    ]
    text = 'k,text\n1,fine\n2,"multi\nline"\n3,bad\x00byte\n'
    try:
        import_package(engine, write_package(packages, name="nul", fields=fields, data_text=text))
    except PackageError as exc:  # PostgreSQL cannot store NUL in text
        assert "line 5, field 'text'" in str(exc)
        assert data_tables(engine) == []
    else:  # SQLite can
        assert engine.dialect.name == "sqlite"
