"""Identity proofing (实名核验, issue 12 finding 1): an identity number reaches an account
only from the installation's OpenID Connect provider — here a real one on loopback
(tests/auth/oidc_provider.py) — or an operator's recorded verification (the CLI tests).

Every refusal (untrusted issuer, bad signature, replayed token, unverified claim, identity of
another account) is a Chinese page, one audit event naming the reason, and no change."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from authlib.integrations.httpx_client import OAuth2Client
from sqlalchemy.engine import Engine

from auth.secrets import identity_hmac
from gateway.app import create_app
from gateway.settings import Settings
from tests.auth.helpers import (
    PASSWORD,
    REDIRECT,
    audit_events,
    developer_with_app,
    hidden_fields,
    user,
    verify_identity,
)
from tests.auth.oidc_provider import Provider
from tests.conftest import LiveServer, free_port
from tests.keys import keys_of
from tests.packages import import_conditional

PERSON_ID = "370202199001011237"


@pytest.fixture
def idp() -> Iterator[Provider]:
    provider = Provider()
    port = free_port()
    provider.issuer = f"http://127.0.0.1:{port}"
    with LiveServer(provider.app(), port):
        yield provider


@pytest.fixture
def gateway(engine: Engine, settings: Settings, idp: Provider) -> Iterator[LiveServer]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    idp.redirect_uris = [f"{url}/auth/identity/callback"]
    configured = settings.model_copy(
        update={
            "issuer": url,
            "identity_issuer": idp.issuer,
            "identity_client_id": idp.client_id,
            "identity_client_secret": idp.client_secret,
        }
    )
    with LiveServer(create_app(configured, engine=engine), port) as server:
        yield server


def signed_in(gateway: LiveServer, username: str) -> dict[str, str]:
    token = httpx.post(
        f"{gateway.url}/auth/login", json={"username": username, "password": PASSWORD}
    ).json()["access_token"]
    return {"Authorization": f"Bearer {token}"}


def prove(gateway: LiveServer, auth: dict[str, str]) -> httpx.Response:
    """Start at the gateway, pass the provider (the person is signed in there), land on the
    gateway's callback: what the person's browser does."""
    start = httpx.post(f"{gateway.url}/auth/identity/start", headers=auth)
    assert start.status_code == 200, start.text
    at_provider = httpx.get(start.json()["authorization_url"])
    assert at_provider.status_code == 302, at_provider.text
    back = at_provider.headers["location"]
    assert back.startswith(f"{gateway.url}/auth/identity/callback?")
    return httpx.get(back)


def me(gateway: LiveServer, auth: dict[str, str]) -> dict:
    return httpx.get(f"{gateway.url}/api/v1/me", headers=auth).json()


def expected_hmac(settings: Settings, engine: Engine, number: str = PERSON_ID) -> str:
    return identity_hmac(keys_of(settings, engine).identity, number)


def test_the_identity_provider_links_a_verified_identity(
    engine: Engine, settings: Settings, idp: Provider, gateway: LiveServer
):
    user(engine, "citizen", "developer")
    auth = signed_in(gateway, "citizen")
    assert me(gateway, auth)["identity_linked"] is False
    done = prove(gateway, auth)
    assert done.status_code == 200 and "实名核验完成" in done.text
    assert done.headers["x-frame-options"] == "DENY"
    assert PERSON_ID not in done.text
    account = me(gateway, auth)
    assert account["identity_linked"] is True
    assert account["identity_proof"] == f"oidc:{idp.issuer}"
    [event] = audit_events(engine, "user.identity_link")
    assert event["outcome"] == "allowed" and event["actor"] == "user:citizen"
    assert event["detail"]["identity"] == expected_hmac(settings, engine)
    assert event["detail"]["proof"] == f"oidc:{idp.issuer}"
    assert PERSON_ID not in str(audit_events(engine, "user.identity_start"))


def test_a_callback_works_once(engine: Engine, idp: Provider, gateway: LiveServer):
    user(engine, "citizen", "developer")
    auth = signed_in(gateway, "citizen")
    start = httpx.post(f"{gateway.url}/auth/identity/start", headers=auth).json()
    back = httpx.get(start["authorization_url"]).headers["location"]
    assert httpx.get(back).status_code == 200
    again = httpx.get(back)
    assert again.status_code == 400 and "无效或已过期" in again.text
    forged = httpx.get(f"{gateway.url}/auth/identity/callback", params={"state": "x", "code": "y"})
    assert forged.status_code == 400
    refused = [e for e in audit_events(engine, "user.identity_link") if e["outcome"] != "allowed"]
    assert [e["detail"]["refused"] for e in refused] == ["state_unknown", "state_unknown"]


@pytest.mark.parametrize(
    ("mode", "reason", "message"),
    [
        ("wrong_issuer", "untrusted_issuer", "并非由本平台信任的身份认证服务签发"),
        ("bad_signature", "bad_signature", "签名无效"),
        ("unverified", "not_verified", "未确认该身份号码已核验"),
        ("wrong_audience", "wrong_audience", "不是签发给本平台的"),
    ],
)
def test_bad_id_tokens_are_refused_audited_and_change_nothing(
    engine: Engine, idp: Provider, gateway: LiveServer, mode: str, reason: str, message: str
):
    user(engine, "citizen", "developer")
    auth = signed_in(gateway, "citizen")
    idp.mode = mode
    refused = prove(gateway, auth)
    assert refused.status_code == 400 and message in refused.text
    assert "实名核验未完成" in refused.text and PERSON_ID not in refused.text
    assert me(gateway, auth)["identity_linked"] is False
    [event] = audit_events(engine, "user.identity_link")
    assert event["detail"]["refused"] == reason and event["outcome"] == "error"


def test_a_replayed_id_token_is_refused(engine: Engine, idp: Provider, gateway: LiveServer):
    user(engine, "first", "developer")
    user(engine, "second", "developer")
    assert prove(gateway, signed_in(gateway, "first")).status_code == 200
    idp.mode = "replay"  # the provider (or someone in between) answers with the old token
    auth = signed_in(gateway, "second")
    replayed = prove(gateway, auth)
    assert replayed.status_code == 400 and "重放" in replayed.text
    assert me(gateway, auth)["identity_linked"] is False
    events = audit_events(engine, "user.identity_link")
    assert [e["detail"].get("refused") for e in events] == [None, "replayed"]


def test_an_identity_of_another_account_is_refused(
    engine: Engine, settings: Settings, idp: Provider, gateway: LiveServer
):
    user(engine, "owner", "developer")
    verify_identity(engine, settings.data_dir, "owner", PERSON_ID)
    user(engine, "intruder", "developer")
    auth = signed_in(gateway, "intruder")
    refused = prove(gateway, auth)
    assert refused.status_code == 409 and "该身份已绑定其他账号" in refused.text
    assert me(gateway, auth)["identity_linked"] is False
    [event] = audit_events(engine, "user.identity_link")
    assert event["detail"]["refused"] == "linked_to_other_account"
    assert event["detail"]["identity"] == expected_hmac(settings, engine)
    assert event["detail"]["proof"] == f"oidc:{idp.issuer}"


def test_an_account_with_another_identity_is_not_relinked_by_sign_in(
    engine: Engine, settings: Settings, idp: Provider, gateway: LiveServer
):
    user(engine, "citizen", "developer")
    verify_identity(engine, settings.data_dir, "citizen", "370203198502024329")
    auth = signed_in(gateway, "citizen")
    refused = prove(gateway, auth)
    assert refused.status_code == 409 and "须由管理员核验" in refused.text
    assert me(gateway, auth)["identity_proof"] == "operator:test"


def test_without_a_provider_there_is_no_self_service_proofing(client, engine: Engine):
    user(engine, "citizen", "developer")
    token = client.post("/auth/login", json={"username": "citizen", "password": PASSWORD}).json()[
        "access_token"
    ]
    answer = client.post("/auth/identity/start", headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 404 and "管理员现场核验" in answer.json()["detail"]


def test_a_person_proves_their_identity_from_the_consent_page(
    engine: Engine, packages: Path, settings: Settings, idp: Provider, gateway: LiveServer
):
    """On the consent page an account not yet verified signs in, goes to the provider, comes
    back to the same page, and then approves; the app's token reads that person's rows."""
    from functools import partial

    key = keys_of(settings, engine).identity
    fields = [
        {"name": "record_id", "type": "integer", "level": 1},
        {"name": "id_number", "type": "string", "level": 4, "pii": "id_number"}
        | {"subject_key": True},
    ]
    rows = [[1, PERSON_ID], [2, "370203198502024321"]]
    import_conditional(
        engine, packages, fields=fields, rows=rows, subject_hmac=partial(identity_hmac, key)
    )
    reg = developer_with_app(engine)
    user(engine, "zhangsan", "developer")
    client = OAuth2Client(
        reg.client_id, reg.client_secret, redirect_uri=REDIRECT, code_challenge_method="S256"
    )
    url, _state = client.create_authorization_url(
        f"{gateway.url}/oauth/authorize",
        code_verifier="q" * 64,
        scope="dataset:social-insurance:self",
        purpose="贷款资格核验",
    )
    browser = httpx.Client(timeout=30)  # keeps the consent page's og_csrf cookie
    page = browser.get(url)
    assert page.status_code == 200 and "通过统一身份认证核验身份" in page.text
    signed = {**hidden_fields(page.text), "username": "zhangsan", "password": PASSWORD}
    not_yet = browser.post(f"{gateway.url}/oauth/authorize", data={**signed, "decision": "approve"})
    assert not_yet.status_code == 403 and "尚未实名核验" in not_yet.text
    to_provider = browser.post(
        f"{gateway.url}/oauth/authorize", data={**signed, "decision": "verify"}
    )
    assert to_provider.status_code == 303
    assert to_provider.headers["location"].startswith(f"{idp.issuer}/authorize?")
    callback = httpx.get(to_provider.headers["location"]).headers["location"]
    back = httpx.get(callback)
    assert back.status_code == 303
    assert back.headers["location"].startswith("/oauth/authorize?")
    assert httpx.get(gateway.url + back.headers["location"]).status_code == 200
    approved = browser.post(
        f"{gateway.url}/oauth/authorize", data={**signed, "decision": "approve"}
    )
    browser.close()
    assert approved.status_code == 302, approved.text
    token = client.fetch_token(
        f"{gateway.url}/oauth/token",
        authorization_response=approved.headers["location"],
        code_verifier="q" * 64,
    )
    records = httpx.get(
        f"{gateway.url}/api/v1/datasets/social-insurance/records",
        headers={"Authorization": f"Bearer {token['access_token']}"},
    ).json()
    assert [r["record_id"] for r in records["data"]] == [1]


@pytest.mark.parametrize(
    "target",
    ["https://evil.example/oauth/authorize", "//evil.example/oauth/authorize", "/api/v1/me", ""],
)
def test_return_to_is_only_the_consent_page(target: str):
    from auth.identity_views import safe_return_to

    assert safe_return_to(target) is None
    assert safe_return_to("/oauth/authorize?client_id=x") == "/oauth/authorize?client_id=x"
