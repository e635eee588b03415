"""Aggregate queries: `group_by=a,b&metrics=count,sum:f,avg:f,min:f,max:f` plus the record
filters → one GROUP BY statement. Which fields may be grouped, summed or compared is the
caller's business (`AggregateAccess`, from the plan); this module only checks against it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from catalog.hosted import HostedDataset
from catalog.models import FieldType
from catalog.query import FieldAccess, Filter, split_params
from catalog.statements import condition
from kernel.problems import Problem, invalid_parameter

RESERVED = frozenset({"group_by", "metrics", "epsilon", "bounds", "format"})
METRICS = ("count", "sum", "avg", "min", "max")
NUMERIC = (FieldType.integer, FieldType.number)
MAX_GROUPS = 10_000


@dataclass(frozen=True, slots=True)
class Metric:
    kind: str
    field: str | None = None

    @property
    def label(self) -> str:
        return self.kind if self.field is None else f"{self.kind}_{self.field}"


@dataclass(frozen=True, slots=True)
class AggregateQuery:
    group_by: tuple[str, ...]
    metrics: tuple[Metric, ...]
    filters: tuple[Filter, ...]
    epsilon: float | None
    bounds: Mapping[str, tuple[float, float]]


@dataclass(frozen=True)
class AggregateAccess:
    """`records` = the records-mode field access (group_by and filters need clear fields);
    `summable` = numeric fields the grant covers; `comparable` = level 1–2 fields."""

    records: FieldAccess
    summable: frozenset[str]
    comparable: frozenset[str]


def _metric(item: str, hosted: HostedDataset, access: AggregateAccess) -> Metric:
    kind, _, name = item.partition(":")
    if kind not in METRICS:
        raise invalid_parameter(
            "metrics", f"参数 metrics：未知指标 {kind}；可用：{', '.join(METRICS)}"
        )
    if kind == "count":
        if name:
            raise invalid_parameter("metrics", "参数 metrics：count 不带字段")
        return Metric("count")
    field = hosted.by_name.get(name)
    if field is None or name not in access.records.visible_set:
        raise invalid_parameter("metrics", f"参数 metrics：数据集 {hosted.id} 没有字段 {name}")
    if field.type not in NUMERIC:
        raise invalid_parameter("metrics", f"参数 metrics：{kind} 只适用于数值字段，{name} 不是")
    if kind in ("min", "max") and name not in access.comparable:
        raise Problem(
            400,
            "field_not_permitted",
            f"{kind} 会暴露个体取值，只适用于 1–2 级字段（{name} 为 {field.level} 级）",
            parameter="metrics",
        )
    if name not in access.summable:
        raise Problem(
            400, "field_not_permitted", f"字段 {name} 不在授权的统计范围内", parameter="metrics"
        )
    return Metric(kind, name)


def _bounds(raw: str | None, hosted: HostedDataset) -> dict[str, tuple[float, float]]:
    bounds: dict[str, tuple[float, float]] = {}
    for item in (raw or "").split(","):
        if not item.strip():
            continue
        try:
            name, low, high = item.split(":")
            lo, hi = float(low), float(high)
        except ValueError:
            raise invalid_parameter("bounds", "参数 bounds 的格式为 字段:下限:上限") from None
        if name not in hosted.by_name or not lo < hi or lo - lo != 0 or hi - hi != 0:
            raise invalid_parameter("bounds", f"参数 bounds：{item} 无效")
        bounds[name] = (lo, hi)
    return bounds


def parse_aggregate_query(
    params: Iterable[tuple[str, str]],
    hosted: HostedDataset,
    access: AggregateAccess,
    *,
    dialect: str,
) -> AggregateQuery:
    single, filters = split_params(params, RESERVED, hosted, access.records, dialect)
    group_by = tuple(
        dict.fromkeys(n.strip() for n in single.get("group_by", "").split(",") if n.strip())
    )
    for name in group_by:
        access.records.check_usable("group_by", name, hosted)
    if len(group_by) > 5:
        raise invalid_parameter("group_by", "参数 group_by 最多 5 个字段")
    items = [m.strip() for m in single.get("metrics", "count").split(",") if m.strip()]
    metrics = tuple(dict.fromkeys(_metric(m, hosted, access) for m in items)) or (Metric("count"),)
    epsilon = None
    if "epsilon" in single:
        try:
            epsilon = float(single["epsilon"])
        except ValueError:
            epsilon = -1.0
        if not 0 < epsilon <= 10:
            raise invalid_parameter("epsilon", "参数 epsilon 须在 (0, 10] 之间")
    return AggregateQuery(
        group_by, metrics, tuple(filters), epsilon, _bounds(single.get("bounds"), hosted)
    )


def run_aggregate(
    engine: Engine,
    hosted: HostedDataset,
    query: AggregateQuery,
    *,
    row_filter: Mapping[str, Any],
    clamp: Mapping[str, tuple[float, float]] | None = None,
) -> list[dict[str, Any]]:
    """Every group with its true `count` and metrics (sums clamped to `clamp` bounds when
    given, as differential privacy needs). At most MAX_GROUPS groups."""
    table = hosted.table
    groups = [table.c[n] for n in query.group_by]
    columns: list[sa.ColumnElement] = [*groups, sa.func.count().label("count")]
    for metric in query.metrics:
        if metric.kind == "count":
            continue
        column = table.c[metric.field]
        if clamp is not None and metric.field in clamp and metric.kind in ("sum", "avg"):
            low, high = clamp[metric.field]
            column = sa.case((column < low, low), (column > high, high), else_=column)
        function = {"sum": sa.func.sum, "avg": sa.func.avg, "min": sa.func.min, "max": sa.func.max}[
            metric.kind
        ]
        if metric.kind == "avg" and clamp is not None:
            function = sa.func.sum  # under DP the average is a noisy sum over a noisy count
        columns.append(function(column).label(metric.label))
    conditions = [
        condition(table.c[f.field], f.op, f"f{i}", f.value, bind_value=True)
        for i, f in enumerate(query.filters)
    ]
    conditions += [table.c[name] == value for name, value in row_filter.items()]
    statement = sa.select(*columns).where(*conditions)
    if groups:
        statement = statement.group_by(*groups).order_by(*groups).limit(MAX_GROUPS + 1)
    with engine.connect() as conn:
        rows = conn.execute(statement).mappings().all()
    if len(rows) > MAX_GROUPS:
        raise invalid_parameter(
            "group_by", f"分组超过 {MAX_GROUPS} 个，请增加过滤条件或减少分组字段"
        )
    # Keys as plain str (SQLAlchemy labels may be str subclasses orjson refuses), and
    # PostgreSQL's numeric sums and averages as JSON numbers.
    return [{str(k): _plain_number(v) for k, v in r.items()} for r in rows]


def _plain_number(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    return value
