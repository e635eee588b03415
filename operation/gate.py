"""The rules of authorized operation on grants, kept wherever a grant is written (API,
console, CLI, demo): a mapper event on `grants`, so no path can skip them.

- A grant to an app that acts for an operator must fall inside one of that operator's
  active agreements: the dataset in scope, its modes allowed, its expiry within the term.
- A grant may name a scenario (approved) and a product; the product must draw on the
  dataset with the grant's modes, lie inside its operator's active agreement, and cost
  something unless the scenario is public governance or public welfare.
- The grant then records the agreement it falls under: suspending or terminating that
  agreement suspends every grant under it (`follow_agreement`), which the enforcement door
  reads on the next request, on every host.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection
from sqlmodel import Session, col, update

from kernel.clock import utcnow
from kernel.problems import Problem, invalid_parameter
from operation.models import (
    FREE_CATEGORIES,
    Agreement,
    AgreementStatus,
    Operator,
    OperatorApp,
    Product,
    Scenario,
)
from policies.models import Application, Grant

# The reason a grant suspended by its agreement carries: reactivation lifts exactly these.
AGREEMENT_SUSPENDED = "授权运营协议已暂停或终止"
BUSINESS_DAY = timedelta(hours=8)  # the bureau's day is UTC+8


def _refused(detail: str) -> Problem:
    return Problem(403, "grant_outside_agreement", detail)


def _day(moment: datetime) -> date:
    return (moment + BUSINESS_DAY).date()


def covering_agreement(
    connection: Connection,
    operator_id: int,
    dataset_id: str,
    modes: list[str],
    expires_at: datetime,
) -> Agreement | None:
    """The operator's active agreement covering the dataset, the modes and the grant's
    whole term (today through its expiry), if any."""
    today, last = _day(utcnow()), _day(expires_at)
    rows = connection.execute(
        sa.select(Agreement.__table__).where(
            Agreement.__table__.c.operator_id == operator_id,
            Agreement.__table__.c.status == AgreementStatus.active,
        )
    ).mappings()
    for row in rows:
        agreement = Agreement.model_validate(dict(row))
        if (
            (dataset_id in agreement.datasets or dataset_id in agreement.services)
            and set(modes) <= set(agreement.modes)
            and agreement.starts_on <= today
            and last <= agreement.ends_on
        ):
            return agreement
    return None


def _operator_of(connection: Connection, client_id: str) -> Operator | None:
    row = (
        connection.execute(
            sa.select(Operator.__table__)
            .join(
                OperatorApp.__table__,
                OperatorApp.__table__.c.operator_id == Operator.__table__.c.id,
            )
            .where(OperatorApp.__table__.c.client_id == client_id)
        )
        .mappings()
        .first()
    )
    return Operator.model_validate(dict(row)) if row else None


def _get(connection: Connection, model: type[Any], ident: int) -> Any:
    row = (
        connection.execute(sa.select(model.__table__).where(model.__table__.c.id == ident))
        .mappings()
        .first()
    )
    return model.model_validate(dict(row)) if row else None


def _approving(connection: Connection, grant: Grant) -> bool:
    """The grant comes from approving an application that names its scenario: the reviewer
    approves the scenario with the grant (issue 17, point 3)."""
    if grant.application_id is None or grant.scenario_id is None or grant.status != "active":
        return False
    named = connection.execute(
        sa.select(Application.__table__.c.scenario_id).where(
            Application.__table__.c.id == grant.application_id
        )
    ).scalar()
    return bool(named == grant.scenario_id)


def _scenario(connection: Connection, scenario_id: int | None, *, approving: bool) -> Any:
    """The scenario a grant names: approved, or approved now when `approving`."""
    if scenario_id is None:
        return None
    scenario = _get(connection, Scenario, scenario_id)
    if scenario is not None and not scenario.approved and approving:
        connection.execute(
            sa.update(Scenario.__table__)
            .where(Scenario.__table__.c.id == scenario_id)
            .values(approved=True, approved_at=utcnow())
        )
        scenario.approved = True
    if scenario is None or not scenario.approved:
        raise invalid_parameter("scenario_id", f"应用场景 {scenario_id} 不存在或未获批准")
    return scenario


def _product(
    connection: Connection,
    dataset_id: str,
    modes: list[str],
    scenario: Scenario | None,
    product_id: int | None,
) -> Product | None:
    """The product a grant or an application names, if it may serve this dataset, these
    modes and this scenario."""
    if product_id is None:
        return None
    product = _get(connection, Product, product_id)
    if product is None:
        raise invalid_parameter("product_id", f"数据产品 {product_id} 不存在")
    drawn = dataset_id in product.datasets or dataset_id in product.services
    if not drawn or not set(modes) <= set(product.modes):
        raise invalid_parameter(
            "product_id",
            f"数据产品 {product.code} 不包含数据集 {dataset_id} 的{'、'.join(modes)}使用方式",
        )
    if scenario is None:
        raise invalid_parameter("scenario_id", "绑定数据产品须指明应用场景")
    if product.price_fen == 0 and scenario.category not in FREE_CATEGORIES:
        raise invalid_parameter(
            "product_id",
            f"产业类应用场景不能使用零价格的数据产品 {product.code}：请先为产品定价",
        )
    return product


def check_application(connection: Connection, application: Application) -> None:
    """An application may name a scenario (approved or awaiting approval) and a product
    that fits its dataset, modes and scenario; refused before anything is written."""
    if application.scenario_id is None and application.product_id is None:
        return
    scenario = None
    if application.scenario_id is not None:
        scenario = _get(connection, Scenario, application.scenario_id)
        if scenario is None:
            raise invalid_parameter(
                "scenario_id", f"应用场景 {application.scenario_id} 不存在，请先登记"
            )
    _product(
        connection,
        application.dataset_id,
        list(application.modes),
        scenario,
        application.product_id,
    )


def check_grant(connection: Connection, grant: Grant) -> None:
    """Refuse a grant outside the rules above (a Problem; nothing is written), and set the
    agreement it falls under."""
    # Revoking or suspending a grant is always allowed; its binding is still checked.
    active = grant.status == "active"
    agreement_id: int | None = grant.agreement_id
    operator = _operator_of(connection, grant.client_id) if active else None
    if operator is not None:
        agreement = covering_agreement(
            connection, operator.id, grant.dataset_id, list(grant.modes), grant.expires_at
        )
        if agreement is None:
            raise _refused(
                f"应用 {grant.client_id} 属于运营机构“{operator.name}”，该授权超出其生效中的"
                f"授权运营协议的范围或期限（数据集 {grant.dataset_id}，"
                f"方式 {'、'.join(grant.modes)}，至 {_day(grant.expires_at).isoformat()}）"
            )
        agreement_id = agreement.id
    scenario = _scenario(connection, grant.scenario_id, approving=_approving(connection, grant))
    product = _product(connection, grant.dataset_id, list(grant.modes), scenario, grant.product_id)
    if product is not None:
        agreement = covering_agreement(
            connection, product.operator_id, grant.dataset_id, list(grant.modes), grant.expires_at
        )
        if agreement is None and active:
            raise _refused(
                f"数据产品 {product.code} 的运营机构没有覆盖数据集 {grant.dataset_id} "
                "及该授权期限的生效协议"
            )
        if agreement is not None and operator is None:  # the operator's own agreement rules
            agreement_id = agreement.id
    grant.agreement_id = agreement_id


@event.listens_for(Grant, "before_insert")
@event.listens_for(Grant, "before_update")
def _check(_mapper: Any, connection: Connection, target: Grant) -> None:
    check_grant(connection, target)


@event.listens_for(Application, "before_insert")
def _check_application(_mapper: Any, connection: Connection, target: Application) -> None:
    check_application(connection, target)


def follow_agreement(session: Session, agreement: Agreement) -> int:
    """Suspend every active grant under a suspended or terminated agreement, or lift the
    suspensions it caused when it is active again. Returns how many grants changed."""
    if agreement.status == AgreementStatus.active:
        change = (
            update(Grant)
            .where(
                col(Grant.agreement_id) == agreement.id,
                col(Grant.status) == "suspended",
                col(Grant.suspend_reason) == AGREEMENT_SUSPENDED,
            )
            .values(status="active", suspended_at=None, suspend_reason="")
        )
    else:
        change = (
            update(Grant)
            .where(col(Grant.agreement_id) == agreement.id, col(Grant.status) == "active")
            .values(status="suspended", suspended_at=utcnow(), suspend_reason=AGREEMENT_SUSPENDED)
        )
    done = session.execute(change).rowcount  # type: ignore[attr-defined]
    session.commit()
    return int(done or 0)
