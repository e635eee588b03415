"""The dataset page's preview calls the enforcement door directly (portal/preview.py):
its audit event is the records route's (action `data.records`, marked `channel: preview`)
and holds no level-3/4 value; a revoked grant stops it on the very next page; it counts in
the same rate-limit windows as `/records`; and without its stored event it shows no rows."""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

import sqlalchemy as sa

from gateway.app import create_app
from gateway.settings import Settings
from tests.auth.helpers import developer_with_app
from tests.conftest import TestClient
from tests.participation.conftest import CANARY_ID, CANARY_NAME, CANARY_PHONE, World

CANARIES = (CANARY_NAME, CANARY_ID, CANARY_PHONE)
PAGE = "/datasets/social-insurance"


def granted_app(world: World) -> tuple[dict[str, str], int]:
    """An app granted records of the canary dataset on default terms: its bearer headers
    and the grant's id."""
    reg = developer_with_app(world.engine, "preview-dev")
    granted = world.client.post(
        "/api/v1/admin/grants",
        headers=world.as_("admin"),
        json={
            "client_id": reg.client_id,
            "dataset_id": "social-insurance",
            "purpose": "页面预览审计测试",
            "modes": ["records"],
        },
    )
    assert granted.status_code == 201, granted.text
    token = world.client.post(
        "/oauth/token",
        auth=(reg.client_id, reg.client_secret),
        data={"grant_type": "client_credentials"},
    ).json()["access_token"]
    return {"Authorization": f"Bearer {token}"}, granted.json()["id"]


def event_of(world: World, request_id: str) -> dict[str, Any]:
    with world.engine.connect() as conn:
        rows = (
            conn.execute(
                sa.text("SELECT * FROM audit_events WHERE request_id = :r"), {"r": request_id}
            )
            .mappings()
            .all()
        )
    assert len(rows) == 1, rows
    return dict(rows[0])


def preview_cells(page: str) -> list[str]:
    table = re.search(r'<table id="preview-table">.*?</table>', page, re.S).group(0)
    return [re.sub(r"<[^>]+>", "", c) for c in re.findall(r"<td>(.*?)</td>", table)]


def test_the_preview_event_is_the_records_event_without_sensitive_values(world: World):
    headers, grant_id = granted_app(world)
    page = world.client.get(PAGE, headers={**headers, "X-Request-Id": "preview-ev-1"})
    assert page.status_code == 200 and len(preview_cells(page.text)) == 5 * 6
    api = world.client.get(
        "/api/v1/datasets/social-insurance/records?limit=5",
        headers={**headers, "X-Request-Id": "records-ev-1"},
    )
    assert api.status_code == 200
    shown, served = event_of(world, "preview-ev-1"), event_of(world, "records-ev-1")
    assert shown["action"] == served["action"] == "data.records"
    assert shown["outcome"] == "allowed" and shown["status"] == 200
    same = ("actor", "client_id", "resource", "row_count", "purpose", "grant_id", "grant_version")
    assert {k: shown[k] for k in same} == {k: served[k] for k in same}
    assert shown["grant_id"] == grant_id and shown["row_count"] == 5

    def loaded(value: Any) -> Any:
        return json.loads(value) if isinstance(value, str) else value

    assert loaded(shown["fields"]) == loaded(served["fields"])
    transforms = {f["name"]: f["transform"] for f in loaded(shown["fields"])}
    assert transforms["person_name"] != "clear" and transforms["id_number"] == "pseudonym"
    detail = loaded(shown["detail"])
    assert detail["channel"] == "preview" and detail["mode"] == "records"
    assert {k: v for k, v in detail.items() if k != "channel"} == loaded(served["detail"])
    row = json.dumps({k: str(v) for k, v in shown.items()}, ensure_ascii=False)
    for canary in CANARIES:
        assert canary not in row, canary


def test_a_revoked_grant_stops_the_preview_on_the_next_page(world: World):
    headers, grant_id = granted_app(world)
    assert "preview-table" in world.client.get(PAGE, headers=headers).text
    revoked = world.client.post(
        f"/api/v1/admin/grants/{grant_id}/revoke",
        headers=world.as_("admin"),
        json={"reason": "测试撤销后预览立即失效"},
    )
    assert revoked.status_code == 200, revoked.text
    page = world.client.get(PAGE, headers={**headers, "X-Request-Id": "preview-revoked"})
    assert page.status_code == 200
    assert 'id="preview-refused"' in page.text and "preview-table" not in page.text
    for canary in CANARIES:
        assert canary not in page.text
    refused = event_of(world, "preview-revoked")
    assert refused["action"] == "data.records" and refused["outcome"] == "denied"
    assert refused["status"] == 403 and refused["row_count"] is None


def test_the_preview_counts_in_the_records_rate_limit(world: World, settings: Settings):
    tight = settings.model_copy(update={"rate_data": "2/minute"})
    with TestClient(create_app(tight, engine=world.engine)) as client:
        page = client.get("/datasets/air-readings")
        assert "preview-table" in page.text
        records = "/api/v1/datasets/air-readings/records?limit=1"
        assert client.get(records).status_code == 200
        # the page spent one of the two: the API is refused now, and so is the page
        refused = client.get(records)
        assert refused.status_code == 429 and refused.json()["limit"] == "data"
        page = client.get("/datasets/air-readings", headers={"X-Request-Id": "preview-429"})
        assert page.status_code == 200
        assert 'id="preview-refused"' in page.text and "preview-table" not in page.text
        assert "限流" in page.text
    event = event_of(world, "preview-429")
    assert event["action"] == "data.records" and event["status"] == 429
    assert event["outcome"] == "denied" and event["row_count"] is None


class DownSink:
    """An audit store that cannot store (its submissions fail), as when it is down."""

    in_flight = 0

    def submit_async(self, event: dict[str, Any], claim: object = None) -> asyncio.Future[int]:
        waiter: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        waiter.set_exception(OSError("the audit store is down"))
        return waiter


def test_no_rows_are_shown_without_their_stored_event(world: World):
    headers, _ = granted_app(world)
    state = world.client.app.state  # type: ignore[attr-defined]
    state.audit_sink = DownSink()
    page = world.client.get(PAGE, headers=headers)
    assert page.status_code == 200
    assert 'id="preview-refused"' in page.text and "preview-table" not in page.text
    assert "审计日志暂时无法写入" in page.text
