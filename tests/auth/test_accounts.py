"""Accounts: registration, sign-in with throttling, /me, apps, roles; no self-asserted
identity."""

from __future__ import annotations

import logging

import pytest
from sqlalchemy.engine import Engine

from auth.lockout import FREE_FAILURES
from gateway.app import create_app
from gateway.settings import Settings
from tests.auth.helpers import PASSWORD, audit_events, user
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


def test_registration_does_not_say_whether_a_name_exists(client: TestClient, engine: Engine):
    """Finding 13: a taken name gets the very answer a free one gets; only the audit log
    (and a failed sign-in with the new password) tells them apart."""
    user(engine, "taken", "developer")
    taken = client.post(
        "/auth/register",
        json={"username": "taken", "password": "another-password", "email": "t@example.com"},
    )
    free = client.post(
        "/auth/register",
        json={"username": "untaken", "password": "another-password", "email": "t@example.com"},
    )
    assert taken.status_code == free.status_code == 201
    strip = lambda body: {k: v for k, v in body.items() if k != "username"}  # noqa: E731
    assert strip(taken.json()) == strip(free.json())
    assert "已存在" not in taken.text
    # the existing account is untouched: its own password still works, the new one does not
    assert client.post("/auth/login", json=creds("taken")).status_code == 200
    retry = client.post("/auth/login", json={"username": "taken", "password": "another-password"})
    assert retry.status_code == 401
    assert login(client, "untaken", "another-password")["token_type"] == "Bearer"
    events = audit_events(engine, "user.register")
    assert [e["detail"]["result"] for e in events] == ["username_taken", "created"]
    assert all("another-password" not in str(e) for e in events)


def test_switched_off_registration(engine: Engine, settings: Settings):
    closed = settings.model_copy(update={"allow_registration": False})
    with TestClient(create_app(closed, engine=engine)) as other:
        response = other.post(
            "/auth/register",
            json={"username": "newbie", "password": PASSWORD, "email": "n@example.com"},
        )
    assert response.status_code == 403


def at(client: TestClient, address: str) -> TestClient:
    """The same app, called from another client address."""
    return TestClient(client.app, client=(address, 50000))


def creds(username: str) -> dict[str, str]:
    return {"username": username, "password": PASSWORD}


def test_wrong_passwords_slow_down_one_address_not_the_owner(
    client: TestClient, engine: Engine, caplog: pytest.LogCaptureFixture
):
    """Finding 13: five wrong passwords from one address no longer lock the account for its
    owner elsewhere; the guessing address is slowed down instead (Retry-After grows)."""
    caplog.set_level(logging.INFO, logger="opengate.auth")
    user(engine, "target", "data_admin")
    attacker, owner = at(client, "203.0.113.7"), at(client, "198.51.100.20")
    wrong = {"username": "target", "password": "guess-123"}
    for _ in range(FREE_FAILURES):
        assert attacker.post("/auth/login", json=wrong).status_code == 401
    slowed = attacker.post("/auth/login", json=creds("target"))
    assert slowed.status_code == 429 and slowed.json()["code"] == "rate_limited"
    assert int(slowed.headers["Retry-After"]) >= 1
    # the owner, at another address, signs in at once
    mine = owner.post("/auth/login", json=creds("target"))
    assert mine.status_code == 200, mine.text
    assert "sign-in slowed down for 'target' from 203.0.113.7" in caplog.text
    assert "guess-123" not in caplog.text and PASSWORD not in caplog.text


def test_the_slow_down_grows_and_ends(client: TestClient, engine: Engine):
    from datetime import timedelta

    from sqlmodel import Session

    from auth.lockout import MAX_DELAY, delay_after
    from auth.models import LoginFailure

    assert delay_after(FREE_FAILURES - 1) == timedelta(0)
    assert delay_after(FREE_FAILURES) < delay_after(FREE_FAILURES + 3) <= MAX_DELAY
    assert delay_after(100) == MAX_DELAY
    user(engine, "patient", "developer")
    attacker = at(client, "203.0.113.8")
    for _ in range(FREE_FAILURES):
        attacker.post("/auth/login", json={"username": "patient", "password": "nope-nope"})
    assert attacker.post("/auth/login", json=creds("patient")).status_code == 429
    with Session(engine) as session:  # the wait is over
        row = session.get(LoginFailure, ("patient", "203.0.113.8"))
        row.next_allowed_at = row.last_failure_at
        session.add(row)
        session.commit()
    assert attacker.post("/auth/login", json=creds("patient")).status_code == 200
    with Session(engine) as session:  # success forgets the failures of the pair
        assert session.get(LoginFailure, ("patient", "203.0.113.8")) is None


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


def test_no_self_asserted_identity(client: TestClient, engine: Engine):
    """Finding 1: a person cannot link an identity number to their own account by saying
    so; a valid number of someone else's is no existence oracle either."""
    user(engine, "person", "developer")
    auth = bearer(client, "person")
    claimed = client.put(
        "/api/v1/me/identity", json={"id_number": "370202199001011237"}, headers=auth
    )
    assert claimed.status_code in (404, 405)
    assert client.get("/api/v1/me", headers=auth).json()["identity_linked"] is False


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


def test_one_address_guessing_many_accounts_is_throttled(engine: Engine, settings: Settings):
    """The one sign-in limiter (OPENGATE_RATE_LOGIN, per address): an address that tried
    its budget of names is refused, whoever it names next."""
    limited = settings.model_copy(update={"rate_login": "5/minute"})
    with TestClient(create_app(limited, engine=engine)) as client:
        for i in range(5):
            guess = {"username": f"nobody{i}", "password": "guess-guess"}
            assert client.post("/auth/login", json=guess).status_code == 401
        user(engine, "innocent", "developer")
        blocked = client.post("/auth/login", json={"username": "innocent", "password": PASSWORD})
        assert blocked.status_code == 429 and blocked.json()["limit"] == "login"
        assert 1 <= int(blocked.headers["retry-after"]) <= 60
        assert blocked.headers["ratelimit-policy"] == '"login";q=5;w=60'


def test_every_sign_in_counts_in_the_one_limiter(engine: Engine, settings: Settings):
    """The consent page signs people in too: its posts and the API login share the window;
    showing the page is not a sign-in."""
    limited = settings.model_copy(update={"rate_login": "3/minute"})
    form = {"username": "nobody", "password": "guess-guess", "decision": "approve"}
    with TestClient(create_app(limited, engine=engine)) as client:
        body = {"username": "nobody", "password": "guess-guess"}
        assert client.post("/auth/login", json=body).status_code == 401
        assert client.post("/oauth/authorize", data=form).status_code != 429
        for _ in range(3):
            assert client.get("/oauth/authorize").status_code != 429
        assert client.post("/auth/login", json=body).status_code == 401
        refused = client.post("/oauth/authorize", data=form)
        assert refused.status_code == 429 and refused.json()["limit"] == "login"
        assert client.post("/auth/login", json=body).json()["limit"] == "login"
