"""Zones, operators (with the apps they act through) and their agreements: creation with
the checks a bureau's operations team expects, each refusal one Chinese sentence naming
the field; and the agreement's status workflow."""

from __future__ import annotations

import re
from datetime import date
from typing import Any, TypeVar

from sqlmodel import Session, col, select

from catalog.identifiers import is_valid_uscc
from catalog.models import Dataset
from kernel.clock import utcnow
from kernel.problems import Problem, invalid_parameter, not_found
from operation.gate import follow_agreement
from operation.models import Agreement, AgreementStatus, Operator, OperatorApp, Zone

T = TypeVar("T")
MODES = ("records", "aggregate", "verify", "call")
ZONE_ID = re.compile(r"^[a-z][a-z0-9-]{1,63}$")

# Which status an agreement may move to from which (terminated is final).
MOVES: dict[str, tuple[str, ...]] = {
    AgreementStatus.draft: (AgreementStatus.active, AgreementStatus.terminated),
    AgreementStatus.active: (AgreementStatus.suspended, AgreementStatus.terminated),
    AgreementStatus.suspended: (AgreementStatus.active, AgreementStatus.terminated),
    AgreementStatus.terminated: (),
}
STATUS_LABELS = {
    AgreementStatus.draft: "草拟",
    AgreementStatus.active: "生效",
    AgreementStatus.suspended: "暂停",
    AgreementStatus.terminated: "终止",
}


def conflict(detail: str) -> Problem:
    return Problem(409, "conflict", detail)


def text(parameter: str, label: str, value: str | None, *, limit: int) -> str:
    value = (value or "").strip()
    if not value:
        raise invalid_parameter(parameter, f"{label}不能为空")
    if len(value) > limit:
        raise invalid_parameter(parameter, f"{label}不能超过 {limit} 个字")
    return value


def saved(session: Session, row: T) -> T:
    """Commit `row` and return it as stored."""
    session.add(row)
    session.commit()
    session.refresh(row)
    return row


def found(session: Session, model: type[T], ident: Any, label: str) -> T:
    """The row of `model` with this id, or a 404 naming it (`label`: what it is, in Chinese)."""
    row = session.get(model, ident)
    if row is None:
        raise not_found(f"{label} {ident} 不存在")
    return row


def create_zone(session: Session, *, id: str, name: str, description: str = "") -> Zone:
    if not ZONE_ID.match(id or ""):
        raise invalid_parameter("id", "专区标识须为 2–64 位小写字母、数字或连字符，以字母开头")
    name = text("name", "专区名称", name, limit=100)
    if session.get(Zone, id) is not None:
        raise conflict(f"专区 {id} 已存在")
    if session.exec(select(Zone).where(Zone.name == name)).first() is not None:
        raise conflict(f"已有名为“{name}”的专区")
    zone = Zone(id=id, name=name, description=(description or "").strip()[:2000])
    return saved(session, zone)


def zone_listing(session: Session) -> list[dict[str, Any]]:
    """Every zone with how many open datasets and products it holds (the public list)."""
    from sqlalchemy import func

    from catalog.models import Dataset
    from operation.models import Product

    open_sets = dict(
        session.exec(
            select(Dataset.zone, func.count())
            .where(Dataset.open_type != "closed")
            .group_by(Dataset.zone)
        ).all()
    )
    priced = dict(
        session.exec(select(Product.zone_id, func.count()).group_by(Product.zone_id)).all()
    )
    return [
        {**zone_view(z), "datasets": open_sets.get(z.id, 0), "products": priced.get(z.id, 0)}
        for z in session.exec(select(Zone).order_by(Zone.id))
    ]


def zone(session: Session, zone_id: str | None) -> Zone | None:
    """The zone named by `zone_id`, None for None; a Problem for an unknown one."""
    if zone_id is None:
        return None
    found_zone = session.get(Zone, zone_id)
    if found_zone is None:
        raise invalid_parameter("zone_id", f"专区 {zone_id} 不存在")
    return found_zone


def create_operator(
    session: Session, *, name: str, credit_code: str, contact: str = "", by: str
) -> Operator:
    name = text("name", "运营机构名称", name, limit=200)
    code = (credit_code or "").strip().upper()
    if not is_valid_uscc(code):
        raise invalid_parameter(
            "credit_code", "统一社会信用代码无效：须为 18 位，且校验码正确（GB 32100-2015）"
        )
    if session.exec(select(Operator).where(Operator.credit_code == code)).first() is not None:
        raise conflict(f"统一社会信用代码 {code} 的运营机构已登记")
    operator = Operator(
        name=name, credit_code=code, contact=(contact or "").strip()[:200], created_by=by
    )
    return saved(session, operator)


def operator(session: Session, operator_id: int) -> Operator:
    return found(session, Operator, operator_id, "运营机构")


def bind_app(session: Session, *, operator_id: int, client_id: str) -> OperatorApp:
    """Declare that an app acts for the operator: its grants then need the agreement."""
    from auth.models import App

    operator(session, operator_id)
    if session.get(App, client_id) is None:
        raise invalid_parameter("client_id", f"应用 {client_id} 不存在")
    bound = session.get(OperatorApp, client_id)
    if bound is not None and bound.operator_id != operator_id:
        raise conflict(f"应用 {client_id} 已属于另一运营机构")
    if bound is None:
        bound = OperatorApp(client_id=client_id, operator_id=operator_id)
        session.add(bound)
        session.commit()
    return bound


def _names(parameter: str, values: list[str] | None, known: set[str], what: str) -> list[str]:
    values = sorted(set(values or []))
    unknown = [v for v in values if v not in known]
    if unknown:
        raise invalid_parameter(parameter, f"{what}不存在：{'、'.join(unknown)}")
    return values


def create_agreement(
    session: Session,
    *,
    operator_id: int,
    title: str,
    datasets: list[str],
    services: list[str] | None,
    modes: list[str],
    starts_on: date,
    ends_on: date,
    known_datasets: set[str],
    known_services: set[str] | None = None,
) -> Agreement:
    operator(session, operator_id)
    title = text("title", "协议名称", title, limit=200)
    datasets = _names("datasets", datasets, known_datasets, "数据集")
    services = _names("services", services, known_services or set(), "接口服务")
    if not datasets and not services:
        raise invalid_parameter("datasets", "协议须至少包含一个数据集或接口服务")
    bad_modes = sorted(set(modes or []) - set(MODES))
    if not modes or bad_modes:
        raise invalid_parameter(
            "modes",
            f"使用方式须从 {'、'.join(MODES)} 中选择"
            + (f"（无效：{'、'.join(bad_modes)}）" if bad_modes else ""),
        )
    if ends_on <= starts_on:
        raise invalid_parameter("ends_on", "协议终止日期须晚于起始日期")
    agreement = Agreement(
        operator_id=operator_id,
        title=title,
        datasets=datasets,
        services=services,
        modes=sorted(set(modes)),
        starts_on=starts_on,
        ends_on=ends_on,
    )
    return saved(session, agreement)


def catalog_names(session: Session) -> tuple[set[str], set[str]]:
    """The published datasets and interface services an agreement may name."""
    rows = session.exec(select(Dataset.id, Dataset.kind)).all()
    return {i for i, k in rows if k != "service"}, {i for i, k in rows if k == "service"}


def agreement(session: Session, agreement_id: int) -> Agreement:
    return found(session, Agreement, agreement_id, "授权运营协议")


def move(session: Session, agreement_id: int, *, to: str, reason: str = "") -> Agreement:
    """Move an agreement along its workflow. Suspending or terminating it is read by the
    enforcement door on the next request of every grant under it (policies.operation_gate)."""
    row = agreement(session, agreement_id)
    if to not in MOVES.get(row.status, ()):
        allowed = "、".join(STATUS_LABELS[AgreementStatus(s)] for s in MOVES[row.status]) or "无"
        raise conflict(
            f"协议当前为“{STATUS_LABELS[AgreementStatus(row.status)]}”，"
            f"不能改为“{STATUS_LABELS[AgreementStatus(to)]}”（可改为：{allowed}）"
        )
    if to in (AgreementStatus.suspended, AgreementStatus.terminated):
        reason = text("reason", "暂停或终止的理由", reason, limit=500)
    row.status = to
    row.status_reason = reason or ""
    row.updated_at = utcnow()
    session.add(row)
    session.commit()
    session.refresh(row)
    follow_agreement(session, row)
    return row


def agreement_view(row: Agreement) -> dict[str, Any]:
    return {
        "id": row.id,
        "operator_id": row.operator_id,
        "title": row.title,
        "datasets": row.datasets,
        "services": row.services,
        "modes": row.modes,
        "starts_on": row.starts_on.isoformat(),
        "ends_on": row.ends_on.isoformat(),
        "status": row.status,
        "status_label": STATUS_LABELS[AgreementStatus(row.status)],
        "status_reason": row.status_reason or None,
    }


def operator_view(row: Operator) -> dict[str, Any]:
    return {
        "id": row.id,
        "name": row.name,
        "credit_code": row.credit_code,
        "contact": row.contact or None,
    }


def zone_view(row: Zone) -> dict[str, Any]:
    return {"id": row.id, "name": row.name, "description": row.description}


def operator_listing(session: Session) -> list[dict[str, Any]]:
    """Every operator (as `operator_view`) with the client_ids of the apps it acts through,
    for the administrator's register page."""
    bound: dict[int, list[str]] = {}
    for link in session.exec(select(OperatorApp).order_by(OperatorApp.client_id)):
        bound.setdefault(link.operator_id, []).append(link.client_id)
    return [
        {**operator_view(o), "apps": bound.get(o.id or 0, [])}
        for o in session.exec(select(Operator).order_by(Operator.id))
    ]


def grants_held(session: Session) -> dict[int, int]:
    """How many grants each agreement holds suspended because it is suspended or
    terminated (what `follow_agreement` stopped and would lift on reactivation)."""
    from sqlalchemy import func

    from operation.gate import AGREEMENT_SUSPENDED
    from policies.models import Grant

    rows = session.exec(
        select(Grant.agreement_id, func.count())
        .where(
            col(Grant.agreement_id).is_not(None),
            Grant.status == "suspended",
            Grant.suspend_reason == AGREEMENT_SUSPENDED,
        )
        .group_by(Grant.agreement_id)
    ).all()
    return {int(agreement): int(count) for agreement, count in rows}
