"""Accounts: registration, sign-in with throttling, /me, apps, identity linking, roles."""

from __future__ import annotations

import logging

import pytest
from sqlalchemy.engine import Engine

from auth.users import LOCK_AFTER
from gateway.app import create_app
from gateway.settings import Settings
from tests.auth.helpers import PASSWORD, user
from tests.conftest import TestClient


def login(client: TestClient, username: str, password: str = PASSWORD) -> dict:
    return client.post("/auth/login", json={"username": username, "password": password}).json()


def bearer(client: TestClient, username: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {login(client, username)['access_token']}"}


def test_register_login_me(client: TestClient):
    created = client.post(
        "/auth/register",
        json={
            "username": "li.ming",
            "password": PASSWORD,
            "email": "li@example.com",
            "organization": "青岛某银行",
        },
    )
    assert created.status_code == 201 and created.json()["role"] == "developer"
    assert "password" not in created.text
    token = login(client, "li.ming")
    assert token["token_type"] == "Bearer" and token["expires_in"] == 600
    me = client.get("/api/v1/me", headers={"Authorization": f"Bearer {token['access_token']}"})
    assert me.json()["username"] == "li.ming" and me.json()["organization"] == "青岛某银行"


@pytest.mark.parametrize(
    ("body", "parameter"),
    [
        ({"username": "ab", "password": PASSWORD, "email": "a@example.com"}, "username"),
        ({"username": "abc", "password": "short", "email": "a@example.com"}, "password"),
        ({"username": "abc", "password": PASSWORD, "email": "not-an-email"}, "email"),
    ],
)
def test_bad_registrations(client: TestClient, body: dict, parameter: str):
    response = client.post("/auth/register", json=body)
    assert response.status_code == 400 and response.json()["parameter"] == parameter


def test_duplicate_username_and_switched_off_registration(
    client: TestClient, engine: Engine, settings: Settings
):
    user(engine, "taken", "developer")
    response = client.post(
        "/auth/register", json={"username": "taken", "password": PASSWORD, "email": "t@example.com"}
    )
    assert response.status_code == 400 and "已存在" in response.json()["detail"]
    closed = settings.model_copy(update={"allow_registration": False})
    with TestClient(create_app(closed, engine=engine)) as other:
        response = other.post(
            "/auth/register",
            json={"username": "newbie", "password": PASSWORD, "email": "n@example.com"},
        )
    assert response.status_code == 403


def test_brute_force_locks_the_account_and_is_logged(
    client: TestClient, engine: Engine, caplog: pytest.LogCaptureFixture
):
    caplog.set_level(logging.INFO, logger="opengate.auth")
    user(engine, "target", "developer")
    for _ in range(LOCK_AFTER):
        assert (
            client.post(
                "/auth/login", json={"username": "target", "password": "guess-123"}
            ).status_code
            == 401
        )
    locked = client.post("/auth/login", json={"username": "target", "password": PASSWORD})
    assert locked.status_code == 429 and locked.json()["code"] == "rate_limited"
    assert "Retry-After" in locked.headers
    assert "account target locked" in caplog.text
    assert "guess-123" not in caplog.text and PASSWORD not in caplog.text


def test_unknown_user_and_wrong_password_look_the_same(client: TestClient, engine: Engine):
    user(engine, "known", "developer")
    a = client.post("/auth/login", json={"username": "known", "password": "wrong-pass"})
    b = client.post("/auth/login", json={"username": "nobody", "password": "wrong-pass"})
    assert a.status_code == b.status_code == 401
    assert a.json()["detail"] == b.json()["detail"]


def test_apps_are_a_developers_own(client: TestClient, engine: Engine):
    user(engine, "dev-a", "developer")
    user(engine, "dev-b", "developer")
    a, b = bearer(client, "dev-a"), bearer(client, "dev-b")
    created = client.post("/api/v1/apps", json={"name": "授信评估"}, headers=a)
    assert created.status_code == 201
    body = created.json()
    assert body["client_id"].startswith("og_") and len(body["client_secret"]) >= 40
    listed = client.get("/api/v1/apps", headers=a).json()["data"]
    assert [x["client_id"] for x in listed] == [body["client_id"]]
    assert "client_secret" not in listed[0]
    assert client.get("/api/v1/apps", headers=b).json()["data"] == []
    assert (
        client.post(f"/api/v1/apps/{body['client_id']}/rotate-secret", headers=b).status_code == 404
    )
    rotated = client.post(f"/api/v1/apps/{body['client_id']}/rotate-secret", headers=a).json()
    assert rotated["client_secret"] != body["client_secret"]
    old = client.post(
        "/oauth/token",
        auth=(body["client_id"], body["client_secret"]),
        data={"grant_type": "client_credentials"},
    )
    assert old.status_code == 401
    new = client.post(
        "/oauth/token",
        auth=(body["client_id"], rotated["client_secret"]),
        data={"grant_type": "client_credentials"},
    )
    assert new.status_code == 200


@pytest.mark.parametrize(
    "body",
    [
        {"name": ""},
        {"name": "x", "redirect_uris": ["http://example.com/cb"]},
        {"name": "x", "redirect_uris": ["https://example.com/cb#frag"]},
        {"name": "x", "jwks": {"keys": [{"kty": "nope"}]}},
        {"name": "x", "jwks_uri": "https://evil.example/jwks.json"},
    ],
)
def test_bad_app_registrations(client: TestClient, engine: Engine, body: dict):
    user(engine, "dev-c", "developer")
    response = client.post("/api/v1/apps", json=body, headers=bearer(client, "dev-c"))
    assert response.status_code == 400 and response.json()["code"] == "invalid_parameter"


def test_identity_link_validates_the_check_digit(client: TestClient, engine: Engine):
    user(engine, "person", "developer")
    auth = bearer(client, "person")
    bad = client.put("/api/v1/me/identity", json={"id_number": "370202199001011234"}, headers=auth)
    assert bad.status_code == 400 and "370202199001011234" not in bad.text
    good = client.put("/api/v1/me/identity", json={"id_number": "370202199001011237"}, headers=auth)
    assert good.json()["identity_linked"] is True
    assert "370202199001011237" not in good.text


@pytest.mark.parametrize("role", ["data_admin", "auditor", "sysadmin"])
def test_non_developers_cannot_own_apps(client: TestClient, engine: Engine, role: str):
    user(engine, f"r-{role}", role)
    response = client.post("/api/v1/apps", json={"name": "x"}, headers=bearer(client, f"r-{role}"))
    assert response.status_code == 403 and response.json()["code"] == "forbidden"
    assert client.get("/api/v1/me", headers=bearer(client, f"r-{role}")).json()["role"] == role


def test_app_tokens_are_not_user_tokens(client: TestClient, engine: Engine):
    user(engine, "dev-d", "developer")
    created = client.post("/api/v1/apps", json={"name": "x"}, headers=bearer(client, "dev-d"))
    creds = created.json()
    token = client.post(
        "/oauth/token",
        auth=(creds["client_id"], creds["client_secret"]),
        data={"grant_type": "client_credentials"},
    ).json()["access_token"]
    response = client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 403


def test_one_address_guessing_many_accounts_is_throttled(client: TestClient, engine: Engine):
    from auth.users import IP_FAILURES

    for i in range(IP_FAILURES):
        client.post("/auth/login", json={"username": f"nobody{i}", "password": "guess-guess"})
    user(engine, "innocent", "developer")
    blocked = client.post("/auth/login", json={"username": "innocent", "password": PASSWORD})
    assert blocked.status_code == 429
