"""The portal's layout: Chinese, the §10 headers, its stylesheet served by the gateway."""

from __future__ import annotations

from fastapi.testclient import TestClient


def test_home_is_chinese_with_the_web_headers(client: TestClient):
    answer = client.get("/")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/html")
    assert '<html lang="zh-CN">' in answer.text
    policy = answer.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "'unsafe-inline'" not in policy
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert answer.headers["x-frame-options"] == "DENY"
    assert answer.headers["referrer-policy"]
    for label in ("首页", "数据目录", "数据需求", "数据驾驶舱", "开发者中心", "登录"):
        assert f">{label}</a>" in answer.text


def test_the_stylesheet_is_served_by_the_gateway(client: TestClient):
    answer = client.get("/static/portal/portal.css")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/css")
    assert "url(" not in answer.text  # nothing from elsewhere, not even a font
