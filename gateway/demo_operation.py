"""Demo authorized operation (idempotent): three industry zones, a bank-data operator with
an active agreement, the credit-assessment product (信贷风险评估, priced per 1000 rows under
its cap), an industry scenario and a free public-welfare one, the demo app's grant bound
to the product under the industry scenario, a second app bound to it under the welfare
scenario — so every call either makes is metered, priced or free — and the month's use so
far: real calls through the gateway, so the ledger, the statement and the reconciliation
show figures from the first start.

Why the current month and not a closed one: the audit log's timestamps never go back
(audit.writer keeps them in chain order), so a past month cannot be written after this
installation's first events without forging the log; `tests/operation` issue statements
for closed months instead."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from catalog.identifiers import org_code_check_char, uscc_check_char
from kernel.clock import utcnow
from operation import products, registry
from operation.models import Agreement, Operator, Product, Scenario, Zone
from policies.models import Grant

ZONES = (
    ("finance", "金融专区", "普惠金融、信贷风控、反欺诈所需的公共数据，按授权运营协议开放。"),
    ("health", "医疗健康专区", "医疗机构、公共卫生与医保相关的公共数据服务。"),
    ("transport", "交通出行专区", "公交、道路与出行服务相关的公共数据。"),
)
OPERATOR = "青岛金融数据运营有限公司"


def _credit_code(body16: str = "91370200MA3QD001") -> str:
    first17 = body16 + org_code_check_char(body16[8:16])
    return first17 + uscc_check_char(first17)


WELFARE_APP = "救助资格核验（演示）"


def ensure_demo_operation(engine: Engine, client_id: str, welfare_client_id: str | None) -> None:
    with Session(engine) as session:
        for zone_id, name, description in ZONES:
            if session.get(Zone, zone_id) is None:
                registry.create_zone(session, id=zone_id, name=name, description=description)
        operator = session.exec(select(Operator).where(Operator.name == OPERATOR)).first()
        if operator is None:
            operator = registry.create_operator(
                session, name=OPERATOR, credit_code=_credit_code(), by="demo"
            )
        assert operator.id is not None
        if (
            session.exec(select(Agreement).where(Agreement.operator_id == operator.id)).first()
            is None
        ):
            today = (utcnow() + timedelta(hours=8)).date()
            agreement = registry.create_agreement(
                session,
                operator_id=operator.id,
                title="金融专区公共数据授权运营协议（演示）",
                datasets=["social-insurance"],
                services=[],
                modes=["records", "aggregate", "verify"],
                starts_on=today - timedelta(days=30),
                ends_on=today + timedelta(days=3 * 365),
                known_datasets={"social-insurance"},
            )
            registry.move(session, agreement.id or 0, to="active")
        product = session.exec(select(Product).where(Product.code == "QD-FIN-2026-0001")).first()
        if product is None:
            product = products.register_product(
                session,
                code="QD-FIN-2026-0001",
                operator_id=operator.id,
                title="信贷风险评估",
                description="基于社保参保缴费信息（脱敏）的小微企业主信贷风险评估。",
                zone_id="finance",
                datasets=["social-insurance"],
                modes=["records", "aggregate", "verify"],
                unit="1000_rows",
                price_fen=1200,
                cap_fen=2000,
            )
        scenarios = {s.name: s for s in session.exec(select(Scenario))}
        for name, category, text in (
            ("小微企业主信贷风险评估", "industry", "银行在授信前核验借款人参保缴费情况。"),
            ("困难群众救助资格核验", "public_welfare", "民政救助资格复核，免费使用。"),
        ):
            if name not in scenarios:
                made = products.create_scenario(
                    session, name=name, category=category, organization="青岛某银行",
                    description=text, zone_id="finance",
                )  # fmt: skip
                scenarios[name] = products.approve_scenario(session, made.id or 0)
        bindings = (
            (client_id, "小微企业主信贷风险评估"),
            (welfare_client_id, "困难群众救助资格核验"),
        )
        for app_id, scenario in bindings:
            grant = session.exec(
                select(Grant).where(
                    Grant.client_id == app_id,
                    Grant.dataset_id == "social-insurance",
                    Grant.status == "active",
                )
            ).first()
            if grant is not None and grant.product_id is None:
                grant.scenario_id = scenarios[scenario].id
                grant.product_id = product.id
                session.add(grant)
                session.commit()
