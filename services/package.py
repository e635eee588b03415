"""Reading a service package (contract §12): a folder holding `service.json`.

Everything is checked before anything is stored, like a dataset package (catalog/package.py,
whose vocabularies of open types, field types and pii kinds this reuses): every refusal is
one Chinese line naming the file and the member. Unknown members are refused rather than
ignored, so that a misspelt `requried` cannot quietly make a parameter optional.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from catalog.models import FieldType, OpenType, Pii

# The catalog's JSON reading helpers: one wording of the same refusals for both packages.
from catalog.package import DATASET_NAME, PackageError, _check_depth, _json_reason, _listing
from services.paths import (
    DEFAULT_PATH_LIMITS,
    PathError,
    PathLimits,
    Tree,
    compile_paths,
    parse_path,
)

FILE = "service.json"
MAX_SERVICE_BYTES = 256 * 1024  # a descriptor is a few kilobytes
MAX_PARAMETERS = 64
MIN_TIMEOUT_MS, MAX_TIMEOUT_MS, DEFAULT_TIMEOUT_MS = 100, 60_000, 3_000
METHODS = ("GET", "POST")
LOCATIONS = ("query", "body")
# Parameter names travel in query strings and JSON bodies of departments' APIs, which use
# camelCase, snake_case and the odd dash: plain ASCII, no quoting needed anywhere.
PARAMETER_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_-]{0,63}")

_TOP = {
    "name",
    "title",
    "description",
    "publisher",
    "theme",
    "keywords",
    "open_type",
    "zone",
    "upstream",
    "parameters",
    "response",
}
_UPSTREAM = {"url", "method", "timeout_ms"}
_PARAMETER = {"name", "in", "type", "required", "level", "pii", "title", "description"}
_RESPONSE = {"fields"}
_RESPONSE_FIELD = {"path", "type", "level", "pii", "title", "description"}


class ServicePackageError(PackageError):
    """A service package that cannot be imported: one line naming where and why."""


@dataclass(frozen=True, slots=True)
class Upstream:
    url: str
    method: str
    timeout_ms: int


@dataclass(frozen=True, slots=True)
class Parameter:
    name: str
    location: str  # "query" | "body" (`in` in service.json)
    type: FieldType
    required: bool
    level: int
    pii: Pii
    title: str = ""
    description: str = ""


@dataclass(frozen=True, slots=True)
class ResponseField:
    path: str  # canonical form (services.paths.canonical)
    type: FieldType
    level: int
    pii: Pii
    title: str = ""
    description: str = ""


@dataclass(frozen=True, slots=True)
class ServiceSpec:
    name: str
    title: str
    description: str
    publisher: str
    theme: str
    keywords: tuple[str, ...]
    open_type: OpenType
    zone: str
    upstream: Upstream
    parameters: tuple[Parameter, ...]
    fields: tuple[ResponseField, ...]
    tree: Tree = field(compare=False, repr=False)

    @property
    def level(self) -> int:
        """Highest wins (就高从严), over what is sent as well as what is answered."""
        return max(x.level for x in (*self.parameters, *self.fields))

    @property
    def by_path(self) -> dict[str, ResponseField]:
        return {f.path: f for f in self.fields}

    @property
    def by_name(self) -> dict[str, Parameter]:
        return {p.name: p for p in self.parameters}


def _fail(where: str, reason: str) -> ServicePackageError:
    return ServicePackageError(f"{FILE}：{where}{reason}")


def _object(value: object, where: str, allowed: set[str]) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _fail(where, " 必须是 JSON 对象")
    unknown = sorted(set(value) - allowed)
    if unknown:
        raise _fail(
            where,
            f" 含有未知成员 {_listing(unknown)}；可用：{_listing(sorted(allowed))}",
        )
    return value


def _text(doc: dict[str, Any], key: str, where: str, *, required: bool = False) -> str:
    value = doc.get(key)
    if value is None:
        value = ""
    if not isinstance(value, str):
        raise _fail(where, f"{key} 必须是字符串")
    if "\x00" in value:
        raise _fail(where, f"{key} 含有 NUL 字符")
    if required and not value.strip():
        raise _fail(where, f"{key} 为必填项，不能为空")
    return value


def _enum(enum: type, doc: dict[str, Any], key: str, where: str, default: str | None) -> Any:
    value = doc.get(key, default)
    allowed = "、".join(m.value for m in enum)
    if value is None:
        raise _fail(where, f"缺少 {key}，可选：{allowed}")
    try:
        return enum(value)
    except ValueError:
        raise _fail(where, f"{key} 的取值 {value!r} 无效，可选：{allowed}") from None


def _level(doc: dict[str, Any], where: str) -> int:
    level = doc.get("level", 1)
    if isinstance(level, bool) or not isinstance(level, int) or not 1 <= level <= 4:
        raise _fail(where, f"level 的取值 {level!r} 无效，须为整数，可选：1、2、3、4")
    return level


def _upstream(raw: object) -> Upstream:
    doc = _object(raw, "upstream", _UPSTREAM)
    url = doc.get("url")
    if not isinstance(url, str) or not url:
        raise _fail("upstream.", "url 为必填项，须为 http:// 或 https:// 地址")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (raises ValueError for a bad port)
    except ValueError:
        raise _fail("upstream.", "url 不是有效的地址") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise _fail("upstream.", "url 须为 http:// 或 https:// 开头的完整地址")
    if parts.username is not None or parts.password is not None:
        # The descriptor is listed in the catalog; a credential in it would be published.
        raise _fail("upstream.", "url 不能含有用户名或密码")
    if parts.fragment or any(c.isspace() for c in url) or len(url) > 2048:
        raise _fail("upstream.", "url 不能含有片段（#）或空白字符，且至多 2048 个字符")
    method = doc.get("method", "GET")
    if method not in METHODS:
        raise _fail("upstream.", f"method 的取值 {method!r} 无效，可选：{'、'.join(METHODS)}")
    timeout = doc.get("timeout_ms", DEFAULT_TIMEOUT_MS)
    if (
        isinstance(timeout, bool)
        or not isinstance(timeout, int)
        or not MIN_TIMEOUT_MS <= timeout <= MAX_TIMEOUT_MS
    ):
        raise _fail(
            "upstream.",
            f"timeout_ms 的取值 {timeout!r} 无效，须为 {MIN_TIMEOUT_MS}–{MAX_TIMEOUT_MS} 的整数"
            "（毫秒）",
        )
    return Upstream(url=url, method=method, timeout_ms=timeout)


def _parameter(raw: object, index: int, method: str) -> Parameter:
    head = f"parameters 第 {index + 1} 项"
    doc = _object(raw, head, _PARAMETER)
    name = doc.get("name")
    if not isinstance(name, str) or not PARAMETER_NAME.fullmatch(name):
        raise _fail(
            f"{head}：",
            f"参数名 name {name!r} 不合法，须以字母或下划线开头，只含字母、数字、下划线和"
            f"连字符，至多 64 个字符（{PARAMETER_NAME.pattern}）",
        )
    where = f"参数 {name}："
    location = doc.get("in")
    if location not in LOCATIONS:
        raise _fail(where, f"in 的取值 {location!r} 无效，可选：{'、'.join(LOCATIONS)}")
    if location == "body" and method == "GET":
        raise _fail(where, "上游方法为 GET，没有请求体，参数只能放在 query 中")
    required = doc.get("required", False)
    if not isinstance(required, bool):
        raise _fail(where, f"required 的取值 {required!r} 无效，可选：true、false")
    return Parameter(
        name=name,
        location=location,
        type=_enum(FieldType, doc, "type", where, "string"),
        required=required,
        level=_level(doc, where),
        pii=_enum(Pii, doc, "pii", where, "none"),
        title=_text(doc, "title", where),
        description=_text(doc, "description", where),
    )


def _response_field(raw: object, index: int, limits: PathLimits) -> ResponseField:
    head = f"response.fields 第 {index + 1} 项"
    doc = _object(raw, head, _RESPONSE_FIELD)
    if "path" not in doc:
        raise _fail(f"{head}：", "缺少 path，形如 $.data.person_name")
    try:
        path = parse_path(doc["path"], limits).text
    except PathError as exc:
        raise _fail(f"{head}：", str(exc)) from None
    where = f"应答字段 {path}："
    return ResponseField(
        path=path,
        type=_enum(FieldType, doc, "type", where, "string"),
        level=_level(doc, where),
        pii=_enum(Pii, doc, "pii", where, "none"),
        title=_text(doc, "title", where),
        description=_text(doc, "description", where),
    )


def _load(descriptor: Path) -> dict[str, Any]:
    if not descriptor.is_file():
        raise ServicePackageError(f"{descriptor}：找不到 {FILE}")
    if descriptor.stat().st_size > MAX_SERVICE_BYTES:
        raise ServicePackageError(f"{FILE}：超过 {MAX_SERVICE_BYTES} 字节的上限")
    try:
        text = descriptor.read_text(encoding="utf-8-sig")
        _check_depth(text, FILE)
        doc = json.loads(text)
    except UnicodeDecodeError as exc:
        raise ServicePackageError(
            f"{FILE}：不是有效的 UTF-8 编码（第 {exc.start + 1} 个字节）"
        ) from None
    except json.JSONDecodeError as exc:
        raise ServicePackageError(
            f"{FILE} 第 {exc.lineno} 行第 {exc.colno} 列：不是有效的 JSON"
            f"（{_json_reason(exc.msg)}）"
        ) from None
    except PackageError as exc:  # nested past MAX_DEPTH
        raise ServicePackageError(str(exc)) from None
    if not isinstance(doc, dict):
        raise ServicePackageError(f"{FILE}：顶层必须是一个 JSON 对象")
    return doc


def read_service(folder: Path, limits: PathLimits = DEFAULT_PATH_LIMITS) -> ServiceSpec:
    """Parse and check the service package in `folder` (or the `service.json` itself)."""
    descriptor = folder / FILE if folder.is_dir() else folder
    return parse_service(_load(descriptor), limits)


def parse_service(doc: object, limits: PathLimits = DEFAULT_PATH_LIMITS) -> ServiceSpec:
    """Check a parsed `service.json` (also for descriptors that never were a file)."""
    doc = _object(doc, "顶层", _TOP)
    name = doc.get("name")
    if not isinstance(name, str) or not DATASET_NAME.fullmatch(name):
        raise _fail(
            "",
            f"服务名称 name {name!r} 不合法，须为 2–64 个小写字母、数字或连字符，以字母或"
            f"数字开头（{DATASET_NAME.pattern}）",
        )
    open_type = _enum(OpenType, doc, "open_type", "", None)
    keywords = doc.get("keywords", [])
    if not isinstance(keywords, list) or not all(
        isinstance(k, str) and "\x00" not in k for k in keywords
    ):
        raise _fail("", "keywords 必须是字符串列表（不含 NUL 字符）")
    if "upstream" not in doc:
        raise _fail("", "缺少 upstream（上游接口的 url、method、timeout_ms）")
    upstream = _upstream(doc["upstream"])

    raw_parameters = doc.get("parameters", [])
    if not isinstance(raw_parameters, list):
        raise _fail("", "parameters 必须是列表")
    if len(raw_parameters) > MAX_PARAMETERS:
        raise _fail("", f"parameters 超过 {MAX_PARAMETERS} 个的上限")
    parameters = tuple(_parameter(raw, i, upstream.method) for i, raw in enumerate(raw_parameters))
    seen: set[str] = set()
    for p in parameters:
        if p.name.lower() in seen:
            raise _fail(f"参数 {p.name}：", "重复定义（参数名不区分大小写）")
        seen.add(p.name.lower())

    response = _object(doc.get("response"), "response", _RESPONSE)
    raw_fields = response.get("fields")
    if not isinstance(raw_fields, list) or not raw_fields:
        raise _fail("response.", "fields 必须是非空列表，声明应答中返回的每个成员")
    if len(raw_fields) > limits.max_paths:
        raise _fail("response.", f"fields 超过 {limits.max_paths} 个的上限")
    fields = tuple(_response_field(raw, i, limits) for i, raw in enumerate(raw_fields))
    try:
        tree = compile_paths(((f.path, f.type.value) for f in fields), limits)
    except PathError as exc:
        raise _fail("response.fields：", str(exc)) from None

    if open_type is OpenType.unconditional:
        for item, what in [*((p, "参数") for p in parameters), *((f, "应答字段") for f in fields)]:
            if item.level > 2:
                label = item.name if isinstance(item, Parameter) else item.path
                raise _fail(
                    f"{what} {label}：",
                    f"无条件开放（unconditional）服务不允许 {item.level} 级{what}（至多 2 级）",
                )
    return ServiceSpec(
        name=name,
        title=_text(doc, "title", "", required=True),
        description=_text(doc, "description", ""),
        publisher=_text(doc, "publisher", ""),
        theme=_text(doc, "theme", ""),
        keywords=tuple(keywords),
        open_type=open_type,
        zone=_text(doc, "zone", "") or "public",
        upstream=upstream,
        parameters=parameters,
        fields=fields,
        tree=tree,
    )
