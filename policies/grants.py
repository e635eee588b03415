"""Applications and grants: apply → approve (with conditions) or reject → use → expire or
revoke. Keyword-only service functions, session first. Terms are validated against the
dataset's field dictionary and the classification rules before anything is stored."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import update
from sqlmodel import Session, col, select

from catalog.hosted import HostedDataset
from catalog.values import parse_value
from kernel.clock import aware, iso_utc, utcnow
from kernel.problems import Problem
from policies.models import Application, Grant, GrantUsage, GrantVersion, Notice
from policies.transform_rules import allowed_transforms, grantable, parse_transform

QUOTA_KEYS = (
    "requests_per_day",
    "rows_per_day",
    "verifies_per_day",
    "verifies_per_subject_per_day",
)
MAX_DURATION_DAYS = 3650
# ε one aggregate query may spend, unless the grant says otherwise. Below the floor a
# query's noise would be a formality that lets one budget buy millions of queries (a
# binary search at ε = 1e-9); above the ceiling one query could spend the whole budget.
DEFAULT_EPSILON_FLOOR = 0.01
DEFAULT_EPSILON_CEILING = 1.0


def epsilon_bounds(
    epsilon: float | None, floor: float | None, ceiling: float | None
) -> tuple[float, float] | None:
    """The (floor, ceiling) of ε per query for a grant's budget; None without a budget."""
    if epsilon is None:
        return None
    low = floor if floor is not None else min(DEFAULT_EPSILON_FLOOR, epsilon)
    high = ceiling if ceiling is not None else min(DEFAULT_EPSILON_CEILING, epsilon)
    return low, max(low, high)


def bad(parameter: str, detail: str) -> Problem:
    return Problem(400, "invalid_parameter", detail, parameter=parameter)


@dataclass(frozen=True)
class Terms:
    """What a grant allows, validated."""

    modes: list[str]
    fields: list[str] | None
    transforms: dict[str, str]
    row_filter: dict[str, str]
    quotas: dict[str, int]
    k: int
    epsilon: float | None
    duration_days: int
    epsilon_floor: float | None = None
    epsilon_ceiling: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "modes": self.modes,
            "fields": self.fields,
            "transforms": self.transforms,
            "row_filter": self.row_filter,
            "quotas": self.quotas,
            "k": self.k,
            "epsilon": self.epsilon,
            "epsilon_floor": self.epsilon_floor,
            "epsilon_ceiling": self.epsilon_ceiling,
            "duration_days": self.duration_days,
        }


def validate_terms(
    hosted: HostedDataset,
    *,
    modes: list[str],
    fields: list[str] | None,
    transforms: dict[str, str] | None = None,
    row_filter: dict[str, Any] | None = None,
    quotas: dict[str, int] | None = None,
    k: int = 5,
    epsilon: float | None = None,
    duration_days: int = 365,
    epsilon_floor: float | None = None,
    epsilon_ceiling: float | None = None,
) -> Terms:
    if not modes or any(m not in hosted.modes for m in modes):
        raise bad("modes", f"modes 须为 {', '.join(hosted.modes)} 的非空子集")
    modes = list(dict.fromkeys(modes))
    if fields is not None:
        if not fields:
            raise bad("fields", "fields 不能为空列表（省略表示全部字段）")
        for name in fields:
            if name not in hosted.by_name:
                raise bad("fields", f"数据集 {hosted.id} 没有字段 {name}")
        fields = list(dict.fromkeys(fields))
    checked: dict[str, str] = {}
    for name, spec in (transforms or {}).items():
        field = hosted.by_name.get(name)
        if field is None:
            raise bad("transforms", f"数据集 {hosted.id} 没有字段 {name}")
        try:
            spec = parse_transform(spec)
        except ValueError as exc:
            raise bad("transforms", f"字段 {name} 的脱敏方式无效：{exc}") from None
        if not grantable(field.level, field.pii, spec):
            allowed = ", ".join(allowed_transforms(field.level, field.pii))
            raise bad(
                "transforms",
                f"字段 {name} 为 {field.level} 级敏感字段，脱敏方式 {spec} 宽于该级别允许的"
                f"范围（就高从严）；可用：{allowed}",
            )
        checked[name] = spec
    filters: dict[str, str] = {}
    for name, value in (row_filter or {}).items():
        field = hosted.by_name.get(name)
        if field is None:
            raise bad("row_filter", f"数据集 {hosted.id} 没有字段 {name}")
        if field.level > 2:
            raise bad(
                "row_filter",
                f"行过滤（row_filter）只能使用 1–2 级字段，{name} 为 {field.level} 级",
            )
        try:
            parse_value(field.type, str(value))
        except ValueError:
            raise bad("row_filter", f"行过滤字段 {name} 的取值类型不符") from None
        filters[name] = str(value)
    limits: dict[str, int] = {}
    for key, value in (quotas or {}).items():
        if key not in QUOTA_KEYS:
            raise bad("quotas", f"未知配额 {key}；可用：{', '.join(QUOTA_KEYS)}")
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise bad("quotas", f"配额 {key} 须为非负整数")
        limits[key] = value
    if isinstance(k, bool) or not isinstance(k, int) or k < 2:
        raise bad("k", "k 须为不小于 2 的整数（小单元格抑制）")
    if epsilon is not None and (isinstance(epsilon, bool) or not epsilon > 0):
        raise bad("epsilon", f"隐私预算 epsilon 须大于 0，收到 {epsilon}")
    bounds = _epsilon_terms(epsilon, epsilon_floor, epsilon_ceiling)
    if not 1 <= duration_days <= MAX_DURATION_DAYS:
        raise bad(
            "duration_days",
            f"授权期限（duration_days）须为 1–{MAX_DURATION_DAYS} 天，收到 {duration_days}",
        )
    floor, ceiling = bounds if bounds is not None else (None, None)
    return Terms(modes, fields, checked, filters, limits, k, epsilon, duration_days, floor, ceiling)


def _epsilon_terms(
    epsilon: float | None, floor: float | None, ceiling: float | None
) -> tuple[float, float] | None:
    """The grant's ε per query, defaults filled in so the reviewer sees what holds."""
    for name, value in (("epsilon_floor", floor), ("epsilon_ceiling", ceiling)):
        if value is None:
            continue
        if epsilon is None:
            raise bad(name, f"{name} 只能与 epsilon（隐私预算）一同设置")
        if isinstance(value, bool) or not 0 < value <= epsilon:
            raise bad(name, f"{name} 须大于 0 且不超过 epsilon（{epsilon:g}）")
    bounds = epsilon_bounds(epsilon, floor, ceiling)
    if bounds is not None and ceiling is not None and ceiling < bounds[0]:
        raise bad("epsilon_ceiling", "epsilon_ceiling 不能小于 epsilon_floor")
    return bounds


def apply(
    session: Session,
    *,
    applicant_id: int,
    client_id: str,
    hosted: HostedDataset,
    purpose: str,
    modes: list[str],
    fields: list[str] | None,
    duration_days: int,
    scenario_id: int | None = None,
    product_id: int | None = None,
) -> Application:
    if hosted.open_type != "conditional":
        raise bad("dataset_id", f"数据集 {hosted.id} 不是有条件开放数据，无需申请")
    if not 2 <= len(purpose.strip()) <= 500:
        raise bad("purpose", "请说明使用目的（2–500 字）")
    terms = validate_terms(hosted, modes=modes, fields=fields, duration_days=duration_days)
    application = Application(
        client_id=client_id,
        applicant_id=applicant_id,
        dataset_id=hosted.id,
        purpose=purpose.strip(),
        modes=terms.modes,
        fields=terms.fields,
        duration_days=terms.duration_days,
        scenario_id=scenario_id,
        product_id=product_id,
    )
    session.add(application)
    session.commit()
    session.refresh(application)
    return application


def _store_version(session: Session, grant: Grant, terms: Terms, by: int, note: str) -> None:
    session.add(
        GrantVersion(
            grant_id=grant.id,  # type: ignore[arg-type]
            version=grant.version,
            terms={
                **terms.as_dict(),
                "purpose": grant.purpose,
                "expires_at": iso_utc(grant.expires_at),
            },
            created_by=by,
            note=note,
        )
    )


def grant(
    session: Session,
    *,
    admin_id: int,
    client_id: str,
    dataset_id: str,
    purpose: str,
    terms: Terms,
    application_id: int | None = None,
    note: str = "",
    scenario_id: int | None = None,
    product_id: int | None = None,
) -> Grant:
    """Grant access; if the app already holds an active grant on the dataset, its terms
    change and a new version is written (one active grant per app and dataset)."""
    expires = utcnow() + timedelta(days=terms.duration_days)
    current = active_grant(session, client_id=client_id, dataset_id=dataset_id)
    if current is None:
        current = Grant(
            client_id=client_id,
            dataset_id=dataset_id,
            purpose=purpose,
            modes=terms.modes,
            created_by=admin_id,
            expires_at=expires,
        )
    else:
        current.version += 1
    current.purpose = purpose
    current.modes = terms.modes
    current.fields = terms.fields
    current.transforms = terms.transforms
    current.row_filter = terms.row_filter
    current.quotas = terms.quotas
    current.k = terms.k
    current.epsilon_floor = terms.epsilon_floor
    current.epsilon_ceiling = terms.epsilon_ceiling
    if terms.epsilon != current.epsilon:
        current.epsilon, current.epsilon_spent = terms.epsilon, 0.0
    current.expires_at = expires
    current.application_id = application_id or current.application_id
    # The metering basis of a grant is fixed for its life (contract §13).
    if product_id is not None and current.product_id not in (None, product_id):
        raise Problem(409, "conflict", f"授权 {current.id} 已绑定其他数据产品，计量依据不可更改")
    current.scenario_id = scenario_id or current.scenario_id
    current.product_id = product_id or current.product_id
    session.add(current)
    session.flush()
    _store_version(session, current, terms, admin_id, note)
    session.commit()
    session.refresh(current)
    return current


def approval_terms(
    *, application: Application, hosted: HostedDataset, overrides: dict[str, Any]
) -> Terms:
    """The terms approving `application` with `overrides` would grant, validated (what the
    console shows before saving, and what `approve` saves)."""
    if application.status != "pending":
        raise Problem(409, "conflict", f"申请 {application.id} 已处理（{application.status}）")
    return validate_terms(
        hosted,
        modes=overrides.get("modes") or application.modes,
        fields=overrides["fields"] if overrides.get("fields") is not None else application.fields,
        transforms=overrides.get("transforms"),
        row_filter=overrides.get("row_filter"),
        quotas=overrides.get("quotas"),
        k=overrides["k"] if overrides.get("k") is not None else 5,
        epsilon=overrides.get("epsilon"),
        duration_days=overrides.get("duration_days") or application.duration_days,
        epsilon_floor=overrides.get("epsilon_floor"),
        epsilon_ceiling=overrides.get("epsilon_ceiling"),
    )


def approve(
    session: Session,
    *,
    application: Application,
    admin_id: int,
    hosted: HostedDataset,
    overrides: dict[str, Any],
) -> Grant:
    terms = approval_terms(application=application, hosted=hosted, overrides=overrides)
    granted = grant(
        session,
        admin_id=admin_id,
        client_id=application.client_id,
        dataset_id=application.dataset_id,
        purpose=application.purpose,
        terms=terms,
        application_id=application.id,
        note="approved application",
        scenario_id=application.scenario_id,
        product_id=application.product_id,
    )
    application.status = "approved"
    application.decided_at = utcnow()
    application.decided_by = admin_id
    application.grant_id = granted.id
    session.add(application)
    session.commit()
    return granted


def reject(session: Session, *, application: Application, admin_id: int, reason: str) -> None:
    if application.status != "pending":
        raise Problem(409, "conflict", f"申请 {application.id} 已处理（{application.status}）")
    if not reason.strip():
        raise bad("reason", "驳回须说明理由")
    application.status = "rejected"
    application.reason = reason.strip()
    application.decided_at = utcnow()
    application.decided_by = admin_id
    session.add(application)
    session.commit()


def revoke(session: Session, *, grant_row: Grant, admin_id: int, reason: str) -> Grant:
    if not reason.strip():
        raise bad("reason", "撤销须说明理由")
    if grant_row.status == "revoked":
        raise Problem(409, "conflict", f"授权 {grant_row.id} 已于此前撤销，不能重复撤销（status）")
    grant_row.status = "revoked"
    grant_row.revoked_at = utcnow()
    grant_row.revoked_by = admin_id
    grant_row.revoke_reason = reason.strip()
    session.add(grant_row)
    session.commit()
    session.refresh(grant_row)
    return grant_row


def suspend(session: Session, *, grant_id: int, reason: str, notice: str) -> Grant | None:
    """Suspend an active grant (the gateway's own brake, e.g. on a verify sweep) and leave
    the data_admins a notice. Conditional, so of many workers tripping at once exactly one
    suspends and writes the notice; None when the grant was not active any more."""
    done = session.execute(
        update(Grant)
        .where(col(Grant.id) == grant_id, col(Grant.status) == "active")
        .values(status="suspended", suspended_at=utcnow(), suspend_reason=reason)
    ).rowcount  # type: ignore[attr-defined]
    if not done:
        session.rollback()
        return None
    row = session.get(Grant, grant_id)
    assert row is not None
    session.add(
        Notice(
            kind="grant_suspended",
            grant_id=grant_id,
            client_id=row.client_id,
            dataset_id=row.dataset_id,
            message=notice,
        )
    )
    session.commit()
    session.refresh(row)
    return row


def reinstate(session: Session, *, grant_row: Grant, admin_id: int, reason: str) -> Grant:
    """A data_admin lifts a suspension; today's verify misses start again from zero."""
    if not reason.strip():
        raise bad("reason", "恢复授权须说明理由")
    if grant_row.status != "suspended":
        raise Problem(409, "conflict", f"授权 {grant_row.id} 未处于暂停状态（{grant_row.status}）")
    grant_row.status = "active"
    grant_row.suspended_at = None
    grant_row.suspend_reason = ""
    session.add(grant_row)
    session.execute(
        update(GrantUsage).where(col(GrantUsage.grant_id) == grant_row.id).values(verify_misses=0)
    )
    session.commit()
    session.refresh(grant_row)
    return grant_row


def active_grant(session: Session, *, client_id: str, dataset_id: str) -> Grant | None:
    """The app's grant on the dataset, if active and not expired (read on every request:
    a revocation or expiry takes effect on the very next one, on every worker)."""
    row = session.exec(
        select(Grant).where(
            Grant.client_id == client_id,
            Grant.dataset_id == dataset_id,
            Grant.status == "active",
        )
    ).first()
    if row is None or aware(row.expires_at) <= utcnow():
        return None
    return row


def spend_epsilon(session: Session, *, grant_id: int, epsilon: float) -> bool:
    """Atomically spend privacy budget; False when it would exceed the grant's total."""
    result = session.execute(
        update(Grant)
        .where(
            Grant.id == grant_id,
            Grant.epsilon.is_not(None),  # type: ignore[union-attr]
            # Slack for float sums: ten queries of 0.1 must fit a total of 1.0.
            Grant.epsilon_spent + epsilon <= Grant.epsilon + 1e-9,
        )
        .values(epsilon_spent=Grant.epsilon_spent + epsilon)
    )
    session.commit()
    return result.rowcount == 1  # type: ignore[attr-defined]
