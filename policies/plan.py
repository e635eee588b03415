"""The access decision as plain data.

`decide()` runs once per request and returns a `Plan`; the same plan chooses the SQL
columns and row filter, the transform of every field, the `fields` list of the answer and
the audit event, so those can never disagree. A denial is raised as a `Problem`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from catalog.hosted import HostedDataset
from catalog.models import OpenType
from catalog.problems import Problem, not_found

MODES = ("records", "aggregate", "verify")


@dataclass(frozen=True, slots=True)
class FieldPlan:
    name: str
    transform: str
    reason: str


@dataclass(frozen=True, slots=True)
class Plan:
    dataset_id: str
    version: int
    mode: str
    fields: tuple[FieldPlan, ...]
    row_filter: Mapping[str, Any] = field(default_factory=dict)
    grant_id: int | None = None
    transforms: Mapping[str, str] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "transforms", {f.name: f.transform for f in self.fields})

    @property
    def visible(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.fields)

    @property
    def clear(self) -> frozenset[str]:
        return frozenset(f.name for f in self.fields if f.transform == "clear")

    @property
    def all_clear(self) -> bool:
        return all(f.transform == "clear" for f in self.fields)

    def transform_of(self, name: str) -> str:
        return self.transforms[name]


def decide(*, hosted: HostedDataset, mode: str) -> Plan:
    """Who may read what of `hosted` in `mode`. Default deny.

    Unconditional data is open to everyone in records mode, every field clear (its fields
    are level 1–2 by construction). Conditional data needs a grant; closed data has no data
    API at all.
    """
    if hosted.open_type == OpenType.closed:
        raise not_found(f"数据集 {hosted.id} 不存在")
    if hosted.open_type == OpenType.conditional:
        raise Problem(
            403,
            "grant_required",
            f"数据集 {hosted.id} 为有条件开放数据，需先申请并获得授权",
            dataset=hosted.id,
        )
    if mode != "records":
        raise Problem(403, "forbidden", f"数据集 {hosted.id} 不支持 {mode} 方式访问")
    return Plan(
        dataset_id=hosted.id,
        version=hosted.version,
        mode=mode,
        fields=tuple(FieldPlan(f.name, "clear", "unconditional") for f in hosted.fields),
    )
