"""The real `ckanapi` client, unmodified, against a served gateway (contract §11):
catalog actions, `datastore_search` through the grant and masking of `/records`, offset
paging, and CKAN's error types."""

from __future__ import annotations

import json
import subprocess
import sys
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.engine import Engine

from auth.secrets import identity_hmac
from catalog.importer import import_package
from gateway.settings import Settings
from tests.auth.helpers import developer_with_app, user
from tests.ckan.helpers import grant as grant_to
from tests.ckan.helpers import tokens
from tests.conftest import LiveServer
from tests.gateway.test_classified_access import SI_FIELDS, si_rows
from tests.keys import keys_of
from tests.packages import import_conditional, station_rows, write_package

CKANAPI = str(Path(sys.executable).with_name("ckanapi"))


def ckanapi(server: LiveServer, action: str, *args: str, key: str | None = None) -> Any:
    """`ckanapi action ACTION k=v… -r URL [-a KEY]`: its parsed output, or its failure."""
    command = [CKANAPI, "action", action, *args, "-r", server.url]
    if key:
        command += ["-a", key]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        raise AssertionError(done.stdout + done.stderr)
    return json.loads(done.stdout)


def ckan_failure(server: LiveServer, action: str, *args: str, key: str | None = None) -> str:
    command = [CKANAPI, "action", action, *args, "-r", server.url]
    if key:
        command += ["-a", key]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode != 0, done.stdout
    return done.stdout + done.stderr


@pytest.fixture
def world(live: LiveServer, engine: Engine, packages: Path, settings: Settings) -> dict:
    key = keys_of(settings, engine).identity
    import_conditional(
        engine,
        packages,
        fields=SI_FIELDS,
        rows=si_rows(),
        keywords=["社保"],
        subject_hmac=partial(identity_hmac, key),
    )
    import_package(engine, write_package(packages, rows=station_rows(250)))
    reg = developer_with_app(engine, "bank")
    user(engine, "admin1", "data_admin")
    http = httpx.Client(base_url=live.url, timeout=60)
    return {"http": http, **tokens(http, "admin1", reg)}


def grant(world: dict, **terms: Any) -> None:
    grant_to(world["http"], world, **terms)


def test_catalog_actions(live: LiveServer, world: dict):
    found = ckanapi(live, "package_search", "q=空气", "rows=5")
    assert found["count"] == 1
    package = found["results"][0]
    assert package["name"] == "air-readings"
    assert package["organization"]["name"] == "市生态环境局"
    assert {g["name"] for g in package["groups"]} == {"生态环境", "public"}
    assert package["resources"][0]["url"].endswith("/api/v1/datasets/air-readings/records")
    by_org = ckanapi(live, "package_search", "fq=organization:市生态环境局 tags:空气")
    assert [p["name"] for p in by_org["results"]] == ["air-readings"]
    assert ckanapi(live, "package_search", "fq=tags:没有这个")["count"] == 0
    shown = ckanapi(live, "package_show", "id=social-insurance")
    fields = {f["id"]: f for f in shown["resources"][0]["fields"]}
    assert fields["id_number"]["level"] == 4 and fields["monthly_base"]["type"] == "int"
    assert sorted(ckanapi(live, "package_list")) == ["air-readings", "social-insurance"]
    assert "社保" in ckanapi(live, "tag_list")
    assert "生态环境" in ckanapi(live, "group_list")
    assert ckanapi(live, "organization_show", "id=市生态环境局")["package_count"] == 2
    assert ckanapi(live, "status_show")["api_version"] == 3
    assert ckanapi(live, "resource_show", "id=air-readings")["datastore_active"] is True


def test_datastore_search_masks_as_records(live: LiveServer, world: dict):
    grant(world, transforms={"person_name": "mask_name", "monthly_base": "clear"})
    token = world["token"]
    records = (
        world["http"]
        .get(
            "/api/v1/datasets/social-insurance/records",
            params={"limit": 60},
            headers={"Authorization": f"Bearer {token}"},
        )
        .json()["data"]
    )
    seen: list[dict] = []
    for offset in range(0, 60, 25):
        page = ckanapi(
            live,
            "datastore_search",
            "resource_id=social-insurance",
            f"offset={offset}",
            "limit=25",
            key=token,
        )
        assert page["total"] == 60
        seen.extend(page["records"])
    assert seen == records  # the same rows, the same masked values, in the same order
    assert all(r["id_number"] != "370202199001011237" for r in seen)
    types = {f["id"]: f["type"] for f in page["fields"]}
    assert types["record_id"] == "int"
    filtered = ckanapi(
        live,
        "datastore_search",
        "resource_id=social-insurance",
        'filters={"district": ["市南区", "崂山区"]}',
        "sort=record_id desc",
        "fields=record_id,district",
        key=token,
    )
    assert filtered["total"] == len([r for r in records if r["district"] in ("市南区", "崂山区")])
    assert [r["record_id"] for r in filtered["records"]] == sorted(
        (r["record_id"] for r in records if r["district"] in ("市南区", "崂山区")), reverse=True
    )
    assert set(filtered["records"][0]) == {"record_id", "district"}


def test_row_filter_total_and_audit(live: LiveServer, world: dict, engine: Engine):
    grant(world, row_filter={"district": "市北区"})
    page = ckanapi(
        live, "datastore_search", "resource_id=social-insurance", "limit=5", key=world["token"]
    )
    assert page["total"] == len([r for r in si_rows() if r[4] == "市北区"])
    assert {r["district"] for r in page["records"]} == {"市北区"}
    import sqlalchemy as sa

    with engine.connect() as conn:
        event = conn.execute(
            sa.text(
                "SELECT action, resource, row_count, detail FROM audit_events "
                "WHERE action = 'data.records' ORDER BY seq DESC LIMIT 1"
            )
        ).one()
    assert event.resource == "datasets/social-insurance"
    assert event.row_count == 5
    detail = event.detail if isinstance(event.detail, dict) else json.loads(event.detail)
    assert detail["channel"] == "ckan"


def test_refusals(live: LiveServer, world: dict):
    no_grant = ckan_failure(
        live, "datastore_search", "resource_id=social-insurance", key=world["token"]
    )
    assert "NotAuthorized" in no_grant
    anonymous = world["http"].post(
        "/api/3/action/datastore_search", json={"resource_id": "social-insurance"}
    )
    assert anonymous.status_code == 403
    assert anonymous.json()["error"]["__type"] == "Authorization Error"
    assert "NotFound" in ckan_failure(live, "package_show", "id=no-such")
    unknown = world["http"].get("/api/3/action/no_such_action")
    assert unknown.status_code == 404 and unknown.json()["success"] is False
    assert unknown.json()["error"]["__type"] == "Not Found Error"
    grant(world)
    http, token = world["http"], world["token"]
    for body in (
        {"resource_id": "social-insurance", "filters": "[1]"},
        {"resource_id": "social-insurance", "filters": {"nope": 1}},
        {"resource_id": "social-insurance", "limit": 32001},
        {"resource_id": "social-insurance", "offset": -1},
        {"resource_id": "social-insurance", "sort": "record_id sideways"},
        {"resource_id": "social-insurance", "q": "市" * 1001},
        {"resource_id": "social-insurance", "fields": ["record_id", "nope"]},
    ):
        bad = http.post(
            "/api/3/action/datastore_search", json=body, headers={"X-CKAN-API-Key": token}
        )
        assert bad.status_code == 409, (body, bad.text)
        assert bad.json()["error"]["__type"] == "Validation Error"
        assert any("\u4e00" <= ch <= "\u9fff" for ch in bad.json()["error"]["message"])
    assert "ValidationError" in ckan_failure(
        live, "datastore_search", "resource_id=social-insurance", "limit=40000", key=token
    )
    # the bare token is accepted on these routes only
    assert http.get("/api/v1/me", headers={"Authorization": token}).status_code in (401, 403)


def test_pages_100k_rows(live: LiveServer, engine: Engine, packages: Path, world: dict):
    import_package(engine, write_package(packages, name="big-readings", rows=station_rows(100_000)))
    seen = 0
    last = 0
    offset = 0
    while True:
        page = ckanapi(
            live,
            "datastore_search",
            "resource_id=big-readings",
            f"offset={offset}",
            "limit=32000",
            "fields=reading_id",
            f"include_total={'true' if offset == 0 else 'false'}",
        )
        if offset == 0:
            assert page["total"] == 100_000
        ids = [r["reading_id"] for r in page["records"]]
        if not ids:
            break
        assert ids[0] == last + 1 and ids == list(range(ids[0], ids[0] + len(ids)))
        last = ids[-1]
        seen += len(ids)
        offset += len(ids)
    assert seen == 100_000
