"""Records queries: query-string parameters → a validated `RecordQuery`, and cursors.

Everything a client sends is checked against the field dictionary here; `statements.py`
turns the result into SQL. Pages are keyset-paginated: the cursor holds the order-key
values of the last row sent, sealed (catalog.cursors) so the caller can neither read nor
forge them; a page deep in the table costs what the first one does (an index seek), and
no row is skipped or repeated.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from catalog.cursors import BoundCursors
from catalog.hosted import ROW_COLUMN, HostedDataset, HostedField
from catalog.models import FieldType
from catalog.values import parse_integer, parse_value, to_storage
from kernel.problems import Problem, invalid_parameter

# `csv_formulas` is the CSV renderer's (gateway.formats); here it is only not a filter.
RESERVED = frozenset({"fields", "order_by", "limit", "cursor", "format", "csv_formulas"})
OPERATORS = frozenset(
    {"eq", "ne", "gt", "gte", "lt", "lte", "in", "contains", "startswith", "isnull"}
)
MAX_IN_VALUES = 1000
# Bounds on what a query may ask of the database, so that it is refused here, by name,
# and not by SQLite ("Expression tree is too large", "LIKE or GLOB pattern too complex").
MAX_FILTERS = 50
MAX_VALUE_LENGTH = 1000  # characters of one filter value (of each `in` item too)
DEFAULT_LIMIT = 100
MAX_LIMIT = 10_000


@dataclass(frozen=True, slots=True)
class Filter:
    field: str
    op: str
    value: Any  # storage form; a tuple for `in`, a bool for `isnull`


@dataclass(frozen=True, slots=True)
class RecordQuery:
    fields: tuple[str, ...]
    filters: tuple[Filter, ...]
    order: tuple[tuple[str, bool], ...]  # (field, descending); always ends with the key
    limit: int
    after: tuple[Any, ...] | None = None
    # The CKAN channel's window (docs/contract-ckan.md): rows skipped in the query's order,
    # None on keyset pages. Only `Access.fetch_window` sets it.
    offset: int | None = None
    # A substring of any of these (clear, string) fields: CKAN's `q`; None: no search.
    search: tuple[tuple[str, ...], str] | None = None

    @property
    def order_signature(self) -> str:
        return ",".join(("-" if desc else "") + name for name, desc in self.order)


class FieldAccess:
    """Which fields a caller may see, and which of those it may filter and order on.

    Filtering or ordering on a field that is not sent in clear would turn the filter into
    an oracle for the hidden value, so only `clear` fields qualify.
    """

    def __init__(self, visible: Sequence[str], clear: Collection[str]) -> None:
        self.visible = tuple(visible)
        self.visible_set = frozenset(visible)
        self.clear = frozenset(clear)

    def check_usable(self, parameter: str, name: str, hosted: HostedDataset) -> HostedField:
        field = hosted.by_name.get(name)
        if field is None or name not in self.visible_set:
            raise invalid_parameter(
                parameter, f"参数 {parameter}：数据集 {hosted.id} 没有字段 {name}"
            )
        if name not in self.clear:
            raise Problem(
                400,
                "field_not_permitted",
                f"字段 {name} 未以明文提供给调用方，不能用于筛选或排序",
                parameter=parameter,
            )
        return field


def _limit(raw: str | None) -> int:
    if raw is None:
        return DEFAULT_LIMIT
    try:
        limit = parse_integer(raw)  # ASCII digits only: int() would take "１０"
    except ValueError:
        limit = 0
    if not 1 <= limit <= MAX_LIMIT:
        raise invalid_parameter("limit", f"limit 必须是 1 到 {MAX_LIMIT} 之间的整数")
    return limit


def _typed(parameter: str, field: HostedField, text: str, dialect: str) -> Any:
    try:
        return to_storage(field.type, parse_value(field.type, text), dialect)
    except ValueError as exc:
        # The offending value is not echoed: it may belong to a sensitive field.
        raise invalid_parameter(
            parameter, f"参数 {parameter} 的值无效：{_expected(field)}"
        ) from exc


def _expected(field: HostedField) -> str:
    expected = {
        FieldType.string: "字符串",
        FieldType.integer: "整数",
        FieldType.number: "数字",
        FieldType.boolean: "布尔值 true/false",
        FieldType.date: "日期 YYYY-MM-DD",
        FieldType.datetime: "日期时间 YYYY-MM-DDTHH:MM:SS",
    }[field.type]
    return f"字段 {field.name} 需要{expected}"


def parse_filter(
    key: str, text: str, hosted: HostedDataset, access: FieldAccess, dialect: str
) -> Filter:
    name, _, op = key.partition("__")
    op = op or "eq"
    field = access.check_usable(key, name, hosted)
    if len(text) > MAX_VALUE_LENGTH and (
        op != "in" or any(len(item) > MAX_VALUE_LENGTH for item in text.split(","))
    ):
        raise invalid_parameter(key, f"参数 {key} 的值过长：最多 {MAX_VALUE_LENGTH} 个字符")
    if op not in OPERATORS:
        raise invalid_parameter(
            key, f"参数 {key} 使用了未知的运算符 {op}；可用：{', '.join(sorted(OPERATORS))}"
        )
    if op == "isnull":
        if text not in ("true", "false"):
            raise invalid_parameter(key, f"参数 {key} 只能是 true 或 false")
        return Filter(name, op, text == "true")
    if op in ("contains", "startswith"):
        if field.type is not FieldType.string:
            raise invalid_parameter(key, f"参数 {key}：运算符 {op} 只适用于字符串字段")
        if not text:
            raise invalid_parameter(key, f"参数 {key} 不能为空")
        return Filter(name, op, text)
    if op == "in":
        items = text.split(",")
        if len(items) > MAX_IN_VALUES:
            raise invalid_parameter(key, f"参数 {key}：in 最多 {MAX_IN_VALUES} 个值")
        return Filter(name, op, tuple(_typed(key, field, item, dialect) for item in items))
    return Filter(name, op, _typed(key, field, text, dialect))


def _order(raw: str | None, hosted: HostedDataset, access: FieldAccess) -> list[tuple[str, bool]]:
    order: list[tuple[str, bool]] = []
    seen: set[str] = set()
    for item in (raw or "").split(","):
        item = item.strip()
        if not item:
            continue
        desc = item.startswith("-")
        name = item.lstrip("-+")
        access.check_usable("order_by", name, hosted)
        if name in seen:
            raise invalid_parameter("order_by", f"order_by 中字段 {name} 重复")
        seen.add(name)
        order.append((name, desc))
    if hosted.primary_key not in seen:
        # The key breaks ties, so the order is total and keyset pages are exact — the row
        # key instead when the caller does not receive the key in clear: the order of the
        # pages must not tell how hidden values sort.
        hidden = hosted.primary_key not in access.clear and hosted.row_key
        order.append((ROW_COLUMN if hidden else hosted.primary_key, False))
    return order


def split_params(
    params: Iterable[tuple[str, str]],
    reserved: frozenset[str],
    hosted: HostedDataset,
    access: FieldAccess,
    dialect: str,
) -> tuple[dict[str, str], list[Filter]]:
    """Reserved parameters (each at most once) apart from the filters, validated."""
    single: dict[str, str] = {}
    filters: list[Filter] = []
    for key, value in params:
        if key in reserved:
            if key in single:
                raise invalid_parameter(key, f"参数 {key} 只能出现一次")
            single[key] = value
        else:
            if len(filters) >= MAX_FILTERS:
                raise invalid_parameter(
                    key, f"参数 {key}：筛选条件过多，每个请求最多 {MAX_FILTERS} 个"
                )
            filters.append(parse_filter(key, value, hosted, access, dialect))
    return single, filters


def parse_record_query(
    params: Iterable[tuple[str, str]],
    hosted: HostedDataset,
    access: FieldAccess,
    *,
    dialect: str,
    paged: bool = True,
    cursors: BoundCursors | None = None,
) -> RecordQuery:
    """Validate the query string of a records or export request against the dictionary.
    A `cursor` parameter opens only with `cursors`, the request's binding."""
    single, filters = split_params(params, RESERVED, hosted, access, dialect)

    if "fields" in single:
        names = [n.strip() for n in single["fields"].split(",") if n.strip()]
        if not names:
            raise invalid_parameter("fields", "fields 不能为空")
        for name in names:
            if name not in access.visible_set:
                raise invalid_parameter(
                    "fields", f"参数 fields：数据集 {hosted.id} 没有字段 {name}"
                )
        fields = tuple(dict.fromkeys(names))
    else:
        fields = access.visible

    order = tuple(_order(single.get("order_by"), hosted, access))
    query = RecordQuery(
        fields=fields,
        filters=tuple(filters),
        order=order,
        limit=_limit(single.get("limit")) if paged else 0,
    )
    if paged and single.get("cursor"):
        after = decode_cursor(single["cursor"], query, hosted, dialect, cursors)
        query = RecordQuery(query.fields, query.filters, query.order, query.limit, after)
    return query


# --- cursors ------------------------------------------------------------------------------


def _jsonable(value: Any) -> Any:
    return value.isoformat() if hasattr(value, "isoformat") else value


def encode_cursor(query: RecordQuery, last_row_keys: Sequence[Any], cursors: BoundCursors) -> str:
    """The sealed cursor after a row (catalog.cursors): only this gateway can read it."""
    payload = orjson.dumps([_jsonable(v) for v in last_row_keys])
    return cursors.seal(query.order_signature, payload)


def decode_cursor(
    cursor: str,
    query: RecordQuery,
    hosted: HostedDataset,
    dialect: str,
    cursors: BoundCursors | None,
) -> tuple[Any, ...]:
    # One answer for every bad cursor: which check failed is nobody's business.
    bad = invalid_parameter("cursor", "cursor 无效或已过期，请从第一页重新开始")
    raw = cursors.open(query.order_signature, cursor) if cursors is not None else None
    if raw is None:
        raise bad
    try:
        values = orjson.loads(raw)
    except ValueError:
        raise bad from None
    if not isinstance(values, list) or len(values) != len(query.order):
        raise bad
    typed: list[Any] = []
    for (name, _desc), value in zip(query.order, values, strict=True):
        if name == ROW_COLUMN:
            if not isinstance(value, int) or isinstance(value, bool):
                raise bad
            typed.append(value)
            continue
        field = hosted.by_name[name]
        if value is None:
            if field.primary_key:
                raise bad
            typed.append(None)
            continue
        try:
            typed.append(to_storage(field.type, _cursor_value(field, value), dialect))
        except (ValueError, TypeError):
            raise bad from None
    return tuple(typed)


def _cursor_value(field: HostedField, value: Any) -> Any:
    kind = field.type
    if kind is FieldType.boolean and isinstance(value, bool):
        return value
    if kind is FieldType.integer and isinstance(value, int) and not isinstance(value, bool):
        return value
    if kind is FieldType.number and isinstance(value, int | float) and not isinstance(value, bool):
        return value
    if kind is FieldType.string and isinstance(value, str):
        return value
    if kind in (FieldType.date, FieldType.datetime) and isinstance(value, str):
        return parse_value(kind, value)
    raise TypeError(kind)


def parse_key(hosted: HostedDataset, text: str, dialect: str) -> Any | None:
    """A primary key from a URL in storage form; None when it cannot be a key at all."""
    field = hosted.by_name[hosted.primary_key]
    try:
        return to_storage(field.type, parse_value(field.type, text), dialect)
    except ValueError:
        return None
