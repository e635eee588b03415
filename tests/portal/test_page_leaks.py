"""The leak walk extended to pages: no level-3/4 canary of the data appears in any HTML
page of the site — every page route without parameters, every dataset page, the demands
and the cockpit — for anyone: nobody signed in, a developer, a data administrator (web
sessions) and an app whose grant covers the canary dataset (its bearer token on the
pages), also after 纠错 reports that quote the canaries."""

from __future__ import annotations

from fastapi.routing import APIRoute

from gateway.route_marks import routes_in
from tests.auth.helpers import developer_with_app
from tests.participation.conftest import CANARY_ID, CANARY_NAME, CANARY_PHONE, World, login
from tests.portal.web import web_login

CANARIES = (CANARY_NAME, CANARY_ID, CANARY_PHONE)
NOT_PAGES = ("/api/", "/oauth/", "/auth/", "/.well-known/", "/healthz", "/readyz", "/openapi")


def page_urls(world: World) -> list[str]:
    urls = []
    for route in routes_in(world.client.app.routes):  # type: ignore[attr-defined]
        if (
            isinstance(route, APIRoute)
            and "GET" in route.methods
            and "{" not in route.path
            and not route.path.startswith(NOT_PAGES)
        ):
            urls.append(route.path)
    datasets = ("social-insurance", "air-readings", "sealed-registry")
    return sorted(set(urls)) + [f"/datasets/{d}" for d in datasets] + ["/datasets?q=金丝雀"]


def walk(world: World, headers: dict[str, str] | None = None) -> int:
    seen = 0
    for url in page_urls(world):
        answer = world.client.get(url, headers=headers or {})
        if not answer.headers.get("content-type", "").startswith("text/html"):
            continue
        seen += 1
        for canary in CANARIES:
            assert canary not in answer.text, (url, canary)
            assert canary not in str(answer.headers), (url, canary)
    return seen


def test_no_canary_in_any_page_for_any_account(world: World):
    reg = developer_with_app(world.engine, "granted-dev")
    granted = world.client.post(
        "/api/v1/admin/grants",
        headers=world.as_("admin"),
        json={
            "client_id": reg.client_id,
            "dataset_id": "social-insurance",
            "purpose": "页面泄露测试",
            "modes": ["records"],
        },
    )
    assert granted.status_code == 201, granted.text
    token = world.client.post(
        "/oauth/token",
        auth=(reg.client_id, reg.client_secret),
        data={"grant_type": "client_credentials"},
    ).json()["access_token"]
    app_headers = {"Authorization": f"Bearer {token}"}
    # 纠错 quoting the canaries, anonymous and signed in
    for headers in ({}, login(world.client, "dev-a")):
        world.client.post(
            "/api/v1/datasets/social-insurance/feedback",
            headers=headers,
            json={"record": "1", "message": f"{CANARY_NAME} {CANARY_ID} {CANARY_PHONE} 有误"},
        )

    assert walk(world) >= 8
    # the app's preview is its grant's: masked, never the raw values
    page = world.client.get("/datasets/social-insurance", headers=app_headers).text
    assert 'id="preview-table"' in page and "金****" in page
    assert walk(world, app_headers) >= 8
    for account in ("dev-a", "admin", "granted-dev"):
        world.client.cookies.clear()
        web_login(world.client, account)
        assert walk(world) >= 8
