"""The audit trail seen over HTTP: one event per audited request, before the answer."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from catalog.importer import import_package
from tests.auth.helpers import PASSWORD, developer_with_app, user
from tests.conftest import TestClient
from tests.packages import station_rows, write_package


def _events(engine: Engine) -> list[dict]:
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT * FROM audit_events ORDER BY seq")).mappings()
        return [dict(r) for r in rows]


def _login(client: TestClient, name: str) -> dict[str, str]:
    token = client.post("/auth/login", json={"username": name, "password": PASSWORD})
    return {"Authorization": f"Bearer {token.json()['access_token']}"}


def test_open_records_request_is_stored_before_the_answer(
    client: TestClient, engine: Engine, packages: Path
) -> None:
    import_package(engine, write_package(packages, rows=station_rows(20)))
    response = client.get("/api/v1/datasets/air-readings/records", params={"limit": 5})
    assert response.status_code == 200, response.text
    rid = response.headers["x-request-id"]
    (event,) = [e for e in _events(engine) if e["request_id"] == rid]
    assert event["action"] == "data.records"
    assert event["outcome"] == "allowed"
    assert event["status"] == 200
    assert event["row_count"] == len(response.json()["data"])
    assert event["actor"] == "anonymous"
    assert event["resource"] == "datasets/air-readings"


def test_denials_and_auditor_only_reads(client: TestClient, engine: Engine) -> None:
    user(engine, "auditor1", "auditor")
    user(engine, "sys1", "sysadmin")
    developer_with_app(engine, "dev1")
    refused = client.get("/api/v1/audit/events", headers=_login(client, "sys1"))
    assert refused.status_code == 403
    bad = client.get("/api/v1/me", headers={"Authorization": "Bearer nope"})
    assert bad.status_code == 401
    auditor = _login(client, "auditor1")
    page = client.get("/api/v1/audit/events", headers=auditor, params={"outcome": "denied"})
    assert page.status_code == 200
    actions = [e["action"] for e in page.json()["data"]]
    assert "access.denied" in actions
    verified = client.get("/api/v1/audit/verify", headers=auditor).json()
    assert verified["ok"] is True and verified["first_bad_seq"] is None
    # the auditor's own reads are events too
    reads = client.get("/api/v1/audit/events", headers=auditor, params={"action": "audit"})
    assert {e["action"] for e in reads.json()["data"]} >= {"audit.search", "audit.verify"}
