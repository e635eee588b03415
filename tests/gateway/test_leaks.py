"""No level-3/4 value leaves where the grant does not allow it: every data endpoint × every
format × every mode, plus the error paths, with canary values in the data. The raw canary
must appear in no body, no header, no error and no log line."""

from __future__ import annotations

import json
import logging
from functools import partial
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from audit.store import SELECT_COLUMNS, event_from_row
from auth.secrets import identity_hmac
from catalog.importer import import_package
from gateway.settings import Settings
from tests.auth.helpers import PASSWORD, developer_with_app, user
from tests.conftest import TestClient
from tests.keys import keys_of
from tests.packages import write_package

CANARIES = {
    "person_name": "金丝雀甲乙",
    "id_number": "370211198811110019",
    "phone": "13977665544",
    "bank_card": "6222029988776655443",
    "email": "canary.bird@example.org",
    "address": "青岛市黄岛区金丝雀路77号",
}
FIELDS = [
    {"name": "record_id", "type": "integer", "level": 1},
    {"name": "person_name", "type": "string", "level": 3, "pii": "name"},
    {"name": "id_number", "type": "string", "level": 4, "pii": "id_number", "subject_key": True},
    {"name": "phone", "type": "string", "level": 3, "pii": "phone"},
    {"name": "bank_card", "type": "string", "level": 4, "pii": "bank_card"},
    {"name": "email", "type": "string", "level": 4, "pii": "email"},
    {"name": "address", "type": "string", "level": 4, "pii": "address"},
    {"name": "district", "type": "string", "level": 1},
    {"name": "monthly_base", "type": "integer", "level": 3},
]


@pytest.fixture
def leaky(client: TestClient, engine: Engine, packages: Path, settings: Settings) -> dict:
    rows = [
        [
            i,
            CANARIES["person_name"],
            CANARIES["id_number"],
            CANARIES["phone"],
            CANARIES["bank_card"],
            CANARIES["email"],
            CANARIES["address"],
            ["市南区", "崂山区"][i % 2],
            5000 + i,
        ]
        for i in range(1, 31)
    ]
    key = keys_of(settings, engine).identity
    import_package(
        engine,
        write_package(packages, name="canary", open_type="conditional", fields=FIELDS, rows=rows),
        subject_hmac=partial(identity_hmac, key),
    )
    reg = developer_with_app(engine, "leaker")
    user(engine, "leak-admin", "data_admin")
    admin = client.post("/auth/login", json={"username": "leak-admin", "password": PASSWORD})
    admin_auth = {"Authorization": f"Bearer {admin.json()['access_token']}"}
    granted = client.post(
        "/api/v1/admin/grants",
        headers=admin_auth,
        json={
            "client_id": reg.client_id,
            "dataset_id": "canary",
            "purpose": "泄露测试",
            "modes": ["records", "aggregate", "verify"],
            "k": 2,
            "fields": [f["name"] for f in FIELDS],
        },
    )
    assert granted.status_code == 201, granted.text
    token = client.post(
        "/oauth/token",
        auth=(reg.client_id, reg.client_secret),
        data={"grant_type": "client_credentials"},
    ).json()["access_token"]
    return {"Authorization": f"Bearer {token}"}


def requests_to_try() -> list[tuple[str, str, dict]]:
    base = "/api/v1/datasets/canary"
    calls: list[tuple[str, str, dict]] = []
    for fmt in ("json", "csv", "jsonl"):
        calls.append(("GET", f"{base}/records", {"params": {"format": fmt, "limit": 50}}))
    for fmt in ("csv", "jsonl"):
        calls.append(("GET", f"{base}/export", {"params": {"format": fmt}}))
    calls.append(("GET", f"{base}/records/1", {}))
    calls.append(
        (
            "GET",
            f"{base}/aggregate",
            {
                "params": {
                    "group_by": "district",
                    "metrics": "count,sum:monthly_base,avg:monthly_base",
                }
            },
        )
    )
    calls.append(("GET", f"{base}/policy", {}))
    for name, value in CANARIES.items():
        # filters, orders, keys, cursors and verify bodies carrying the canary
        calls.append(("GET", f"{base}/records", {"params": {name: value}}))
        calls.append(("GET", f"{base}/records", {"params": {f"{name}__contains": value[2:6]}}))
        calls.append(("GET", f"{base}/records", {"params": {"monthly_base": value}}))
        calls.append(("GET", f"{base}/records/{value}", {}))
        calls.append(("GET", f"{base}/records", {"params": {"cursor": value}}))
        calls.append(("GET", f"{base}/aggregate", {"params": {"group_by": name}}))
        calls.append(("GET", f"{base}/aggregate", {"params": {"district": value}}))
        calls.append(("POST", f"{base}/verify", {"json": {"match": {name: value}}}))
        calls.append(("POST", f"{base}/verify", {"json": {"match": {"monthly_base": value}}}))
    return calls


def test_no_canary_leaves_through_any_endpoint(
    client: TestClient, leaky: dict, caplog: pytest.LogCaptureFixture, engine: Engine
):
    caplog.set_level(logging.DEBUG)
    seen_ok = 0
    for method, url, kwargs in requests_to_try():
        response = client.request(method, url, headers=leaky, **kwargs)
        assert response.status_code < 500, (url, response.text)
        seen_ok += response.status_code == 200
        text = response.content.decode("utf-8", "replace")
        headers = " ".join(f"{k}: {v}" for k, v in response.headers.items())
        for name, canary in CANARIES.items():
            assert canary not in text, (method, url, kwargs, name)
            assert canary not in headers, (method, url, name)
    assert seen_ok >= 8  # the happy paths ran, not just refusals
    server_logs = "\n".join(r.getMessage() for r in caplog.records if r.name != "httpx")
    assert "opengate.access" in {r.name for r in caplog.records}
    for canary in CANARIES.values():
        assert canary not in server_logs
    assert_no_canary_in_audit_log(engine)


def assert_no_canary_in_audit_log(engine: Engine) -> None:
    """Every audit event of the walk, every column as text. A filter on a level-1/2 field
    is logged as the caller wrote it (CONTRACT §8 keeps only level 3–4 values out), so
    the walk's `district=<canary>` probes are the caller's own words there, not a leak:
    those entries are left out; everything else must be canary-free."""
    clear = {f["name"] for f in FIELDS if f["level"] <= 2}
    with engine.connect() as conn:
        rows = conn.exec_driver_sql(f"SELECT {SELECT_COLUMNS} FROM audit_events").all()
    assert len(rows) >= len(requests_to_try())
    for row in rows:
        event = event_from_row(tuple(row))
        filters = (event["detail"] or {}).get("filters", {})
        for condition in [c for c in filters if c.split("__")[0] in clear]:
            del filters[condition]
        text = json.dumps(event, ensure_ascii=False)
        for name, canary in CANARIES.items():
            assert canary not in text, (event["seq"], event["action"], name)
