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
    refusal = "数据集 air-readings 已存在；如要发布它的新版本，命令行请加 --replace"
    with pytest.raises(PackageError, match=refusal):
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
    ("1,a,市南区,abc,1.0,true,2024-01-01,2024-01-01T00:00:00", "第 3 行，字段 aqi", "不是整数"),
    ("1,a,市南区,5,x1,true,2024-01-01,2024-01-01T00:00:00", "第 3 行，字段 pm25", "不是数字"),
    ("1,a,市南区,5,nan,true,2024-01-01,2024-01-01T00:00:00", "字段 pm25", "不是数字"),
    ("1,a,市南区,5,1,maybe,2024-01-01,2024-01-01T00:00:00", "字段 calibrated", "不是布尔值"),
    ("1,a,市南区,5,1,true,2024-02-30,2024-01-01T00:00:00", "字段 day", "不是日期"),
    ("1,a,市南区,5,1,true,2024-01-01,yesterday", "字段 observed_at", "不是日期时间"),
    ("0,a,市南区,5,1,true,2024-01-01,2024-01-01T00:00:00", "字段 reading_id", "与前面某一行重复"),
    (",a,市南区,5,1,true,2024-01-01,2024-01-01T00:00:00", "字段 reading_id", "主键为空"),
    ("1,a,市南区,5", "第 3 行", "有 4 个值，表头却有 8 列"),
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
    ({"name": "Bad_Name"}, "数据集名称 name 'Bad_Name' 不合法"),
    ({"name": "x"}, "数据集名称 name 'x' 不合法"),
    (
        {"open_type": "sometimes"},
        "open_type 的取值 'sometimes' 无效，可选：unconditional、conditional、closed",
    ),
    (
        {"fields": [*STATION_FIELDS[:3], {"name": "aqi", "type": "integer", "level": 3}]},
        "字段 aqi：无条件开放（unconditional）数据集不允许 3 级字段",
    ),
    (
        {"fields": [{"name": "reading_id", "type": "uuid"}]},
        "字段 reading_id：type 的取值 'uuid' 无效，可选：string、integer、number、boolean",
    ),
    ({"fields": [{"name": "reading id", "type": "integer"}]}, "字段名 name 'reading id' 不合法"),
    (
        {"fields": [{"name": "reading_id", "type": "integer", "level": 5}]},
        "字段 reading_id：level 的取值 5 无效，须为整数，可选：1、2、3、4",
    ),
    (
        {"primary_key": "nope"},
        "主键 primaryKey 'nope' 必须是 schema 中的一个字段，可选：reading_id",
    ),
    ({"header": [f["name"] for f in STATION_FIELDS[:-1]]}, "data.csv 第 1 行：缺少列 observed_at"),
    (
        {"header": [*(f["name"] for f in STATION_FIELDS), "extra"]},
        "data.csv 第 1 行：列 extra 不在 schema 中，可选：reading_id、station",
    ),
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


@pytest.mark.parametrize(
    ("descriptor", "data", "expected"),
    [
        (
            '{"name": "x" "title": "y"}',
            None,
            "datapackage.json 第 1 行第 14 列：不是有效的 JSON（缺少逗号）",
        ),
        ("[1, 2]", None, "datapackage.json：顶层必须是一个 JSON 对象"),
        (
            None,
            f'reading_id,station\n1,"{"x" * 131_073}"\n',  # quoted: read row by row
            "data.csv 第 2 行：单元格超过 csv 的长度上限（131072 个字符）",
        ),
    ],
)
def test_malformed_files_are_named_in_chinese(
    engine: Engine, packages: Path, descriptor: str | None, data: str | None, expected: str
):
    fields = STATION_FIELDS[:2]
    package = write_package(packages, fields=fields, data_text=data or "reading_id,station\n")
    if descriptor is not None:
        (package / "datapackage.json").write_text(descriptor, encoding="utf-8")
    with pytest.raises(PackageError) as info:
        import_package(engine, package)
    assert str(info.value) == expected
    assert data_tables(engine) == []


def test_missing_descriptor_and_data_file(engine: Engine, tmp_path: Path, packages: Path):
    with pytest.raises(PackageError, match=r"找不到 datapackage\.json"):
        import_package(engine, tmp_path / "nowhere")
    package = write_package(packages)
    (package / "data.csv").unlink()
    with pytest.raises(PackageError, match=r"resource：找不到数据文件 'data\.csv'"):
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
        (["7", "007"], "主键 '7' 与前面某一行重复"),
        (["1", "9223372036854775808"], "不是整数"),
        (["1", "-9223372036854775809"], "不是整数"),
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
        assert "data.csv 第 5 行，字段 text：含有 NUL 字符" in str(exc)
        assert data_tables(engine) == []
    else:  # SQLite can
        assert engine.dialect.name == "sqlite"
