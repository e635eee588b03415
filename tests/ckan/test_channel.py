"""The CKAN channel over HTTP (the ASGI app): interface services as packages, GET / form
bodies and the second prefix, no oracle through `q`, the audit event of a refused call and
the `data` rate-limit window."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from catalog.importer import import_package
from gateway.app import create_app
from gateway.demo_upstreams import service_packages
from gateway.ratelimit import limiter_unavailable
from gateway.settings import Settings
from services.registry import import_service
from tests.auth.helpers import developer_with_app, user
from tests.ckan.helpers import grant as grant_to
from tests.ckan.helpers import tokens
from tests.conftest import TestClient
from tests.gateway.test_classified_access import SI_FIELDS, si_rows
from tests.packages import import_conditional, write_package

SEARCH = "/api/3/action/datastore_search"


@pytest.fixture
def overrides() -> dict[str, str]:
    """Settings a test changes (by parametrizing this fixture)."""
    return {}


@pytest.fixture
def world(
    engine: Engine, settings: Settings, tmp_path: Path, overrides: dict[str, str]
) -> Iterator[dict[str, Any]]:
    import_conditional(engine, tmp_path / "p", fields=SI_FIELDS, rows=si_rows())
    import_package(engine, write_package(tmp_path / "p"))
    for name, doc in service_packages("http://127.0.0.1:9").items():
        folder = tmp_path / name
        folder.mkdir()
        (folder / "service.json").write_text(json.dumps(doc, ensure_ascii=False))
        import_service(engine, folder)
    reg = developer_with_app(engine, "bank")
    user(engine, "admin1", "data_admin")
    limited = settings.model_copy(update=overrides)
    with TestClient(create_app(limited, engine=engine)) as client:
        yield {"client": client, **tokens(client, "admin1", reg)}


def grant(world: dict[str, Any], **terms: Any) -> None:
    grant_to(world["client"], world, **terms)


def test_a_service_is_a_package_without_a_datastore(world: dict[str, Any]):
    client = world["client"]
    names = client.get("/api/3/action/package_list").json()["result"]
    service = next(n for n in names if n not in ("social-insurance", "air-readings"))
    shown = client.get("/api/action/package_show", params={"id": service}).json()["result"]
    resource = shown["resources"][0]
    assert resource["resource_type"] == "api"
    assert resource["url"].endswith(f"/api/v1/services/{service}/call")
    apis = client.post("/api/3/action/package_search", data={"fq": "res_format:API"}).json()
    assert service in [p["name"] for p in apis["result"]["results"]]
    refused = client.post(SEARCH, json={"resource_id": service})
    assert refused.status_code == 409
    assert f"/api/v1/services/{service}/call" in refused.json()["error"]["message"]


def test_get_form_and_total_only(world: dict[str, Any]):
    client = world["client"]
    page = client.get(
        "/api/action/datastore_search",
        params={"resource_id": "air-readings", "limit": "0", "filters": '{"district": "市南区"}'},
    ).json()["result"]
    assert page["records"] == [] and page["total"] > 0
    form = client.post(
        SEARCH, data={"resource_id": "air-readings", "offset": "240", "include_total": "false"}
    ).json()["result"]
    assert len(form["records"]) == 10 and "total" not in form
    assert form["records"][0]["reading_id"] == 241
    by_field = client.get(
        SEARCH, params={"resource_id": "air-readings", "q": '{"district": "李沧"}', "limit": 5}
    ).json()["result"]
    assert by_field["total"] > 0 and {r["district"] for r in by_field["records"]} == {"李沧区"}


def test_no_level_3_or_4_value_without_the_grant(world: dict[str, Any]):
    client = world["client"]
    secrets = {row[2] for row in si_rows()} | {row[1] for row in si_rows()}
    anonymous = client.post(SEARCH, json={"resource_id": "social-insurance"})
    assert anonymous.status_code == 403
    grant(world)
    key = {"Authorization": world["token"]}  # ckanapi's form: no scheme
    page = client.post(SEARCH, json={"resource_id": "social-insurance"}, headers=key)
    assert page.status_code == 200, page.text
    shown = json.dumps(page.json(), ensure_ascii=False)
    shown += client.get("/api/3/action/package_show", params={"id": "social-insurance"}).text
    assert not any(secret in shown for secret in secrets)
    # `q` searches only what the caller receives in clear: a hidden name is no oracle
    person = si_rows()[0][1]
    searched = client.post(
        SEARCH, json={"resource_id": "social-insurance", "q": person}, headers=key
    ).json()["result"]
    assert searched["records"] == [] and searched["total"] == 0
    district = client.post(
        SEARCH, json={"resource_id": "social-insurance", "q": "市南"}, headers=key
    ).json()["result"]
    assert district["total"] == len([r for r in si_rows() if r[4] == "市南区"])
    hidden = client.post(
        SEARCH,
        json={"resource_id": "social-insurance", "filters": {"id_number": si_rows()[0][2]}},
        headers=key,
    )
    assert hidden.status_code == 403
    assert hidden.json()["error"]["__type"] == "Authorization Error"


@pytest.mark.parametrize("overrides", [{"rate_data": "3/minute"}])
def test_refusals_are_audited_and_limited_as_data(world: dict[str, Any], engine: Engine):
    client = world["client"]
    key = {"X-CKAN-API-Key": world["token"]}
    assert (
        client.post(SEARCH, json={"resource_id": "social-insurance"}, headers=key).status_code
        == 403
    )
    with engine.connect() as conn:
        action, resource, outcome = conn.execute(
            sa.text("SELECT action, resource, outcome FROM audit_events ORDER BY seq DESC LIMIT 1")
        ).one()
    assert (action, resource, outcome) == ("data.records", "datasets/social-insurance", "denied")
    grant(world)
    statuses = [
        client.post(SEARCH, json={"resource_id": "social-insurance"}, headers=key).status_code
        for _ in range(3)
    ]
    # the data window (3 a minute) counted the refused call too, as /records would
    assert statuses == [200, 200, 429]
    # catalog actions are not in the data window
    assert client.get("/api/3/action/status_show", headers=key).status_code == 200


@pytest.mark.parametrize("overrides", [{"redis_url": "redis://127.0.0.1:1/0"}])
def test_the_data_window_fails_closed_on_conditional_data(world: dict[str, Any]):
    client = world["client"]
    grant(world)
    key = {"Authorization": world["token"]}
    down = client.post(SEARCH, json={"resource_id": "social-insurance"}, headers=key)
    assert down.status_code == 503
    assert down.json()["detail"] == limiter_unavailable().detail
    assert client.post(SEARCH, json={"resource_id": "air-readings"}).status_code == 200
