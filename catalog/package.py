"""Reading a dataset package (contract §2): `datapackage.json` plus one CSV resource.

Everything about the package that can be checked without reading the data is checked here,
so the importer only has rows left to worry about.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from catalog.models import FieldType, OpenType, Pii

DATASET_NAME = re.compile(r"[a-z0-9][a-z0-9-]{1,63}")
# Field names become column names: keep them to plain identifiers so they never need
# anything but ordinary quoting, on every database.
FIELD_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")
# A descriptor is a few kilobytes, six levels deep. Limits well above that keep a hostile
# one from exhausting the parser (Python's json recurses once per level).
MAX_DESCRIPTOR_BYTES = 4 * 1024 * 1024
MAX_DEPTH = 32
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
_BRACKET = re.compile(r"[\[\]{}]")


FORMATS = ("csv", "xlsx", "json", "jsonl")
ENCODINGS = ("utf-8", "gbk", "gb18030", "auto")
_SUFFIXES = {".xlsx": "xlsx", ".json": "json", ".jsonl": "jsonl", ".ndjson": "jsonl"}


def _format_of(path: str) -> str:
    return _SUFFIXES.get(Path(path).suffix.lower(), "csv")


class PackageError(ValueError):
    """A package that cannot be imported. The message is one line naming what and where."""


@dataclass(frozen=True, slots=True)
class FieldSpec:
    name: str
    type: FieldType
    title: str
    description: str
    level: int
    pii: Pii
    subject_key: bool


@dataclass(frozen=True, slots=True)
class PackageSpec:
    name: str
    title: str
    description: str
    publisher: str
    theme: str
    keywords: tuple[str, ...]
    open_type: OpenType
    update_frequency: str
    license: str
    zone: str
    primary_key: str
    fields: tuple[FieldSpec, ...]
    data_path: Path
    warnings: tuple[str, ...] = ()  # importable, but the importer should say so
    # A department's real file (catalog/sources.py): its format, a CSV's encoding, the
    # workbook's sheet; after conversion, the source row of each line when they differ.
    data_format: str = "csv"
    encoding: str = "utf-8"
    sheet: str | None = None
    line_map: tuple[int, ...] | None = None

    @property
    def level(self) -> int:
        return max(f.level for f in self.fields)


# json's own reasons, the ones a hand-edited descriptor runs into; any other stays as is.
_JSON_REASONS = {
    "Expecting value": "此处应为一个值",
    "Expecting ',' delimiter": "缺少逗号",
    "Expecting ':' delimiter": "缺少冒号",
    "Expecting property name enclosed in double quotes": "键名须用双引号括起",
    "Unterminated string starting at": "字符串缺少结尾的引号",
    "Invalid control character at": "字符串中有控制字符",
    "Invalid \\escape": "无效的转义序列",
    "Extra data": "JSON 对象之后还有多余内容",
}


def _json_reason(msg: str) -> str:
    return _JSON_REASONS.get(msg, msg)


def _check_depth(text: str, source: str) -> None:
    """Refuse nesting deeper than MAX_DEPTH before json.loads could recurse into it."""
    depth = 0
    for bracket in _BRACKET.finditer(_STRING.sub('""', text)):
        depth += 1 if bracket.group() in "[{" else -1
        if depth > MAX_DEPTH:
            raise PackageError(f"{source}：嵌套超过 {MAX_DEPTH} 层的上限")


def _no_nul(value: object, path: str = "") -> None:
    """Text of the descriptor goes into the catalog tables: PostgreSQL cannot store a NUL,
    and SQLite should not, so it is refused on both, naming where it is."""
    if isinstance(value, str):
        if "\x00" in value:
            raise PackageError(f"datapackage.json：{path or '（键名）'} 含有 NUL 字符")
    elif isinstance(value, dict):
        for key, item in value.items():
            _no_nul(key, path)
            _no_nul(item, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _no_nul(item, f"{path}[{i}]")


def _text(doc: dict, key: str, *, required: bool = False) -> str:
    value = doc.get(key, "")
    if value is None:
        value = ""
    if not isinstance(value, str):
        raise PackageError(f"datapackage.json：{key} 必须是字符串")
    if required and not value.strip():
        raise PackageError(f"datapackage.json：{key} 为必填项，不能为空")
    return value


def _enum(enum: type, value: object, where: str, key: str) -> object:
    try:
        return enum(value)
    except ValueError:
        allowed = "、".join(m.value for m in enum)
        if value is None:
            raise PackageError(f"{where}：缺少 {key}，可选：{allowed}") from None
        raise PackageError(f"{where}：{key} 的取值 {value!r} 无效，可选：{allowed}") from None


def _listing(names: list[str], most: int = 20) -> str:
    """Names for a message, joined the Chinese way, the first `most` of them."""
    shown = "、".join(names[:most])
    return shown if len(names) <= most else f"{shown} 等 {len(names)} 个"


def _field(raw: object, index: int) -> FieldSpec:
    if not isinstance(raw, dict):
        raise PackageError(f"schema.fields 第 {index + 1} 项：必须是 JSON 对象")
    name = raw.get("name")
    if not isinstance(name, str) or not FIELD_NAME.fullmatch(name):
        raise PackageError(
            f"schema.fields 第 {index + 1} 项：字段名 name {name!r} 不合法，须以字母或下划线"
            f"开头，只含字母、数字和下划线，至多 63 个字符（{FIELD_NAME.pattern}）"
        )
    where = f"字段 {name}"
    level = raw.get("level", 1)
    if isinstance(level, bool) or not isinstance(level, int) or not 1 <= level <= 4:
        raise PackageError(f"{where}：level 的取值 {level!r} 无效，须为整数，可选：1、2、3、4")
    subject_key = raw.get("subject_key", False)
    if not isinstance(subject_key, bool):
        raise PackageError(f"{where}：subject_key 的取值 {subject_key!r} 无效，可选：true、false")
    for key in ("title", "description"):
        if not isinstance(raw.get(key, ""), str):
            raise PackageError(f"{where}：{key} 必须是字符串")
    return FieldSpec(
        name=name,
        type=_enum(FieldType, raw.get("type", "string"), where, "type"),  # type: ignore[arg-type]
        title=raw.get("title", "") or "",
        description=raw.get("description", "") or "",
        level=level,
        pii=_enum(Pii, raw.get("pii", "none"), where, "pii"),  # type: ignore[arg-type]
        subject_key=subject_key,
    )


def _primary_key_level(
    primary_key: str, fields: tuple[FieldSpec, ...], open_type: OpenType
) -> tuple[str, ...]:
    """A level-3/4 primary key: refused for unconditional data, a warning otherwise.

    Callers who do not receive the key in clear cannot address single records by it, and
    pages are ordered by it, so a sensitive key is a poor key; a level-1 record id is not.
    """
    key = next(f for f in fields if f.name == primary_key)
    if key.level <= 2:
        return ()
    if open_type is OpenType.unconditional:
        raise PackageError(
            f"resource：主键 primaryKey {primary_key} 为 {key.level} 级；无条件开放"
            "（unconditional）数据集的主键只能是 1 级或 2 级"
        )
    if open_type is OpenType.closed:
        return ()  # no data API at all
    return (
        f"主键 primaryKey {primary_key} 为 {key.level} 级：拿不到其明文的调用方无法按主键"
        "读取单条记录；建议改用 1 级的记录编号作主键",
    )


def read_package(folder: Path) -> PackageSpec:
    """Parse and check the package in `folder` (or the `datapackage.json` path itself)."""
    descriptor = folder / "datapackage.json" if folder.is_dir() else folder
    if not descriptor.is_file():
        raise PackageError(f"{descriptor}：找不到 datapackage.json")
    if descriptor.stat().st_size > MAX_DESCRIPTOR_BYTES:
        raise PackageError(f"{descriptor.name}：超过 {MAX_DESCRIPTOR_BYTES} 字节的上限")
    try:
        text = descriptor.read_text(encoding="utf-8-sig")
        _check_depth(text, descriptor.name)
        doc = json.loads(text)
    except UnicodeDecodeError as exc:
        raise PackageError(
            f"{descriptor.name}：不是有效的 UTF-8 编码（第 {exc.start + 1} 个字节）"
        ) from None
    except json.JSONDecodeError as exc:
        raise PackageError(
            f"{descriptor.name} 第 {exc.lineno} 行第 {exc.colno} 列：不是有效的 JSON"
            f"（{_json_reason(exc.msg)}）"
        ) from None
    if not isinstance(doc, dict):
        raise PackageError(f"{descriptor.name}：顶层必须是一个 JSON 对象")
    _no_nul(doc)

    name = doc.get("name")
    if not isinstance(name, str) or not DATASET_NAME.fullmatch(name):
        raise PackageError(
            f"datapackage.json：数据集名称 name {name!r} 不合法，须为 2–64 个小写字母、数字或"
            f"连字符，以字母或数字开头（{DATASET_NAME.pattern}）"
        )
    open_type = _enum(OpenType, doc.get("open_type"), "datapackage.json", "open_type")
    keywords = doc.get("keywords", [])
    if not isinstance(keywords, list) or not all(isinstance(k, str) for k in keywords):
        raise PackageError("datapackage.json：keywords 必须是字符串列表")

    resources = doc.get("resources")
    if not isinstance(resources, list) or len(resources) != 1:
        raise PackageError("datapackage.json：resources 必须恰好包含一个资源")
    resource = resources[0]
    if not isinstance(resource, dict) or not isinstance(resource.get("path"), str):
        raise PackageError("resource：缺少 path（CSV 数据文件的路径）")
    data_format = resource.get("format") or _format_of(resource["path"])
    if data_format not in FORMATS:
        raise PackageError(
            f"resource：format 的取值 {data_format!r} 无效，可选：{'、'.join(FORMATS)}"
        )
    encoding = str(resource.get("encoding") or "utf-8").lower().replace("_", "-")
    encoding = {"utf8": "utf-8", "utf-8-sig": "utf-8", "cp936": "gbk"}.get(encoding, encoding)
    if encoding not in ENCODINGS:
        raise PackageError(
            f"resource：encoding 的取值 {resource.get('encoding')!r} 无效，可选："
            f"{'、'.join(ENCODINGS)}（auto：自动识别 UTF-8 或 GB18030）"
        )
    sheet = resource.get("sheet")
    if sheet is not None and not isinstance(sheet, str):
        raise PackageError("resource：sheet 须为工作表名称（字符串）")
    data_path = (descriptor.parent / resource["path"]).resolve()
    if descriptor.parent.resolve() not in data_path.parents:
        raise PackageError(f"resource：path {resource['path']!r} 指向数据包目录之外")
    if not data_path.is_file():
        raise PackageError(f"resource：找不到数据文件 {resource['path']!r}")

    schema = resource.get("schema")
    if not isinstance(schema, dict) or not isinstance(schema.get("fields"), list):
        raise PackageError("resource：缺少 schema.fields（字段列表）")
    fields = tuple(_field(raw, i) for i, raw in enumerate(schema["fields"]))
    if not fields:
        raise PackageError("resource：schema.fields 为空，至少需要一个字段")
    seen: set[str] = set()
    for f in fields:
        if f.name.lower() in seen:
            raise PackageError(f"字段 {f.name}：重复定义（字段名不区分大小写）")
        seen.add(f.name.lower())

    primary_key = schema.get("primaryKey")
    if isinstance(primary_key, list) and len(primary_key) == 1:
        primary_key = primary_key[0]
    if not isinstance(primary_key, str) or primary_key not in {f.name for f in fields}:
        raise PackageError(
            f"resource：主键 primaryKey {primary_key!r} 必须是 schema 中的一个字段，"
            f"可选：{_listing([f.name for f in fields])}"
        )
    subject_keys = [f.name for f in fields if f.subject_key]
    if len(subject_keys) > 1:
        raise PackageError(
            f"resource：至多一个字段可设为 subject_key，现有 {_listing(subject_keys)}"
        )
    warnings = _primary_key_level(primary_key, fields, open_type)  # type: ignore[arg-type]

    spec = PackageSpec(
        name=name,
        title=_text(doc, "title", required=True),
        description=_text(doc, "description"),
        publisher=_text(doc, "publisher"),
        theme=_text(doc, "theme"),
        keywords=tuple(keywords),
        open_type=open_type,  # type: ignore[arg-type]
        update_frequency=_text(doc, "update_frequency"),
        license=_text(doc, "license"),
        zone=_text(doc, "zone") or "public",
        primary_key=primary_key,
        fields=fields,
        data_path=data_path,
        warnings=warnings,
        data_format=data_format,
        encoding=encoding,
        sheet=sheet,
    )
    if spec.open_type is OpenType.unconditional:
        for f in fields:
            if f.level > 2:
                raise PackageError(
                    f"字段 {f.name}：无条件开放（unconditional）数据集不允许 {f.level} 级字段"
                    "（至多 2 级）"
                )
    return spec
