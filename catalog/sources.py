"""Departments' real files (issue 19, point 4): what a package's resource may be besides a
UTF-8 CSV — an `.xlsx` workbook, a CSV in GBK/GB18030, a JSON array or JSON Lines — turned
into the UTF-8 CSV the importer reads, in one streamed pass, with the columns named by the
schema's field names (a file may head its columns with the fields' Chinese titles).

The converted file keeps the source's name, so every refusal the importer makes names the
department's file; `line_map` gives the source row of each converted line when they
differ (skipped empty spreadsheet rows). Refusals here name the file, the row and the
reason in Chinese; nothing is imported from a file that was refused.
"""

from __future__ import annotations

import codecs
import csv
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import orjson

from catalog.models import FieldType
from catalog.package import FieldSpec, PackageError, PackageSpec

EXCEL_EPOCH = date(1899, 12, 30)  # serial 1 = 1900-01-01, with Excel's 1900 leap-year bug
SNIFF_BYTES = 1 << 16


@dataclass(frozen=True)
class Converted:
    path: Path
    line_map: tuple[int, ...] | None  # the source row of each converted line (1 = header)
    skipped: int = 0  # empty rows left out


def needs_conversion(spec: PackageSpec) -> bool:
    return spec.data_format != "csv" or _encoding(spec) != "utf-8"


def _encoding(spec: PackageSpec) -> str:
    if spec.encoding != "auto":
        return spec.encoding
    with spec.data_path.open("rb") as raw:
        head = raw.read(SNIFF_BYTES)
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 4:  # not a character cut at the sniff's end
            return "gb18030"  # a superset of GBK: what Chinese Windows exports write
    return "utf-8"


def header_names(source: str, header: Sequence[str], fields: Sequence[FieldSpec]) -> list[str]:
    """Each column's field name: given as the name, or as the field's title."""
    by_title = {f.title: f.name for f in fields if f.title}
    names = []
    for i, cell in enumerate(header):
        text = str(cell).strip()
        if not text:
            raise PackageError(
                f"{source} 第 1 行：第 {i + 1} 列的表头为空（合并单元格或多余的空列？"
                "表头须为一行，每列一个字段名或中文名称）"
            )
        names.append(by_title.get(text, text))
    return names


def convert(spec: PackageSpec, folder: Path) -> Converted:
    """The resource as a UTF-8 CSV in `folder`, named as the source."""
    target = folder / spec.data_path.name
    if spec.data_format == "xlsx":
        return _write(target, _xlsx_rows(spec), spec)
    if spec.data_format in ("json", "jsonl"):
        return _write(target, _json_rows(spec), spec)
    return _transcode(spec, _encoding(spec), target)


# (source row, cells — or None for an empty row left out); the first is the header.
Rows = Iterator[tuple[int, list[str] | None]]


def _write(target: Path, rows: Rows, spec: PackageSpec) -> Converted:
    """Rows as (source row, cells or None for a skipped empty row), the first the header."""
    lines: list[int] = []
    skipped = 0
    with target.open("w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out, lineterminator="\n")
        for row_number, cells in rows:
            if cells is None:
                skipped += 1
                continue
            writer.writerow(cells)
            lines.append(row_number)
    if not lines:
        raise PackageError(f"{spec.data_path.name}：文件为空（第 1 行须为表头）")
    dense = all(n == i + 1 for i, n in enumerate(lines))
    return Converted(target, None if dense else tuple(lines), skipped)


# -- CSV in another encoding ------------------------------------------------------------


def _transcode(spec: PackageSpec, encoding: str, target: Path) -> Converted:
    """A CSV in GBK/GB18030 re-encoded as UTF-8 in large chunks at the codecs' C speed (no
    parsing: the importer maps Chinese column titles itself); a byte sequence the encoding
    cannot have is refused naming its line."""
    source = spec.data_path.name
    shown = {"gbk": "GBK", "gb18030": "GB18030"}.get(encoding, encoding.upper())
    decoder = codecs.getincrementaldecoder(encoding)(errors="strict")
    lines = 1
    with spec.data_path.open("rb") as raw, target.open("wb") as out:
        while chunk := raw.read(1 << 20):
            try:
                text = decoder.decode(chunk)
            except UnicodeDecodeError as exc:
                good = decoder.decode(chunk[: exc.start]) if exc.start else ""
                line = lines + good.count("\n")
                raise PackageError(
                    f"{source} 第 {line} 行附近：不是有效的 {shown} 编码"
                    "（请检查 resource 的 encoding 声明，或改存为 UTF-8）"
                ) from None
            lines += text.count("\n")
            out.write(text.encode("utf-8"))
        try:
            out.write(decoder.decode(b"", final=True).encode("utf-8"))
        except UnicodeDecodeError:
            raise PackageError(f"{source} 第 {lines} 行：文件末尾不是完整的 {shown} 字符") from None
    return Converted(target, None)


# -- xlsx ---------------------------------------------------------------------------------


def _xlsx_rows(spec: PackageSpec) -> Rows:
    from python_calamine import CalamineError, CalamineWorkbook

    source = spec.data_path.name
    try:
        book = CalamineWorkbook.from_path(str(spec.data_path))
        names = book.sheet_names
        if spec.sheet and spec.sheet not in names:
            raise PackageError(
                f"{source}：没有名为 {spec.sheet!r} 的工作表，可选：{'、'.join(names)}"
            )
        sheet = book.get_sheet_by_name(spec.sheet) if spec.sheet else book.get_sheet_by_index(0)
        merged = sheet.merged_cell_ranges or []
        rows = sheet.iter_rows()
        header: list[str] | None = None
        types: list[FieldType] = []
        first = sheet.start[0] if sheet.start else 0
        for index, cells in enumerate(rows):
            number = first + index + 1
            if header is None:
                if any(start[0] == first for start, _ in merged):
                    raise PackageError(
                        f"{source} 第 {number} 行：表头含合并单元格，请拆分为每列一个字段名"
                    )
                header = header_names(source, [_text(c) for c in cells], spec.fields)
                by_name = {f.name: f.type for f in spec.fields}
                types = [by_name.get(name, FieldType.string) for name in header]
                yield number, header
                continue
            if all(c is None or c == "" for c in cells):
                yield number, None  # an empty spreadsheet row
                continue
            if len(cells) > len(types):
                extra = [c for c in cells[len(types) :] if c not in (None, "")]
                if extra:
                    raise PackageError(
                        f"{source} 第 {number} 行：表头只有 {len(types)} 列，该行却有更多的值"
                    )
            padded = [*cells[: len(types)], *[None] * (len(types) - len(cells))]
            # A text cell is the common case: passed as it is, without a call.
            yield (
                number,
                [
                    c if type(c) is str else _cell(source, number, header[i], types[i], c)
                    for i, c in enumerate(padded)
                ],
            )
    except CalamineError as exc:
        raise PackageError(f"{source}：无法读取该 Excel 文件（{type(exc).__name__}）") from None


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _cell(source: str, row: int, name: str, kind: FieldType, value: Any) -> str:
    """A cell as the text the CSV importer parses for the field's type."""
    if value is None or value == "":
        return ""
    if kind is FieldType.date:
        if isinstance(value, datetime):
            return value.date().isoformat()
        if isinstance(value, date):
            return value.isoformat()
        if isinstance(value, int | float) and not isinstance(value, bool):
            return _serial(source, row, name, value).date().isoformat()
    if kind is FieldType.datetime:
        if isinstance(value, datetime):
            return value.isoformat()
        if isinstance(value, date):
            return datetime.combine(value, time()).isoformat()
        if isinstance(value, int | float) and not isinstance(value, bool):
            return _serial(source, row, name, value).isoformat()
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if kind is FieldType.integer and value.is_integer():
            return str(int(value))
        if kind is FieldType.string and value.is_integer():
            return str(int(value))  # an ID typed into a number cell: 370202… not 3.7e17
        return repr(value)
    if isinstance(value, datetime | date | time | timedelta):
        return value.isoformat() if not isinstance(value, timedelta) else str(value)
    return str(value)


def _serial(source: str, row: int, name: str, value: float) -> datetime:
    """An Excel date serial number (a date cell without its date format)."""
    if not 0 < value < 2_958_466 or math.isnan(value):
        raise PackageError(f"{source} 第 {row} 行，字段 {name}：{value!r} 不是日期")
    return datetime.combine(EXCEL_EPOCH, time()) + timedelta(days=value)


# -- JSON ---------------------------------------------------------------------------------


def _json_rows(spec: PackageSpec) -> Rows:
    source = spec.data_path.name
    names = [f.name for f in spec.fields]
    by_title = {f.title: f.name for f in spec.fields if f.title}
    yield 1, names
    for number, item in _json_items(spec):
        if not isinstance(item, dict):
            raise PackageError(f"{source} 第 {number} 条：须为 JSON 对象（字段名: 值）")
        row = dict.fromkeys(names, "")
        for key, value in item.items():
            name = by_title.get(key, key)
            if name not in row:
                raise PackageError(
                    f"{source} 第 {number} 条：成员 {str(key)[:40]!r} 不在 schema 中，可选："
                    f"{'、'.join(names)}"
                )
            row[name] = _json_value(source, number, name, value)
        yield number + 1, list(row.values())


def _json_items(spec: PackageSpec) -> Iterator[tuple[int, Any]]:
    source = spec.data_path.name
    if spec.data_format == "jsonl":
        with spec.data_path.open("rb") as raw:
            for number, line in enumerate(raw, start=1):
                if not line.strip():
                    continue
                try:
                    yield number, orjson.loads(line)
                except orjson.JSONDecodeError:
                    raise PackageError(f"{source} 第 {number} 行：不是有效的 JSON") from None
        return
    try:
        doc = orjson.loads(spec.data_path.read_bytes())
    except orjson.JSONDecodeError as exc:
        raise PackageError(f"{source}：不是有效的 JSON（{str(exc).split(':')[0]}）") from None
    if not isinstance(doc, list):
        raise PackageError(f"{source}：须为 JSON 数组，每个元素一条记录")
    yield from enumerate(doc, start=1)


def _json_value(source: str, number: int, name: str, value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float | str):
        return str(value)
    raise PackageError(f"{source} 第 {number} 条，字段 {name}：值须为字符串、数值或布尔值")
