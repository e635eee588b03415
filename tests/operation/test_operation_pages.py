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
