"""Departments' real files (issue 19, point 4): an .xlsx with Chinese column titles, dates
and IDs typed as numbers and an empty row; CSV in GBK (declared or detected); JSON arrays and
JSON Lines — imported as their CSV would be, on SQLite and PostgreSQL. Every refusal names
the file, the row and the reason in Chinese, and nothing is imported."""

from __future__ import annotations

import json
from datetime import date, datetime
from pathlib import Path
from typing import Any

import openpyxl
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from catalog.importer import import_package
from catalog.package import PackageError

FIELDS = [
    {"name": "record_id", "type": "integer", "title": "序号", "level": 1},
    {"name": "company", "type": "string", "title": "企业名称", "level": 1},
    {"name": "credit_code", "type": "string", "title": "统一社会信用代码", "level": 1},
    {"name": "registered", "type": "date", "title": "成立日期", "level": 1},
    {"name": "capital", "type": "number", "title": "注册资本（万元）", "level": 1},
]
ROWS = [
    [1, "青岛海澜数字科技有限公司", "91370202MA3C1PQ52K", date(2016, 3, 18), 500.0],
    [2, "青岛西海岸港联物流有限公司", "91370211MA3D2RT17X", date(2012, 9, 5), 2000],
    [3, "青岛崂山茶业合作社", "93370212MA3EWQ7D3N", date(2019, 4, 1), 36.5],
]


def package(folder: Path, data_name: str, **resource: Any) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    descriptor = {
        "name": "enterprises",
        "title": "市场主体登记信息",
        "publisher": "市市场监督管理局",
        "open_type": "unconditional",
        "resources": [
            {
                "name": "records",
                "path": data_name,
                "schema": {"primaryKey": "record_id", "fields": FIELDS},
                **resource,
            }
        ],
    }
    (folder / "datapackage.json").write_text(json.dumps(descriptor, ensure_ascii=False))
    return folder


def imported(engine: Engine) -> list[tuple]:
    with engine.connect() as conn:
        table = conn.execute(
            sa.text("SELECT table_name FROM dataset_versions WHERE dataset_id = 'enterprises'")
        ).scalar()
        return [
            tuple(r)
            for r in conn.execute(
                sa.text(
                    f'SELECT record_id, company, credit_code, registered, capital FROM "{table}" '
                    "ORDER BY record_id"
                )
            )
        ]


def nothing_imported(engine: Engine) -> bool:
    with engine.connect() as conn:
        return conn.execute(sa.text("SELECT count(*) FROM datasets")).scalar() == 0


def expected() -> list[tuple]:
    return [(r[0], r[1], r[2], r[3].isoformat(), float(r[4])) for r in ROWS]


def as_rows(rows: list[tuple]) -> list[tuple]:
    return [(r[0], r[1], r[2], str(r[3])[:10], float(r[4])) for r in rows]


def workbook(path: Path, rows: list[list[Any]], *, header: list[str] | None = None) -> Path:
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = "登记信息"
    sheet.append(header or [f["title"] for f in FIELDS])
    for row in rows:
        sheet.append(row)
    book.create_sheet("说明").append(["本表由市市场监督管理局导出"])
    book.save(path)
    return path


def test_an_xlsx_with_chinese_titles_dates_and_an_empty_row(engine: Engine, tmp_path: Path):
    folder = package(tmp_path / "p", "登记信息.xlsx")
    # The credit code typed as text; row 3 empty (a department's spacer row).
    workbook(folder / "登记信息.xlsx", [ROWS[0], [None] * 5, *ROWS[1:]])
    result = import_package(engine, folder)
    assert result.row_count == 3
    assert as_rows(imported(engine)) == expected()


def test_xlsx_refusals_name_the_file_and_the_sheet_row(engine: Engine, tmp_path: Path):
    folder = package(tmp_path / "bad", "登记信息.xlsx")
    bad = [ROWS[0], [None] * 5, [2, "某公司", "x", "不是日期", 1]]
    workbook(folder / "登记信息.xlsx", bad)
    with pytest.raises(PackageError, match=r"登记信息\.xlsx 第 4 行，字段 registered"):
        import_package(engine, folder)
    merged = package(tmp_path / "merged", "合并.xlsx")
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["企业信息", None, "统一社会信用代码", "成立日期", "注册资本（万元）"])
    sheet.merge_cells("A1:B1")
    sheet.append(ROWS[0])
    book.save(merged / "合并.xlsx")
    with pytest.raises(PackageError, match=r"合并\.xlsx 第 1 行：表头含合并单元格"):
        import_package(engine, merged)
    (tmp_path / "notxlsx").mkdir()
    fake = package(tmp_path / "notxlsx", "假的.xlsx")
    (fake / "假的.xlsx").write_text("这不是 Excel 文件")
    with pytest.raises(PackageError, match=r"假的\.xlsx：无法读取该 Excel 文件"):
        import_package(engine, fake)
    assert nothing_imported(engine)


def csv_text(header: list[str]) -> str:
    lines = [",".join(header)]
    lines += [",".join(str(v) for v in r[:3]) + f",{r[3].isoformat()},{r[4]}" for r in ROWS]
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("declared", ["gbk", "gb18030", "auto"])
def test_a_gbk_csv_declared_or_detected(engine: Engine, tmp_path: Path, declared: str):
    folder = package(tmp_path / "p", "登记.csv", format="csv", encoding=declared)
    (folder / "登记.csv").write_bytes(csv_text([f["title"] for f in FIELDS]).encode("gbk"))
    assert import_package(engine, folder).row_count == 3
    assert as_rows(imported(engine)) == expected()


def test_a_gbk_csv_declared_as_utf8_is_refused_in_chinese(engine: Engine, tmp_path: Path):
    folder = package(tmp_path / "p", "登记.csv")
    (folder / "登记.csv").write_bytes(csv_text([f["title"] for f in FIELDS]).encode("gbk"))
    with pytest.raises(PackageError, match=r"登记\.csv 第 1 行：表头不是有效的 UTF-8 编码"):
        import_package(engine, folder)
    assert nothing_imported(engine)


def test_json_arrays_and_json_lines(engine: Engine, tmp_path: Path):
    records = [
        {"序号": r[0], "企业名称": r[1], "credit_code": r[2], "成立日期": r[3].isoformat(),
         "注册资本（万元）": r[4]}
        for r in ROWS
    ]  # fmt: skip
    folder = package(tmp_path / "a", "登记.json")
    (folder / "登记.json").write_text(json.dumps(records, ensure_ascii=False))
    assert import_package(engine, folder).row_count == 3
    assert as_rows(imported(engine)) == expected()
    lines = package(tmp_path / "b", "登记.jsonl")
    (lines / "登记.jsonl").write_text(
        "\n".join(json.dumps(r, ensure_ascii=False) for r in records) + "\n"
    )
    assert import_package(engine, lines, replace=True).row_count == 3


def test_json_refusals_name_the_record(engine: Engine, tmp_path: Path):
    cases = [
        ("登记.jsonl", '{"序号": 1}\n{oops\n', r"登记\.jsonl 第 2 行：不是有效的 JSON"),
        ("登记.json", '{"序号": 1}', r"登记\.json：须为 JSON 数组"),
        ("登记.json", '[{"序号": 1, "电话": "138"}]', r"第 1 条：成员 '电话' 不在 schema 中"),
        ("登记.json", "[[1, 2]]", r"第 1 条：须为 JSON 对象"),
    ]
    for i, (name, text, message) in enumerate(cases):
        folder = package(tmp_path / str(i), name)
        (folder / name).write_text(text, encoding="utf-8")
        with pytest.raises(PackageError, match=message):
            import_package(engine, folder)
    assert nothing_imported(engine)


def test_an_unknown_format_or_encoding_is_refused(tmp_path: Path):
    from catalog.package import read_package

    with pytest.raises(PackageError, match="format 的取值 'parquet2' 无效"):
        read_package(package(tmp_path / "a", "x.csv", format="parquet2"))
    with pytest.raises(PackageError, match="encoding 的取值 'big5' 无效"):
        read_package(package(tmp_path / "b", "x.csv", encoding="big5"))


def test_datetimes_and_serial_numbers_in_date_columns(engine: Engine, tmp_path: Path):
    folder = package(tmp_path / "p", "登记信息.xlsx")
    rows = [
        [1, "甲公司", "A1", datetime(2016, 3, 18, 0, 0), 1],
        [2, "乙公司", "A2", 41157, 2],  # a date cell without its format: Excel's serial
    ]
    workbook(folder / "登记信息.xlsx", rows)
    import_package(engine, folder)
    assert [r[3] for r in as_rows(imported(engine))] == ["2016-03-18", "2012-09-05"]


def test_a_file_that_is_not_the_declared_encoding_names_its_line(engine: Engine, tmp_path: Path):
    folder = package(tmp_path / "p", "登记.csv", encoding="gbk")
    text = csv_text([f["title"] for f in FIELDS]).encode("gbk")
    (folder / "登记.csv").write_bytes(text + b"4,\xff\xfe,x,2020-01-01,1\n")
    with pytest.raises(PackageError, match=r"登记\.csv 第 5 行附近：不是有效的 GBK 编码"):
        import_package(engine, folder)
    assert nothing_imported(engine)
