"""The access decision as plain data: `decide(caller, dataset, mode, grant) → Plan`.

Default deny. Deny overrides allow. For each field the grant's transform applies if it is
still grantable for the field's current level (a re-import may have raised it), otherwise
the classification default — the strictest rule wins (就高从严). The plan is computed once
per request; the same plan chooses the SQL columns and row filter, the masking, the
`fields` list of the answer, the policy endpoint and the audit event.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from catalog.hosted import SUBJECT_COLUMN, HostedDataset, HostedField
from catalog.models import OpenType
from catalog.values import parse_value, to_storage
from kernel.problems import Problem, not_found
from policies.grants import epsilon_bounds
from policies.transform_rules import default_transform, grantable, stricter

MODES = ("records", "aggregate", "verify", "call")  # call: an interface service (issue 18)


@dataclass(frozen=True, slots=True)
class Caller:
    """Who asks, as far as the decision cares."""

    kind: str  # "anonymous" | "app" | "user" | "person"
    role: str | None = None
    client_id: str | None = None
    subject_hmac: str | None = None  # a person's identity, keyed
    consent_dataset: str | None = None  # what a person's consent covers


@dataclass(frozen=True, slots=True)
class GrantTerms:
    """The active grant of an app on a dataset, as plain data."""

    id: int
    version: int
    purpose: str
    modes: tuple[str, ...]
    fields: tuple[str, ...] | None
    transforms: Mapping[str, str]
    row_filter: Mapping[str, str]
    quotas: Mapping[str, int]
    k: int
    epsilon: float | None
    epsilon_spent: float
    epsilon_floor: float | None = None
    epsilon_ceiling: float | None = None

    @property
    def epsilon_bounds(self) -> tuple[float, float] | None:
        """ε one aggregate query may spend: (floor, ceiling), None without a budget."""
        return epsilon_bounds(self.epsilon, self.epsilon_floor, self.epsilon_ceiling)


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
    row_filter: Mapping[str, Any] = field(default_factory=dict)  # column → storage value
    grant: GrantTerms | None = None
    client_id: str | None = None
    k: int = 1
    transforms: Mapping[str, str] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "transforms", {f.name: f.transform for f in self.fields})

    @property
    def visible(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.fields)

    @property
    def clear(self) -> frozenset[str]:
        return frozenset(f.name for f in self.fields if f.transform == "clear")

    def transform_of(self, name: str) -> str:
        return self.transforms[name]


def _grant_required(hosted: HostedDataset, detail: str | None = None) -> Problem:
    return Problem(
        403,
        "grant_required",
        detail or f"数据集 {hosted.id} 为有条件开放数据，需先申请并获得授权",
        dataset=hosted.id,
    )


def _field_plan(f: HostedField, grant: GrantTerms) -> FieldPlan:
    default = default_transform(f.level, f.pii)
    granted = grant.transforms.get(f.name)
    if granted is None:
        return FieldPlan(f.name, default, f"level {f.level}, pii {f.pii}: default {default}")
    if not grantable(f.level, f.pii, granted):
        # The field's level rose after the grant: the stricter rule wins.
        spec = stricter(default, granted)
        return FieldPlan(f.name, spec, f"level {f.level} now; grant's {granted} no longer allowed")
    return FieldPlan(f.name, granted, f"grant {grant.id} v{grant.version}: {granted}")


def _row_filter(hosted: HostedDataset, grant: GrantTerms, dialect: str) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for name, text in grant.row_filter.items():
        f = hosted.by_name.get(name)
        if f is None or f.level > 2:  # the dataset changed under the grant: deny, not widen
            raise _grant_required(hosted, f"授权 {grant.id} 的行过滤条件已不适用，请重新申请")
        try:
            values[name] = to_storage(f.type, parse_value(f.type, text), dialect)
        except ValueError:  # the field's type changed on re-import: the same deny
            raise _grant_required(
                hosted, f"授权 {grant.id} 的行过滤条件已不适用，请重新申请"
            ) from None
    return values


def decide(
    *,
    caller: Caller,
    hosted: HostedDataset,
    mode: str,
    grant: GrantTerms | None = None,
    dialect: str = "sqlite",
) -> Plan:
    if mode not in MODES:
        raise Problem(400, "invalid_parameter", f"未知访问方式 {mode}", parameter="mode")
    if mode not in hosted.modes:
        if mode == "call":
            raise not_found(f"接口服务 {hosted.id} 不存在")
        raise not_found(
            f"{hosted.id} 是接口服务，不提供 {mode} 访问；"
            f"请调用 POST /api/v1/services/{hosted.id}/call"
        )
    if hosted.open_type == OpenType.closed:
        if caller.kind == "user" and caller.role == "data_admin":
            raise Problem(403, "forbidden", f"数据集 {hosted.id} 不予开放，不提供数据接口")
        raise not_found(f"数据集 {hosted.id} 不存在")

    if hosted.open_type == OpenType.unconditional:
        if mode == "verify":
            raise Problem(403, "forbidden", f"数据集 {hosted.id} 为无条件开放数据，不提供核验")
        return Plan(
            dataset_id=hosted.id,
            version=hosted.version,
            mode=mode,
            fields=tuple(FieldPlan(f.name, "clear", "unconditional") for f in hosted.fields),
            client_id=caller.client_id,
        )

    if caller.kind == "person":
        if caller.consent_dataset != hosted.id:
            raise Problem(403, "forbidden", f"您的个人授权不包含数据集 {hosted.id}")
        if mode != "records":
            raise Problem(403, "forbidden", "个人授权只允许读取本人记录")
        if hosted.subject_field is None or not caller.subject_hmac:
            raise Problem(403, "forbidden", f"数据集 {hosted.id} 不支持个人授权")
        return Plan(
            dataset_id=hosted.id,
            version=hosted.version,
            mode=mode,
            fields=tuple(FieldPlan(f.name, "clear", "own rows (个人授权)") for f in hosted.fields),
            row_filter={SUBJECT_COLUMN: caller.subject_hmac},
            client_id=caller.client_id,
        )

    if caller.kind != "app" or grant is None:
        raise _grant_required(hosted)
    if mode not in grant.modes:
        raise Problem(403, "forbidden", f"授权 {grant.id} 不包含 {mode} 方式")
    names = grant.fields if grant.fields is not None else tuple(f.name for f in hosted.fields)
    fields = tuple(_field_plan(hosted.by_name[n], grant) for n in names if n in hosted.by_name)
    if mode == "verify":
        fields = tuple(
            FieldPlan(f.name, "verify", f"grant {grant.id}: yes/no match only") for f in fields
        )
    return Plan(
        dataset_id=hosted.id,
        version=hosted.version,
        mode=mode,
        fields=fields,
        row_filter=_row_filter(hosted, grant, dialect),
        grant=grant,
        client_id=caller.client_id,
        k=grant.k,
    )
