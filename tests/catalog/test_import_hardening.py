"""Issue 12, finding 13: NUL characters refused at import on both databases, package JSON
depth limited (one line, no RecursionError), ASCII digits only in typed columns."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from catalog.importer import import_package
from catalog.package import MAX_DEPTH, PackageError, read_package
from tests.gateway.test_cli import assert_one_line_error, run
from tests.packages import station_rows, write_package


def nothing_imported(engine: Engine) -> None:
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM datasets")).scalar_one() == 0
    assert not [t for t in sa.inspect(engine).get_table_names() if t.startswith("data_")]


def test_nul_in_a_cell_is_refused_naming_line_and_field(engine: Engine, packages: Path):
    rows = station_rows(5)
    rows[1][1] = "市南\x00站"  # CSV line 3, field station
    with pytest.raises(PackageError) as info:
        import_package(engine, write_package(packages, rows=rows))
    assert str(info.value) == "data.csv 第 3 行，字段 station：含有 NUL 字符"
    nothing_imported(engine)


def test_nul_in_the_header_is_refused(engine: Engine, packages: Path):
    package = write_package(packages)
    data = package / "data.csv"
    data.write_text(data.read_text(encoding="utf-8").replace("station", "sta\x00tion", 1))
    with pytest.raises(PackageError, match=r"data\.csv 第 1 行：第 2 列的列名含有 NUL 字符"):
        import_package(engine, package)
    nothing_imported(engine)


def test_nul_in_the_descriptor_is_refused(engine: Engine, packages: Path):
    with pytest.raises(PackageError, match=r"datapackage\.json：title 含有 NUL 字符"):
        import_package(engine, write_package(packages, title="空气\x00质量"))
    fields = [{"name": "reading_id", "type": "integer", "description": "编\x00号"}]
    with pytest.raises(PackageError, match=r"fields\[0\]\.description 含有 NUL 字符"):
        import_package(engine, write_package(packages, name="other", fields=fields, rows=[[1]]))
    nothing_imported(engine)


def test_full_width_digits_are_not_integers(engine: Engine, packages: Path):
    rows = station_rows(5)
    rows[2][3] = "１２"  # aqi, an integer field
    with pytest.raises(PackageError, match=r"data.csv 第 4 行，字段 aqi：值 '１２' 不是整数"):
        import_package(engine, write_package(packages, rows=rows))
    rows = station_rows(5)
    rows[0][4] = "１.５"  # pm25, a number
    with pytest.raises(PackageError, match=r"data.csv 第 2 行，字段 pm25：值 '１.５' 不是数字"):
        import_package(engine, write_package(packages, rows=rows))
    nothing_imported(engine)


def deep(levels: int) -> str:
    return "[" * levels + "]" * levels


def nested_package(packages: Path, levels: int) -> Path:
    package = write_package(packages)
    descriptor = package / "datapackage.json"
    doc = descriptor.read_text(encoding="utf-8")
    # `[[…]]` inside strings does not count, nesting outside does
    doc = doc.replace('"license"', f'"x-text": "{deep(500)}", "x-deep": {deep(levels)}, "license"')
    descriptor.write_text(doc, encoding="utf-8")
    return package


def test_nesting_is_limited(packages: Path):
    read_package(nested_package(packages, MAX_DEPTH - 3))  # strings with brackets are fine
    with pytest.raises(PackageError, match=f"datapackage.json：嵌套超过 {MAX_DEPTH} 层的上限"):
        read_package(nested_package(packages, MAX_DEPTH))


def test_deeply_nested_package_is_one_line_in_the_cli(tmp_path: Path):
    assert run(["migrate"], tmp_path).returncode == 0
    package = nested_package(tmp_path / "pkgs", 200_000)  # json.loads: RecursionError
    result = run(["datasets", "import", str(package)], tmp_path)
    assert_one_line_error(result, "datapackage.json：嵌套超过 32 层的上限")


def test_descriptor_stays_valid_json(packages: Path):
    json.loads((nested_package(packages, 3) / "datapackage.json").read_text(encoding="utf-8"))
