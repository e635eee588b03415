"""The leak walk extended to pages: no level-3/4 canary of the data appears in any HTML
page of the site — every page route without parameters, every dataset page, the demands
and the cockpit — for anyone: nobody signed in, a developer, a data administrator (web
sessions) and an app whose grant covers the canary dataset (its bearer token on the
pages), also after 纠错 reports that quote the canaries; the OAuth consent page is walked
too (asking for the canary dataset)."""

from __future__ import annotations

import re

from authlib.integrations.httpx_client import OAuth2Client
from fastapi.routing import APIRoute

from gateway.route_marks import routes_in
from tests.auth.helpers import REDIRECT, developer_with_app
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


def consent_urls(client_id: str) -> list[str]:
    """The consent page (个人授权) of an app asking for a person's own rows of the canary
    dataset, and for open data; and the page of a request it cannot show."""
    app = OAuth2Client(client_id, redirect_uri=REDIRECT, code_challenge_method="S256")
    urls = [
        app.create_authorization_url(
            "/oauth/authorize",
            code_verifier="v" * 64,
            scope=scope,
            purpose="页面泄露测试",
            duration_days="30",
        )[0]
        for scope in ("dataset:social-insurance:self", "dataset:air-readings")
    ]
    return [*urls, "/oauth/authorize?client_id=nobody"]


def walk(world: World, headers: dict[str, str] | None = None, extra: tuple[str, ...] = ()) -> int:
    seen = 0
    for url in [*page_urls(world), *extra]:
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
    consents = tuple(consent_urls(reg.client_id))
    for url in consents[:2]:  # the walk reaches the consent pages themselves
        shown = world.client.get(url)
        assert shown.status_code == 200 and "个人数据授权确认" in shown.text, shown.text
    # 纠错 quoting the canaries, anonymous and signed in
    for headers in ({}, login(world.client, "dev-a")):
        world.client.post(
            "/api/v1/datasets/social-insurance/feedback",
            headers=headers,
            json={"record": "1", "message": f"{CANARY_NAME} {CANARY_ID} {CANARY_PHONE} 有误"},
        )

    assert walk(world, extra=consents) >= 11
    # the app's preview is its grant's: masked, never the raw values
    page = world.client.get("/datasets/social-insurance", headers=app_headers).text
    api = world.client.get(
        "/api/v1/datasets/social-insurance/records?limit=5", headers=app_headers
    ).json()
    table = re.search(r'<table id="preview-table">.*?</table>', page, re.S).group(0)
    cells = [re.sub(r"<[^>]+>", "", c) for c in re.findall(r"<td>(.*?)</td>", table)]
    expected = [str(v) for row in api["data"] for v in row.values()]
    assert cells == expected  # masked exactly as the API masks them
    assert "金****" in cells and any(c.startswith("p_") for c in cells)
    assert walk(world, app_headers, consents) >= 11
    for account in ("dev-a", "admin", "granted-dev"):
        world.client.cookies.clear()
        web_login(world.client, account)
        assert walk(world, extra=consents) >= 11
