"""The audit trail seen over HTTP: one event per audited request, before the answer."""

from __future__ import annotations

from pathlib import Path

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from catalog.importer import import_package
from gateway.settings import Settings
from tests.auth.helpers import PASSWORD, developer_with_app, user
from tests.conftest import TestClient
from tests.gateway.test_classified_access import URL, direct_grant
from tests.packages import station_rows, write_package


def _events(engine: Engine) -> list[dict]:
    """Every stored event, JSON columns decoded (SQLite hands them back as text)."""
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT * FROM audit_events ORDER BY seq")).mappings()
        events = [dict(r) for r in rows]
    for e in events:
        for column in ("fields", "detail"):
            if isinstance(e[column], str):
                e[column] = orjson.loads(e[column])
    return events


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


def test_grant_and_data_events_name_grant_version_and_purpose(
    client: TestClient, engine: Engine, world: dict
) -> None:
    granted = direct_grant(client, world)
    response = client.get(f"{URL}/records", headers=world["app"], params={"limit": 3})
    assert response.status_code == 200, response.text
    events = _events(engine)
    (created,) = [e for e in events if e["action"] == "grant.create"]
    assert created["grant_id"] == granted["id"] and created["grant_version"] == 1
    assert created["actor"] not in (None, "anonymous")
    (read,) = [e for e in events if e["request_id"] == response.headers["x-request-id"]]
    assert read["action"] == "data.records"
    assert read["grant_id"] == granted["id"] and read["grant_version"] == granted["version"]
    assert read["purpose"] == "个人贷款授信评估"
    assert read["client_id"] == world["client_id"]
    assert {"name": "person_name", "transform": "mask_name"} in read["fields"]
    assert read["row_count"] == 3

    # denied: another dataset action without a grant is a 403 event with its code
    refused = client.get(f"{URL}/aggregate", headers=world["app"], params={"metrics": "count"})
    assert refused.status_code == 403
    (denial,) = [e for e in _events(engine) if e["request_id"] == refused.headers["x-request-id"]]
    assert denial["outcome"] == "denied" and denial["status"] == 403
    assert denial["detail"]["error"] == "forbidden"


def test_checkpoints_while_events_arrive_and_on_shutdown(
    engine: Engine, settings: Settings, packages: Path
) -> None:
    import time

    from gateway.app import create_app

    import_package(engine, write_package(packages, rows=station_rows(5)))
    fast = settings.model_copy(update={"audit_checkpoint_seconds": 0.2})
    with TestClient(create_app(fast, engine=engine)) as client:
        kinds: list[str] = []
        deadline = time.monotonic() + 20  # generous: a loaded machine delays the thread
        while "periodic" not in kinds and time.monotonic() < deadline:
            assert client.get("/api/v1/datasets/air-readings/records").status_code == 200
            time.sleep(0.15)
            with engine.connect() as conn:
                query = sa.text("SELECT kind FROM audit_checkpoints")
                kinds = [r[0] for r in conn.execute(query)]
        assert "periodic" in kinds
        # No periodic checkpoint may sign the last event first: shutdown must.
        client.app.state.audit_writer.checkpoint_seconds = 60  # type: ignore[attr-defined]
        client.get("/api/v1/datasets/air-readings/records")
    with engine.connect() as conn:
        last = conn.execute(
            sa.text("SELECT kind, tree_size FROM audit_checkpoints ORDER BY id DESC LIMIT 1")
        ).one()
        head = conn.execute(sa.text("SELECT seq FROM audit_head")).scalar_one()
    assert last.kind == "shutdown" and last.tree_size == head


def test_refusals_before_the_plan_are_found_by_dataset(
    client: TestClient, engine: Engine, world: dict
) -> None:
    user(engine, "auditor2", "auditor")
    refused = client.get(f"{URL}/records", headers=world["app"])  # no grant yet
    assert refused.status_code == 403 and refused.json()["code"] == "grant_required"
    missing = client.get("/api/v1/datasets/social-insurance/records/370202199001011237")
    assert missing.status_code in (401, 403, 404)
    auditor = _login(client, "auditor2")
    page = client.get(
        "/api/v1/audit/events", headers=auditor, params={"dataset": "social-insurance"}
    ).json()["data"]
    ids = {e["request_id"] for e in page}
    assert refused.headers["x-request-id"] in ids
    assert missing.headers["x-request-id"] in ids
    assert all(e["resource"] == "datasets/social-insurance" for e in page)
    assert "370202199001011237" not in orjson.dumps(page).decode()
