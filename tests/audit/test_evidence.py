"""The evidence an auditor relies on (issue 13, finding 5): each decision's event names who
took it, for which app, on which dataset, for what purpose, and what was decided — and one
actor convention (`client:…`, `user:…`, `anonymous`) holds for every event, data ones
included (docs/contract-audit.md §8.2)."""

from __future__ import annotations

import base64
import hashlib
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session

from gateway.settings import Settings
from policies import grants as grant_service
from tests.audit.test_audit_trail import _events, _login
from tests.auth.helpers import (
    PASSWORD,
    REDIRECT,
    consent_form,
    developer_with_app,
    verify_identity,
)
from tests.conftest import TestClient
from tests.gateway.test_classified_access import PERSON_ID, URL, direct_grant

SI = "social-insurance"
PURPOSE = "个人贷款授信评估"


def _only(engine: Engine, action: str, request_id: str) -> dict:
    (event,) = [e for e in _events(engine) if e["request_id"] == request_id]
    assert event["action"] == action
    return event


def _apply(client: TestClient, world: dict, **extra: object):
    return client.post(
        "/api/v1/applications",
        headers=world["dev"],
        json={
            "client_id": world["client_id"],
            "dataset_id": SI,
            "purpose": PURPOSE,
            "modes": ["records"],
            "duration_days": 30,
            **extra,
        },
    )


def test_application_and_grant_transitions_name_actor_app_dataset_purpose_and_decision(
    client: TestClient, engine: Engine, world: dict
):
    created = client.post("/api/v1/apps", headers=world["dev"], json={"name": "第二个应用"})
    event = _only(engine, "app.create", created.headers["x-request-id"])
    assert event["actor"] == "user:bank"
    assert event["client_id"] == created.json()["client_id"]
    assert event["resource"] == f"apps/{created.json()['client_id']}"
    assert event["detail"]["client_type"] == "confidential"

    applied = _apply(client, world)
    assert applied.status_code == 201, applied.text
    event = _only(engine, "application.create", applied.headers["x-request-id"])
    assert (event["actor"], event["client_id"], event["resource"], event["purpose"]) == (
        "user:bank",
        world["client_id"],
        f"datasets/{SI}",
        PURPOSE,
    )
    assert event["detail"]["decision"] == "submit" and event["detail"]["status"] == "pending"
    assert event["detail"]["application_id"] == applied.json()["id"]
    assert event["detail"]["modes"] == ["records"]

    approved = client.post(
        f"/api/v1/admin/applications/{applied.json()['id']}/approve",
        headers=world["admin"],
        json={},
    )
    assert approved.status_code == 200, approved.text
    event = _only(engine, "application.approve", approved.headers["x-request-id"])
    assert (event["actor"], event["client_id"], event["resource"], event["purpose"]) == (
        "user:admin1",
        world["client_id"],
        f"datasets/{SI}",
        PURPOSE,
    )
    assert event["grant_id"] == approved.json()["id"] and event["grant_version"] == 1
    assert event["detail"]["decision"] == "approve"
    assert event["detail"]["grant_status"] == "active"
    assert event["detail"]["application_id"] == applied.json()["id"]

    # approving again is refused, and the refusal still says what it was about
    again = client.post(
        f"/api/v1/admin/applications/{applied.json()['id']}/approve",
        headers=world["admin"],
        json={},
    )
    assert again.status_code == 409
    event = _only(engine, "application.approve", again.headers["x-request-id"])
    assert event["outcome"] == "error" and event["client_id"] == world["client_id"]
    assert event["resource"] == f"datasets/{SI}" and event["detail"]["decision"] == "approve"

    second = _apply(client, world, purpose="另一用途说明")
    rejected = client.post(
        f"/api/v1/admin/applications/{second.json()['id']}/reject",
        headers=world["admin"],
        json={"reason": "用途与数据不符"},
    )
    assert rejected.status_code == 200, rejected.text
    event = _only(engine, "application.reject", rejected.headers["x-request-id"])
    assert (event["actor"], event["client_id"], event["resource"], event["purpose"]) == (
        "user:admin1",
        world["client_id"],
        f"datasets/{SI}",
        "另一用途说明",
    )
    assert event["detail"]["decision"] == "reject"
    assert event["detail"]["reason"] == "用途与数据不符"
    assert event["detail"]["status"] == "rejected"

    grant_id = approved.json()["id"]
    with Session(engine) as session:
        grant_service.suspend(session, grant_id=grant_id, reason="verify_sweep", notice="测试")
    reinstated = client.post(
        f"/api/v1/admin/grants/{grant_id}/reinstate",
        headers=world["admin"],
        json={"reason": "已核实为正常业务"},
    )
    assert reinstated.status_code == 200, reinstated.text
    event = _only(engine, "grant.reinstate", reinstated.headers["x-request-id"])
    assert event["actor"] == "user:admin1" and event["grant_id"] == grant_id
    assert event["purpose"] == PURPOSE and event["client_id"] == world["client_id"]
    assert event["detail"]["decision"] == "reinstate"
    assert event["detail"]["previous_status"] == "suspended"
    assert event["detail"]["grant_status"] == "active"
    assert event["detail"]["reason"] == "已核实为正常业务"

    revoked = client.post(
        f"/api/v1/admin/grants/{grant_id}/revoke",
        headers=world["admin"],
        json={"reason": "合作终止"},
    )
    assert revoked.status_code == 200, revoked.text
    event = _only(engine, "grant.revoke", revoked.headers["x-request-id"])
    assert (event["actor"], event["client_id"], event["resource"], event["purpose"]) == (
        "user:admin1",
        world["client_id"],
        f"datasets/{SI}",
        PURPOSE,
    )
    assert event["detail"]["decision"] == "revoke"
    assert event["detail"]["previous_status"] == "active"
    assert event["detail"]["grant_status"] == "revoked"
    assert event["detail"]["reason"] == "合作终止"

    direct = direct_grant(client, world, purpose="授权运营直接授权")
    (event,) = [
        e
        for e in _events(engine)
        if e["action"] == "grant.create" and e["grant_id"] == direct["id"]
    ]
    assert event["actor"] == "user:admin1" and event["client_id"] == world["client_id"]
    assert event["purpose"] == "授权运营直接授权" and event["detail"]["decision"] == "create"


def test_data_events_use_the_actor_convention_and_the_auditor_finds_them(
    client: TestClient, engine: Engine, world: dict
):
    direct_grant(client, world)
    read = client.get(f"{URL}/records", headers=world["app"], params={"limit": 2})
    assert read.status_code == 200
    refused = client.get(f"{URL}/aggregate", headers=world["app"])  # no aggregate mode
    assert refused.status_code == 403
    actor = f"client:{world['client_id']}"
    assert _only(engine, "data.records", read.headers["x-request-id"])["actor"] == actor

    from tests.auth.helpers import user

    user(engine, "auditor1", "auditor")
    found = client.get(
        "/api/v1/audit/events",
        headers=_login(client, "auditor1"),
        params={"actor": actor, "action": "data"},
    )
    assert found.status_code == 200
    seen = {e["request_id"] for e in found.json()["data"]}
    assert {read.headers["x-request-id"], refused.headers["x-request-id"]} <= seen
    assert all(e["actor"] == actor for e in found.json()["data"])
    # a signed-in account's calls are `user:<name>`
    mine = client.get("/api/v1/me", headers=world["admin"])
    assert mine.status_code == 200
    listed = client.get("/api/v1/admin/grants", headers=world["admin"])
    assert listed.status_code == 200
    for event in _events(engine):
        assert event["actor"] in ("anonymous", "gateway") or event["actor"].startswith(
            ("client:", "user:", "cli:")
        ), event


def _challenge(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


@pytest.fixture
def person(engine: Engine, settings: Settings, world: dict) -> None:
    developer_with_app(engine, "zhangsan", redirect_uris=[])
    verify_identity(engine, settings.data_dir, "zhangsan", PERSON_ID)


def _decide(client: TestClient, world: dict, decision: str, **form: str):
    verifier = "v" * 64
    query = {
        "response_type": "code",
        "client_id": world["client_id"],
        "redirect_uri": REDIRECT,
        "scope": f"dataset:{SI}:self",
        "purpose": "贷款资格核验",
        "duration_days": "30",
        "code_challenge": _challenge(verifier),
        "code_challenge_method": "S256",
        "state": "s1",
    }
    shown = consent_form(client, "/oauth/authorize?" + urlencode(query))
    return client.post(
        "/oauth/authorize",
        data={**shown, "decision": decision, **form},
        follow_redirects=False,
    )


def test_consent_decisions_name_the_person_app_dataset_purpose_and_decision(
    client: TestClient, engine: Engine, world: dict, person: None
):
    approved = _decide(client, world, "approve", username="zhangsan", password=PASSWORD)
    assert approved.status_code == 302 and "code=" in approved.headers["location"]
    event = _only(engine, "consent.decide", approved.headers["x-request-id"])
    assert (event["actor"], event["client_id"], event["resource"], event["purpose"]) == (
        "user:zhangsan",
        world["client_id"],
        f"datasets/{SI}",
        "贷款资格核验",
    )
    assert event["outcome"] == "allowed" and event["status"] == 302
    assert event["detail"]["decision"] == "approve"
    assert event["detail"]["consent_id"] and event["detail"]["duration_days"] == 30
    assert event["detail"]["scope"] == f"dataset:{SI}:self"

    denied = _decide(client, world, "deny", username="zhangsan", password=PASSWORD)
    assert denied.status_code == 302 and "error=access_denied" in denied.headers["location"]
    event = _only(engine, "consent.decide", denied.headers["x-request-id"])
    assert (event["actor"], event["client_id"], event["resource"], event["purpose"]) == (
        "user:zhangsan",
        world["client_id"],
        f"datasets/{SI}",
        "贷款资格核验",
    )
    assert event["outcome"] == "denied" and event["detail"]["decision"] == "deny"
    assert "consent_id" not in event["detail"]

    # refusing without signing in is still a refusal, by nobody known
    anonymous = _decide(client, world, "deny")
    assert anonymous.status_code == 302
    event = _only(engine, "consent.decide", anonymous.headers["x-request-id"])
    assert event["actor"] == "anonymous" and event["outcome"] == "denied"
    assert event["client_id"] == world["client_id"]

    # a wrong password on approve: denied, and who tried is named
    wrong = _decide(client, world, "approve", username="zhangsan", password="not it at all")
    assert wrong.status_code == 401
    event = _only(engine, "consent.decide", wrong.headers["x-request-id"])
    assert event["outcome"] == "denied" and event["detail"]["decision"] == "approve"
    assert event["client_id"] == world["client_id"] and event["actor"] == "user:zhangsan"
    assert event["detail"]["error"] == "unauthorized"

    # the person's token reads as the person, for the app
    code = parse_qs(urlsplit(approved.headers["location"]).query)["code"][0]
    token = client.post(
        "/oauth/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT,
            "code_verifier": "v" * 64,
            "client_id": world["client_id"],
            "client_secret": world["client_secret"],
        },
    )
    assert token.status_code == 200, token.text
    mine = client.get(
        f"{URL}/records", headers={"Authorization": f"Bearer {token.json()['access_token']}"}
    )
    assert mine.status_code == 200
    event = _only(engine, "data.records", mine.headers["x-request-id"])
    assert event["actor"] == "user:zhangsan" and event["client_id"] == world["client_id"]
