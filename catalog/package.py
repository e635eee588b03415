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

    @property
    def level(self) -> int:
        return max(f.level for f in self.fields)


def _check_depth(text: str, source: str) -> None:
    """Refuse nesting deeper than MAX_DEPTH before json.loads could recurse into it."""
    depth = 0
    for bracket in _BRACKET.finditer(_STRING.sub('""', text)):
        depth += 1 if bracket.group() in "[{" else -1
        if depth > MAX_DEPTH:
            raise PackageError(f"{source}: nested deeper than {MAX_DEPTH} levels")


def _no_nul(value: object, path: str = "") -> None:
    """Text of the descriptor goes into the catalog tables: PostgreSQL cannot store a NUL,
    and SQLite should not, so it is refused on both, naming where it is."""
    if isinstance(value, str):
        if "\x00" in value:
            raise PackageError(f"datapackage.json: '{path or '(key)'}' contains a NUL character")
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
        raise PackageError(f"datapackage.json: '{key}' must be a string")
    if required and not value.strip():
        raise PackageError(f"datapackage.json: '{key}' is required")
    return value


def _enum(enum: type, value: object, where: str) -> object:
    try:
        return enum(value)
    except ValueError:
        allowed = ", ".join(m.value for m in enum)
        raise PackageError(f"{where}: {value!r} is not one of {allowed}") from None


def _field(raw: object, index: int) -> FieldSpec:
    if not isinstance(raw, dict):
        raise PackageError(f"field #{index + 1}: must be an object")
    name = raw.get("name")
    if not isinstance(name, str) or not FIELD_NAME.fullmatch(name):
        raise PackageError(f"field #{index + 1}: name {name!r} must match {FIELD_NAME.pattern}")
    where = f"field '{name}'"
    level = raw.get("level", 1)
    if isinstance(level, bool) or not isinstance(level, int) or not 1 <= level <= 4:
        raise PackageError(f"{where}: level must be an integer from 1 to 4, got {level!r}")
    subject_key = raw.get("subject_key", False)
    if not isinstance(subject_key, bool):
        raise PackageError(f"{where}: subject_key must be true or false")
    for key in ("title", "description"):
        if not isinstance(raw.get(key, ""), str):
            raise PackageError(f"{where}: {key} must be a string")
    return FieldSpec(
        name=name,
        type=_enum(FieldType, raw.get("type", "string"), f"{where}: type"),  # type: ignore[arg-type]
        title=raw.get("title", "") or "",
        description=raw.get("description", "") or "",
        level=level,
        pii=_enum(Pii, raw.get("pii", "none"), f"{where}: pii"),  # type: ignore[arg-type]
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
            f"resource: primaryKey '{primary_key}' is level {key.level}; the primary key of "
            "an unconditional dataset must be level 1 or 2"
        )
    if open_type is OpenType.closed:
        return ()  # no data API at all
    return (
        f"primaryKey '{primary_key}' is level {key.level}: callers who do not receive it "
        "in clear cannot read single records by key; prefer a level-1 record id",
    )


def read_package(folder: Path) -> PackageSpec:
    """Parse and check the package in `folder` (or the `datapackage.json` path itself)."""
    descriptor = folder / "datapackage.json" if folder.is_dir() else folder
    if not descriptor.is_file():
        raise PackageError(f"{descriptor}: no datapackage.json found")
    if descriptor.stat().st_size > MAX_DESCRIPTOR_BYTES:
        raise PackageError(f"{descriptor.name}: larger than {MAX_DESCRIPTOR_BYTES} bytes")
    try:
        text = descriptor.read_text(encoding="utf-8-sig")
        _check_depth(text, descriptor.name)
        doc = json.loads(text)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PackageError(f"{descriptor.name}: not valid UTF-8 JSON ({exc})") from None
    if not isinstance(doc, dict):
        raise PackageError(f"{descriptor.name}: must hold a JSON object")
    _no_nul(doc)

    name = doc.get("name")
    if not isinstance(name, str) or not DATASET_NAME.fullmatch(name):
        raise PackageError(f"datapackage.json: name {name!r} must match {DATASET_NAME.pattern}")
    open_type = _enum(OpenType, doc.get("open_type"), "datapackage.json: open_type")
    keywords = doc.get("keywords", [])
    if not isinstance(keywords, list) or not all(isinstance(k, str) for k in keywords):
        raise PackageError("datapackage.json: keywords must be a list of strings")

    resources = doc.get("resources")
    if not isinstance(resources, list) or len(resources) != 1:
        raise PackageError("datapackage.json: exactly one resource is required")
    resource = resources[0]
    if not isinstance(resource, dict) or not isinstance(resource.get("path"), str):
        raise PackageError("resource: 'path' to a CSV file is required")
    if resource.get("format", "csv") != "csv":
        raise PackageError(f"resource: format {resource.get('format')!r} is not csv")
    data_path = (descriptor.parent / resource["path"]).resolve()
    if descriptor.parent.resolve() not in data_path.parents:
        raise PackageError(f"resource: path {resource['path']!r} leaves the package folder")
    if not data_path.is_file():
        raise PackageError(f"resource: data file {resource['path']!r} not found")

    schema = resource.get("schema")
    if not isinstance(schema, dict) or not isinstance(schema.get("fields"), list):
        raise PackageError("resource: schema.fields is required")
    fields = tuple(_field(raw, i) for i, raw in enumerate(schema["fields"]))
    if not fields:
        raise PackageError("resource: schema.fields is empty")
    seen: set[str] = set()
    for f in fields:
        if f.name.lower() in seen:
            raise PackageError(f"field '{f.name}': defined twice")
        seen.add(f.name.lower())

    primary_key = schema.get("primaryKey")
    if isinstance(primary_key, list) and len(primary_key) == 1:
        primary_key = primary_key[0]
    if not isinstance(primary_key, str) or primary_key not in {f.name for f in fields}:
        raise PackageError(
            f"resource: primaryKey {primary_key!r} must name one field of the schema"
        )
    if sum(f.subject_key for f in fields) > 1:
        raise PackageError("resource: at most one field may be the subject_key")
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
    )
    if spec.open_type is OpenType.unconditional:
        for f in fields:
            if f.level > 2:
                raise PackageError(
                    f"field '{f.name}': level {f.level} is not allowed in an unconditional "
                    "dataset (at most 2)"
                )
    return spec
