"""One enforcement door (issue 14): a data route hands the request to `policies` once and
only renders what comes back; the policies door takes a Principal, not a web request.

The climb count: while one records request for a granted, masked conditional dataset runs,
a profiler on the route's thread records every time control passes from a `policies` or
`catalog` frame into a `gateway` frame — a domain function returning into gateway code, or
calling up into it. The bar: once (the door's answer, then the route renders)."""

from __future__ import annotations

import ast
import sys
from pathlib import Path
from types import FrameType
from typing import Any

import pytest
from sqlalchemy.engine import Engine

from auth.principal import Principal
from gateway import data_api
from gateway.settings import Settings
from kernel.problems import Problem
from tests.conftest import TestClient
from tests.gateway import test_classified_access as classified
from tests.gateway.test_classified_access import URL, direct_grant

ROOT = Path(__file__).resolve().parents[2]
DOMAIN = ("policies", "catalog")
world = classified.world  # the conditional dataset, an app and a data_admin


def _package(frame: FrameType | None) -> str:
    if frame is None:
        return ""
    name = frame.f_globals.get("__name__", "")
    return name.partition(".")[0]


class Climbs:
    """Transitions from a policies/catalog frame into a gateway frame on this thread."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    def __call__(self, frame: FrameType, event: str, _arg: Any) -> None:
        if event == "return" and _package(frame) in DOMAIN and _package(frame.f_back) == "gateway":
            self.seen.append(f"{frame.f_code.co_name} → {frame.f_back.f_code.co_name}")
        elif event == "call" and _package(frame) == "gateway" and _package(frame.f_back) in DOMAIN:
            self.seen.append(f"{frame.f_back.f_code.co_name} ↑ {frame.f_code.co_name}")
        if event == "return" and frame.f_code.co_name == "records" and _package(frame) == "gateway":
            sys.setprofile(None)


def test_a_conditional_records_request_climbs_back_into_gateway_once(
    client: TestClient, world: dict, monkeypatch: pytest.MonkeyPatch
):
    direct_grant(client, world, transforms={"person_name": "mask_name"})
    climbs = Climbs()
    original = data_api.principal_of

    def traced(request: Any) -> Principal | None:
        sys.setprofile(climbs)  # on the route's own thread, from its first line on
        return original(request)

    monkeypatch.setattr(data_api, "principal_of", traced)
    answer = client.get(f"{URL}/records", headers=world["app"], params={"limit": 5})
    sys.setprofile(None)
    assert answer.status_code == 200, answer.text
    fields = {f["name"]: f["transform"] for f in answer.json()["fields"]}
    assert fields["person_name"] == "mask_name" and fields["id_number"] == "pseudonym"
    assert climbs.seen == ["records → records"], climbs.seen


def _app(client_id: str, scopes: tuple[str, ...]) -> Principal:
    return Principal(
        kind="app",
        subject=client_id,
        role=None,
        client_id=client_id,
        user_id=None,
        scopes=frozenset(scopes),
        token_id="test",
        consent_id=None,
        expires_at=2**40,
    )


def test_the_door_takes_a_principal_not_a_request(client: TestClient, world: dict):
    """A channel that is not a route (a page renderer handed a Principal) gets the same
    decision, masking and audit notes as the route."""
    enforcer = client.app.state.enforcer
    with pytest.raises(Problem) as refused:
        enforcer.enforce(None, "social-insurance", "records")
    assert refused.value.code == "grant_required"
    grant = direct_grant(client, world)
    app = _app(world["client_id"], ())
    with pytest.raises(Problem) as scoped:  # a token's scope still limits the caller
        enforcer.enforce(app, "social-insurance", "records")
    assert scoped.value.code == "insufficient_scope"
    app = _app(world["client_id"], ("dataset:social-insurance:records",))
    notes: dict[str, Any] = {}
    page = enforcer.records(app, "social-insurance", [("limit", "3")], format="json", notes=notes)
    via_route = client.get(f"{URL}/records", headers=world["app"], params={"limit": 3}).json()
    assert [list(r) for r in page.rows] == [
        [row[n] for n in page.names] for row in via_route["data"]
    ]
    assert notes["grant_id"] == grant["id"] and notes["row_count"] == 3
    assert {"name": "id_number", "transform": "pseudonym"} in notes["fields"]


def test_a_bad_format_on_a_closed_or_ungranted_dataset_still_says_the_refusal(
    client: TestClient, world: dict
):
    answer = client.get(f"{URL}/records", headers=world["app"], params={"format": "xml"})
    assert answer.status_code == 403 and answer.json()["code"] == "grant_required"
    direct_grant(client, world)
    answer = client.get(f"{URL}/records", headers=world["app"], params={"format": "xml"})
    assert answer.status_code == 400 and answer.json()["parameter"] == "format"


DATA_ROUTES = ("gateway/data_api.py", "gateway/analysis_api.py", "gateway/exports.py")


@pytest.mark.parametrize("path", DATA_ROUTES)
def test_data_routes_import_no_tables_and_no_database_layer(path: str):
    """Enforcement reads and writes its tables in policies; the routes only compose."""
    tree = ast.parse((ROOT / path).read_text(encoding="utf-8"))
    imported = [
        node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
    ] + [a.name for node in ast.walk(tree) if isinstance(node, ast.Import) for a in node.names]
    assert not [m for m in imported if m.endswith(".models")], imported
    assert not [m for m in imported if m.split(".")[0] in ("sqlalchemy", "sqlmodel")], imported


def test_policies_never_imports_gateway():
    for source in (ROOT / "policies").glob("*.py"):
        tree = ast.parse(source.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names = (
                [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else []
            )
            assert not [n for n in names if n.split(".")[0] == "gateway"], source


def test_settings_reach_the_door(settings: Settings, engine: Engine, client: TestClient):
    enforcer = client.app.state.enforcer
    assert enforcer.brake().per_day == settings.verify_default_per_day
    assert enforcer.export_chunk_rows == settings.export_chunk_rows


def test_requests_counted_without_a_limit_count_once_a_limit_is_set(
    client: TestClient, world: dict
):
    """A counter with no limit is gathered in the process, not written per request; a
    limit set later still counts every request the grant served that day."""
    direct_grant(client, world)
    for _ in range(3):
        assert client.get(f"{URL}/records", headers=world["app"]).status_code == 200
    direct_grant(client, world, quotas={"requests_per_day": 5})
    policy = client.get(f"{URL}/policy", headers=world["app"]).json()
    assert policy["quotas"]["requests_per_day"] == {"limit": 5, "used": 3, "remaining": 2}
    statuses = [client.get(f"{URL}/records", headers=world["app"]).status_code for _ in range(3)]
    assert statuses == [200, 200, 429]
