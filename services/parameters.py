"""The body of `POST /api/v1/services/{id}/call` checked against the declared parameters.

The body is a JSON object of declared parameters. An undeclared member, a value of another
type than declared, a missing required parameter: `400 invalid_parameter` naming the
parameter (`parameter` member of the problem), in Chinese, never echoing the value (a
parameter may be a level-4 identity number). A body over `max_body_bytes`:
`413 payload_too_large`. `null` for an optional parameter is the same as leaving it out.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from catalog.models import FieldType
from kernel.problems import Problem, invalid_parameter
from services.package import Parameter, ServiceSpec
from services.paths import is_date_text, is_datetime_text

MAX_BODY_BYTES = 64 * 1024
MAX_STRING_CHARS = 4096
_INT64 = 2**63


@dataclass(frozen=True, slots=True)
class CallLimits:
    max_body_bytes: int = MAX_BODY_BYTES
    max_string_chars: int = MAX_STRING_CHARS


DEFAULT_CALL_LIMITS = CallLimits()


@dataclass(frozen=True, slots=True)
class CallArguments:
    """Checked arguments, split by where the upstream takes them."""

    query: tuple[tuple[str, str], ...]  # as text, in declaration order
    body: Mapping[str, Any]  # as JSON values
    names: tuple[str, ...]  # the parameters given, for the audit event (never the values)


_TYPE_NAMES = {
    FieldType.string: "字符串",
    FieldType.integer: "整数",
    FieldType.number: "数值",
    FieldType.boolean: "布尔值（true 或 false）",
    FieldType.date: "日期（YYYY-MM-DD）",
    FieldType.datetime: "日期时间（ISO 8601）",
}


def _fits(p: Parameter, value: Any, limits: CallLimits) -> bool:
    t = p.type
    if t is FieldType.string:
        return type(value) is str and len(value) <= limits.max_string_chars
    if t is FieldType.integer:
        return type(value) is int and -_INT64 <= value < _INT64
    if t is FieldType.number:
        return (type(value) is int and -_INT64 <= value < _INT64) or type(value) is float
    if t is FieldType.boolean:
        return type(value) is bool
    if type(value) is not str:
        return False
    return is_date_text(value) if t is FieldType.date else is_datetime_text(value)


def _query_text(value: Any) -> str:
    if type(value) is bool:
        return "true" if value else "false"
    return value if type(value) is str else orjson.dumps(value).decode()


def parse_body(body: bytes, limits: CallLimits = DEFAULT_CALL_LIMITS) -> Any:
    """The raw request body as JSON; an empty body is an empty object."""
    if len(body) > limits.max_body_bytes:
        raise Problem(413, "payload_too_large", f"请求体超过 {limits.max_body_bytes} 字节的上限")
    if not body.strip():
        return {}
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        raise invalid_parameter("body", "请求体不是有效的 JSON") from None


def check_arguments(
    service: ServiceSpec, arguments: Any, limits: CallLimits = DEFAULT_CALL_LIMITS
) -> CallArguments:
    """Check a parsed body against the service's parameters."""
    if type(arguments) is not dict:
        raise invalid_parameter("body", "请求体须为 JSON 对象，成员为服务声明的参数")
    declared = service.by_name
    for name in arguments:
        if name not in declared:
            shown = name if len(name) <= 40 else name[:40] + "…"
            known = "、".join(declared) or "（该服务没有参数）"
            raise invalid_parameter(shown, f"服务 {service.name} 没有参数 {shown}；可用：{known}")
    query: list[tuple[str, str]] = []
    body: dict[str, Any] = {}
    names: list[str] = []
    for p in service.parameters:
        value = arguments.get(p.name)
        if value is None:
            if p.required:
                raise invalid_parameter(p.name, f"缺少必填参数 {p.name}")
            continue
        if not _fits(p, value, limits):
            extra = (
                f"，至多 {limits.max_string_chars} 个字符"
                if p.type is FieldType.string and type(value) is str
                else ""
            )
            raise invalid_parameter(p.name, f"参数 {p.name} 须为{_TYPE_NAMES[p.type]}{extra}")
        names.append(p.name)
        if p.location == "query":
            query.append((p.name, _query_text(value)))
        else:
            body[p.name] = value
    return CallArguments(query=tuple(query), body=body, names=tuple(names))


def check_call(
    service: ServiceSpec, raw: bytes, limits: CallLimits = DEFAULT_CALL_LIMITS
) -> CallArguments:
    """`parse_body` then `check_arguments`: the whole check of a call's body."""
    return check_arguments(service, parse_body(raw, limits), limits)
