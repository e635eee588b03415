"""Scenarios (应用场景) and data products (数据产品): registration with the price under its
cap, inside the operator's agreement; the public disclosure lists."""

from __future__ import annotations

import re
from typing import Any

from sqlmodel import Session, col, select

from kernel.clock import utcnow
from kernel.problems import invalid_parameter
from operation.models import (
    Agreement,
    AgreementStatus,
    PriceUnit,
    Product,
    Scenario,
    ScenarioCategory,
)
from operation.registry import MODES, conflict, found, operator, saved, text, zone

CODE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]{3,63}$")
CATEGORY_LABELS = {
    ScenarioCategory.public_governance: "公共治理",
    ScenarioCategory.public_welfare: "公益事业",
    ScenarioCategory.industry: "产业发展",
}
UNIT_LABELS = {PriceUnit.call: "每次调用", PriceUnit.rows_1000: "每千行", PriceUnit.month: "每月"}


def yuan(fen: int) -> str:
    """Fen as a 元 amount with two decimals, by integer arithmetic."""
    sign = "-" if fen < 0 else ""
    return f"{sign}{abs(fen) // 100}.{abs(fen) % 100:02d}"


YUAN = re.compile(r"^(\d{1,7})(?:\.(\d{1,2}))?$")


def fen_of(parameter: str, label: str, raw: str | None) -> int:
    """A 元 amount typed by a person ("12", "12.5", "12.50") as integer fen, parsed as
    text (no float ever holds money); anything else is refused naming the field."""
    match = YUAN.match((raw or "").strip())
    if match is None:
        raise invalid_parameter(
            parameter, f"{label}须为不小于 0 的金额（元），最多两位小数，例如 12.50"
        )
    return int(match[1]) * 100 + int((match[2] or "0").ljust(2, "0"))


def create_scenario(session: Session, **fields: Any) -> Scenario:
    """Register a scenario awaiting approval (fields as `scenario_draft`)."""
    return saved(session, scenario_draft(session, **fields))


def scenario_draft(
    session: Session,
    *,
    name: str,
    category: str,
    organization: str,
    description: str = "",
    zone_id: str | None = None,
) -> Scenario:
    """A checked, unsaved scenario (the console saves it together with the application
    that names it)."""
    name = text("name", "场景名称", name, limit=200)
    if category not in set(ScenarioCategory):
        raise invalid_parameter(
            "category",
            "场景类别须为 public_governance（公共治理）、public_welfare（公益事业）"
            "或 industry（产业发展）",
        )
    return Scenario(
        name=name,
        category=category,
        organization=text("organization", "申请单位", organization, limit=200),
        description=(description or "").strip()[:2000],
        zone_id=zone(session, zone_id).id if zone_id else None,
    )


def approve_scenario(session: Session, scenario_id: int) -> Scenario:
    scenario = found(session, Scenario, scenario_id, "应用场景")
    if scenario.approved:
        raise conflict(f"应用场景 {scenario_id} 已获批准")
    scenario.approved, scenario.approved_at = True, utcnow()
    return saved(session, scenario)


def approved_scenarios(session: Session) -> list[Scenario]:
    return list(
        session.exec(select(Scenario).where(col(Scenario.approved)).order_by(col(Scenario.id)))
    )


def _in_agreement(session: Session, operator_id: int, names: list[str], modes: list[str]) -> bool:
    """Some active agreement of the operator covers every dataset or service and mode."""
    for agreement in session.exec(
        select(Agreement).where(
            Agreement.operator_id == operator_id, Agreement.status == AgreementStatus.active
        )
    ):
        scope = {*agreement.datasets, *agreement.services}
        if set(names) <= scope and set(modes) <= set(agreement.modes):
            return True
    return False


def _price(unit: str, price_fen: int, cap_fen: int) -> None:
    if unit not in set(PriceUnit):
        raise invalid_parameter(
            "unit", "计价单位须为 call（每次调用）、1000_rows（每千行）或 month（每月）"
        )
    if not isinstance(cap_fen, int) or cap_fen < 0:
        raise invalid_parameter("cap_fen", "价格上限须为不小于 0 的整数（单位：分）")
    if not isinstance(price_fen, int) or price_fen < 0:
        raise invalid_parameter("price_fen", "价格须为不小于 0 的整数（单位：分）")
    if price_fen > cap_fen:
        raise invalid_parameter(
            "price_fen", f"价格 {yuan(price_fen)} 元超过管理部门核定的上限 {yuan(cap_fen)} 元"
        )


def register_product(
    session: Session,
    *,
    code: str,
    operator_id: int,
    title: str,
    datasets: list[str],
    modes: list[str],
    unit: str,
    price_fen: int,
    cap_fen: int,
    description: str = "",
    zone_id: str | None = None,
    services: list[str] | None = None,
) -> Product:
    """Register (登记赋码) a product. The cap is the administrator's; the price never exceeds it."""
    if not CODE.match(code or ""):
        raise invalid_parameter("code", "登记编码须为 4–64 位字母、数字或连字符")
    if session.exec(select(Product).where(Product.code == code)).first() is not None:
        raise conflict(f"登记编码 {code} 已被使用")
    operator(session, operator_id)
    title = text("title", "产品名称", title, limit=200)
    datasets = sorted(set(datasets or []))
    services = sorted(set(services or []))
    if not datasets and not services:
        raise invalid_parameter("datasets", "数据产品须至少使用一个数据集或接口服务")
    bad = sorted(set(modes or []) - set(MODES))
    if not modes or bad:
        raise invalid_parameter("modes", f"使用方式须从 {'、'.join(MODES)} 中选择")
    _price(unit, price_fen, cap_fen)
    if not _in_agreement(session, operator_id, [*datasets, *services], modes):
        raise invalid_parameter(
            "datasets",
            f"{'、'.join([*datasets, *services])} 或使用方式不在该运营机构生效中的授权运营协议"
            "范围内",
        )
    product = Product(
        code=code,
        operator_id=operator_id,
        title=title,
        description=(description or "").strip()[:2000],
        zone_id=zone(session, zone_id).id if zone_id else None,
        datasets=datasets,
        services=services,
        modes=sorted(set(modes)),
        unit=unit,
        price_fen=price_fen,
        cap_fen=cap_fen,
    )
    return saved(session, product)


def reprice(
    session: Session, product_id: int, *, price_fen: int | None, cap_fen: int | None
) -> Product:
    product = found(session, Product, product_id, "数据产品")
    price = product.price_fen if price_fen is None else price_fen
    cap = product.cap_fen if cap_fen is None else cap_fen
    _price(product.unit, price, cap)
    product.price_fen, product.cap_fen, product.updated_at = price, cap, utcnow()
    return saved(session, product)


def product_view(row: Product, operator_name: str) -> dict[str, Any]:
    return {
        "id": row.id,
        "code": row.code,
        "title": row.title,
        "description": row.description,
        "operator": operator_name,
        "zone_id": row.zone_id,
        "datasets": row.datasets,
        "modes": row.modes,
        "unit": row.unit,
        "unit_label": UNIT_LABELS[PriceUnit(row.unit)],
        "price_fen": row.price_fen,
        "price_yuan": yuan(row.price_fen),
        "cap_fen": row.cap_fen,
        "cap_yuan": yuan(row.cap_fen),
    }


def scenario_view(row: Scenario) -> dict[str, Any]:
    """What the public registry shows: no person, only the organization that applied."""
    return {
        "id": row.id,
        "name": row.name,
        "category": row.category,
        "category_label": CATEGORY_LABELS[ScenarioCategory(row.category)],
        "zone_id": row.zone_id,
        "organization": row.organization,
        "description": row.description,
        "approved_at": row.approved_at.isoformat() if row.approved_at else None,
    }


def products_on(session: Session, dataset_id: str) -> list[Product]:
    """The registered products that draw on a dataset (an application may name one)."""
    return [
        p
        for p in session.exec(select(Product).order_by(col(Product.code)))
        if dataset_id in p.datasets
    ]
