"""Each role lands on its own console after sign-in without `next`, and the site
navigation links a signed-in account to its own console (portal/homes.py)."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from tests.auth.helpers import PASSWORD, user
from tests.portal.web import csrf_of, links_of

HOMES = [
    ("developer", "/console", "开发者中心"),
    ("data_admin", "/admin", "管理后台"),
    ("auditor", "/audit", "审计"),
    ("sysadmin", "/admin/system", "系统管理"),
]
OTHER_LABELS = {label for _role, _home, label in HOMES}


def _sign_in(client: TestClient, username: str, **extra: str):
    token = csrf_of(client, "/login")
    data = {"username": username, "password": PASSWORD, "csrf_token": token, **extra}
    return client.post("/login", data=data, follow_redirects=False)


def _nav(html: str) -> str:
    start = html.index('<nav aria-label="主导航">')
    return html[start : html.index("</nav>", start)]


@pytest.mark.parametrize(("role", "home", "label"), HOMES)
def test_sign_in_without_next_lands_on_the_roles_console(
    client: TestClient, engine: Engine, role: str, home: str, label: str
):
    user(engine, f"u-{role}", role)
    answer = _sign_in(client, f"u-{role}")
    assert answer.status_code == 303 and answer.headers["location"] == home
    landed = client.get(home)
    assert landed.status_code == 200, landed.text
    # /login again while signed in goes home too; an explicit next still wins
    assert client.get("/login", follow_redirects=False).headers["location"] == home
    again = client.get("/login?next=/datasets", follow_redirects=False)
    assert again.headers["location"] == "/datasets"


def test_an_explicit_next_wins_and_a_foreign_one_falls_back_home(
    client: TestClient, engine: Engine
):
    user(engine, "aud1", "auditor")
    assert _sign_in(client, "aud1", next="/datasets").headers["location"] == "/datasets"
    client.cookies.clear()
    foreign = _sign_in(client, "aud1", next="//evil.example/")
    assert foreign.headers["location"] == "/audit"


@pytest.mark.parametrize(("role", "home", "label"), HOMES)
def test_the_navigation_links_the_accounts_own_console(
    client: TestClient, engine: Engine, role: str, home: str, label: str
):
    user(engine, f"n-{role}", role)
    assert _sign_in(client, f"n-{role}").status_code == 303
    nav = _nav(client.get("/datasets").text)
    assert f'href="{home}"' in nav and f">{label}</a>" in nav
    # no link to another role's console
    for other in OTHER_LABELS - {label}:
        assert f">{other}</a>" not in nav
    hrefs = links_of(nav).urls
    assert hrefs.count(home) == 1


def test_anonymous_navigation_offers_the_developer_center(client: TestClient):
    nav = _nav(client.get("/").text)
    assert 'href="/console"' in nav and ">开发者中心</a>" in nav
    for label in OTHER_LABELS - {"开发者中心"}:
        assert f">{label}</a>" not in nav
