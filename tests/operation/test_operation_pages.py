"""The public pages of authorized operation: zones, a zone's page, the product disclosure —
in Chinese, with the prices in 元 and the approved scenarios (organizations, no person)."""

from __future__ import annotations

from tests.conftest import TestClient
from tests.operation.test_operation_api import setup_operation, world  # noqa: F401


def test_zone_and_product_pages(client: TestClient, world: dict) -> None:  # noqa: F811
    setup_operation(client, world)
    zones = client.get("/zones")
    assert zones.status_code == 200 and 'lang="zh-CN"' in zones.text
    assert "金融专区" in zones.text and 'href="/zones/finance"' in zones.text
    zone = client.get("/zones/finance")
    assert zone.status_code == 200
    assert "QD-FIN-0001" in zone.text and "信贷风险评估" in zone.text and "12.50" in zone.text
    assert "小微企业信贷风控" in zone.text and "产业发展" in zone.text
    disclosure = client.get("/products")
    assert "数据产品与价格公开" in disclosure.text and "20.00" in disclosure.text
    assert "/api/v1/products?format=csv" in disclosure.text
    assert "惠民补贴发放核验" in disclosure.text and "公益事业" in disclosure.text
    missing = client.get("/zones/nowhere")
    assert missing.status_code == 404 and "行业专区 nowhere 不存在" in missing.text
    script = client.post(
        "/api/v1/admin/zones",
        json={"id": "health", "name": "<script>alert(1)</script>"},
        headers=world["admin"],
    )
    assert script.status_code == 201
    shown = client.get("/zones").text
    assert "<script>alert(1)</script>" not in shown and "&lt;script&gt;" in shown


def test_the_auditor_console_reconciles_a_month(
    client: TestClient,
    world: dict,  # noqa: F811
    engine,
) -> None:
    import sqlalchemy as sa

    from operation import statements
    from tests.portal.web import web_login

    made = setup_operation(client, world)
    granted = client.post(
        "/api/v1/admin/grants",
        json={"client_id": world["bank"], "dataset_id": "credit-records", "purpose": "信贷风险评估",
              "modes": ["records"]},
        headers=world["admin"],
    )  # fmt: skip
    client.post(
        f"/api/v1/admin/grants/{granted.json()['id']}/operation",
        json={"scenario_id": made["scenarios"]["industry"], "product_id": made["product_id"]},
        headers=world["admin"],
    )
    client.get("/api/v1/datasets/credit-records/records?limit=3", headers=world["bank_token"])
    web_login(client, "auditor1")
    month = statements.current_month()
    page = client.get("/audit/reconciliation")
    assert page.status_code == 200 and f"计量对账 {month}" in page.text
    assert "差异为 0" in page.text and "QD-FIN-0001" in page.text
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE usage_ledger SET rows = rows + 7"))
    edited = client.get(f"/audit/reconciliation?month={month}")
    assert "发现 1 处差异" in edited.text
    bad = client.get("/audit/reconciliation?month=2026-13")
    assert bad.status_code == 400 and "月份格式应为 YYYY-MM" in bad.text
