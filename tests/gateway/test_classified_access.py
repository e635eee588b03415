"""The closed loop of conditional data over HTTP: apply → approve with conditions → use →
revoke/expire; masked answers in every format; aggregates, verification, the policy
endpoint and personal authorization."""

from __future__ import annotations

import contextlib
import csv
import io
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from functools import partial
from pathlib import Path
from types import SimpleNamespace

import orjson
import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session

from auth.secrets import identity_hmac
from catalog.importer import import_package
from gateway.database import create_engine
from gateway.settings import Settings
from kernel.problems import Problem
from policies import quotas
from policies.models import Grant
from tests.auth.helpers import PASSWORD, developer_with_app, user
from tests.conftest import TestClient
from tests.keys import keys_of
from tests.packages import import_conditional, write_package

SI_FIELDS = [
    {"name": "record_id", "type": "integer", "level": 1},
    {"name": "person_name", "type": "string", "level": 3, "pii": "name"},
    {"name": "id_number", "type": "string", "level": 4, "pii": "id_number", "subject_key": True},
    {"name": "phone", "type": "string", "level": 3, "pii": "phone"},
    {"name": "district", "type": "string", "level": 1},
    {"name": "monthly_base", "type": "integer", "level": 3},
    {"name": "months_paid", "type": "integer", "level": 2},
]
PERSON_ID = "370202199001011237"
DISTRICTS = ["市南区", "市北区", "崂山区"]


def si_rows() -> list[list]:
    rows = [[1, "张三丰", PERSON_ID, "13812345678", "市南区", 8000, 120]]
    for i in range(2, 61):
        rows.append(
            [
                i,
                f"李{'四五六七'[i % 4]}",
                f"37020319850202{i:04d}",
                f"139{i:08d}",
                DISTRICTS[i % 3],
                4000 + i * 100,
                i,
            ]
        )
    return rows


@pytest.fixture
def world(client: TestClient, engine: Engine, packages: Path, settings: Settings) -> dict:
    key = keys_of(settings, engine).identity
    import_conditional(
        engine,
        packages,
        fields=SI_FIELDS,
        rows=si_rows(),
        keywords=["社保"],
        subject_hmac=partial(identity_hmac, key),
    )
    reg = developer_with_app(engine, "bank")
    user(engine, "admin1", "data_admin")

    def login(name: str) -> dict[str, str]:
        token = client.post("/auth/login", json={"username": name, "password": PASSWORD})
        return {"Authorization": f"Bearer {token.json()['access_token']}"}

    app_token = client.post(
        "/oauth/token",
        auth=(reg.client_id, reg.client_secret),
        data={"grant_type": "client_credentials"},
    ).json()["access_token"]
    return {
        "client_id": reg.client_id,
        "client_secret": reg.client_secret,
        "dev": login("bank"),
        "admin": login("admin1"),
        "app": {"Authorization": f"Bearer {app_token}"},
    }


def direct_grant(client: TestClient, world: dict, **terms) -> dict:
    body = {
        "client_id": world["client_id"],
        "dataset_id": "social-insurance",
        "purpose": "个人贷款授信评估",
        "modes": ["records"],
        **terms,
    }
    response = client.post("/api/v1/admin/grants", json=body, headers=world["admin"])
    assert response.status_code == 201, response.text
    return response.json()


URL = "/api/v1/datasets/social-insurance"


def test_the_application_loop(client: TestClient, world: dict):
    assert client.get(f"{URL}/records", headers=world["app"]).json()["code"] == "grant_required"
    applied = client.post(
        "/api/v1/applications",
        headers=world["dev"],
        json={
            "client_id": world["client_id"],
            "dataset_id": "social-insurance",
            "purpose": "个人贷款授信评估",
            "modes": ["records", "aggregate"],
            "duration_days": 30,
        },
    )
    assert applied.status_code == 201 and applied.json()["status"] == "pending"
    app_id = applied.json()["id"]
    queue = client.get("/api/v1/admin/applications?status=pending", headers=world["admin"])
    assert [a["id"] for a in queue.json()["data"]] == [app_id]
    approved = client.post(
        f"/api/v1/admin/applications/{app_id}/approve",
        headers=world["admin"],
        json={"transforms": {"person_name": "clear"}, "k": 3, "row_filter": {"district": "市南区"}},
    )
    assert approved.status_code == 200, approved.text
    grant = approved.json()
    assert grant["version"] == 1 and grant["k"] == 3
    again = client.post(
        f"/api/v1/admin/applications/{app_id}/approve", headers=world["admin"], json={}
    )
    assert again.status_code == 409
    body = client.get(f"{URL}/records", headers=world["app"], params={"limit": 100}).json()
    assert {r["district"] for r in body["data"]} == {"市南区"}  # the grant's row filter
    transforms = {f["name"]: f["transform"] for f in body["fields"]}
    assert transforms == {
        "record_id": "clear",
        "person_name": "clear",
        "id_number": "pseudonym",
        "phone": "mask_phone",
        "district": "clear",
        "monthly_base": "clear",
        "months_paid": "clear",
    }
    first = body["data"][0]
    assert first["person_name"] == "张三丰" and first["phone"] == "138****5678"
    assert first["id_number"].startswith("p_") and len(first["id_number"]) == 18
    mine = client.get(f"/api/v1/applications/{app_id}", headers=world["dev"]).json()
    assert mine["status"] == "approved" and mine["grant_id"] == grant["id"]


def test_rejection_needs_a_reason(client: TestClient, world: dict):
    applied = client.post(
        "/api/v1/applications",
        headers=world["dev"],
        json={
            "client_id": world["client_id"],
            "dataset_id": "social-insurance",
            "purpose": "试用",
            "modes": ["records"],
        },
    ).json()
    assert (
        client.post(
            f"/api/v1/admin/applications/{applied['id']}/reject",
            headers=world["admin"],
            json={"reason": " "},
        ).status_code
        == 400
    )
    rejected = client.post(
        f"/api/v1/admin/applications/{applied['id']}/reject",
        headers=world["admin"],
        json={"reason": "用途不明确"},
    )
    assert rejected.json()["status"] == "rejected" and rejected.json()["reason"] == "用途不明确"


@pytest.mark.parametrize(
    ("terms", "parameter"),
    [
        ({"k": 1}, "k"),
        ({"epsilon": 0}, "epsilon"),
        ({"epsilon": -1.5}, "epsilon"),
        ({"transforms": {"id_number": "clear"}}, "transforms"),
        ({"transforms": {"phone": "nonsense"}}, "transforms"),
        ({"transforms": {"nope": "clear"}}, "transforms"),
        ({"row_filter": {"monthly_base": "8000"}}, "row_filter"),
        ({"modes": ["download"]}, "modes"),
        ({"fields": ["nope"]}, "fields"),
        ({"quotas": {"bytes_per_day": 1}}, "quotas"),
    ],
)
def test_bad_grants_are_refused_with_a_reason(
    client: TestClient, world: dict, terms: dict, parameter: str
):
    body = {
        "client_id": world["client_id"],
        "dataset_id": "social-insurance",
        "purpose": "授信",
        "modes": ["records"],
        **terms,
    }
    response = client.post("/api/v1/admin/grants", json=body, headers=world["admin"])
    assert response.status_code == 400, response.text
    assert response.json()["parameter"] == parameter
    assert client.get("/api/v1/admin/grants", headers=world["admin"]).json()["data"] == []


def test_masked_in_every_format(client: TestClient, world: dict):
    direct_grant(client, world)
    headers = world["app"]
    as_json = client.get(f"{URL}/records", headers=headers, params={"limit": 1}).json()["data"][0]
    assert as_json["person_name"] == "张**" and as_json["phone"] == "138****5678"
    assert as_json["monthly_base"] == 8000  # level 3, pii none: clear by default
    lines = client.get(
        f"{URL}/records", headers=headers, params={"limit": 1, "format": "jsonl"}
    ).content.splitlines()
    assert orjson.loads(lines[0]) == as_json
    rows = list(
        csv.DictReader(
            io.StringIO(
                client.get(
                    f"{URL}/records", headers=headers, params={"limit": 1, "format": "csv"}
                ).content.decode("utf-8-sig")
            )
        )
    )
    assert rows[0]["person_name"] == "张**" and rows[0]["id_number"] == as_json["id_number"]
    one = client.get(f"{URL}/records/1", headers=headers).json()["data"]
    assert one == as_json
    exported = client.get(f"{URL}/export", headers=headers, params={"format": "jsonl"})
    first = orjson.loads(exported.content.splitlines()[0])
    assert first == as_json and len(exported.content.splitlines()) == 60


def test_filters_on_masked_fields_are_refused(client: TestClient, world: dict):
    direct_grant(client, world)
    for params in (
        {"person_name": "张三丰"},
        {"id_number": PERSON_ID},
        {"phone__startswith": "138"},
        {"order_by": "id_number"},
    ):
        response = client.get(f"{URL}/records", headers=world["app"], params=params)
        assert response.status_code == 400 and response.json()["code"] == "field_not_permitted"
        assert PERSON_ID not in response.text and "张三丰" not in response.text
    ok = client.get(f"{URL}/records", headers=world["app"], params={"district": "崂山区"})
    assert ok.status_code == 200


def test_revocation_and_expiry_act_on_the_next_request(
    client: TestClient, world: dict, engine: Engine
):
    grant = direct_grant(client, world)
    assert client.get(f"{URL}/records", headers=world["app"]).status_code == 200
    revoked = client.post(
        f"/api/v1/admin/grants/{grant['id']}/revoke",
        headers=world["admin"],
        json={"reason": "合同到期"},
    )
    assert revoked.json()["status"] == "revoked"
    assert client.get(f"{URL}/records", headers=world["app"]).json()["code"] == "grant_required"
    grant = direct_grant(client, world)
    with Session(engine) as session:
        row = session.get(Grant, grant["id"])
        row.expires_at = row.created_at - timedelta(seconds=1)
        session.add(row)
        session.commit()
    assert client.get(f"{URL}/records", headers=world["app"]).json()["code"] == "grant_required"


def test_a_changed_grant_is_a_new_version(client: TestClient, world: dict):
    first = direct_grant(client, world)
    second = direct_grant(client, world, transforms={"phone": "redact"})
    assert second["id"] == first["id"] and second["version"] == 2
    row = client.get(f"{URL}/records", headers=world["app"], params={"limit": 1}).json()
    assert {f["name"]: f["transform"] for f in row["fields"]}["phone"] == "redact"


def test_mode_not_granted(client: TestClient, world: dict):
    direct_grant(client, world)
    response = client.get(f"{URL}/aggregate", headers=world["app"])
    assert response.status_code == 403 and response.json()["code"] == "forbidden"


def test_aggregate_with_small_cell_suppression(client: TestClient, world: dict):
    direct_grant(client, world, modes=["aggregate"], k=20)
    body = client.get(
        f"{URL}/aggregate",
        headers=world["app"],
        params={"group_by": "district", "metrics": "count,avg:monthly_base,sum:monthly_base"},
    ).json()
    counts = {g["district"]: g["count"] for g in body["groups"]}
    assert counts == {"市南区": 21, "崂山区": 20}  # 市北区 has 19 rows, below k
    assert body["suppressed_groups"] == 1 and body["k"] == 20
    rows = si_rows()
    lao = [r[5] for r in rows if r[4] == "崂山区"]
    group = next(g for g in body["groups"] if g["district"] == "崂山区")
    assert group["sum_monthly_base"] == sum(lao)
    assert group["avg_monthly_base"] == pytest.approx(sum(lao) / len(lao))


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"group_by": "id_number"}, "field_not_permitted"),
        ({"group_by": "person_name"}, "field_not_permitted"),
        ({"metrics": "min:monthly_base"}, "field_not_permitted"),
        ({"metrics": "sum:district"}, "invalid_parameter"),
        ({"metrics": "median:monthly_base"}, "invalid_parameter"),
        ({"group_by": "nope"}, "invalid_parameter"),
    ],
)
def test_bad_aggregates(client: TestClient, world: dict, params: dict, code: str):
    direct_grant(client, world, modes=["aggregate"])
    response = client.get(f"{URL}/aggregate", headers=world["app"], params=params)
    assert response.status_code == 400 and response.json()["code"] == code


def test_differential_privacy_spends_a_budget(client: TestClient, world: dict):
    direct_grant(client, world, modes=["aggregate"], epsilon=0.25, k=2)
    params = {
        "group_by": "district",
        "metrics": "count,avg:monthly_base",
        "bounds": "monthly_base:0:20000",
        "epsilon": "0.1",
    }
    first = client.get(f"{URL}/aggregate", headers=world["app"], params=params).json()
    assert first["privacy"]["epsilon"] == 0.1
    assert first["privacy"]["epsilon_remaining"] == pytest.approx(0.15)
    second = client.get(f"{URL}/aggregate", headers=world["app"], params=params).json()
    assert second["privacy"]["epsilon_remaining"] == pytest.approx(0.05)
    third = client.get(f"{URL}/aggregate", headers=world["app"], params=params)
    assert third.status_code == 403 and third.json()["code"] == "privacy_budget_exhausted"
    no_bounds = client.get(
        f"{URL}/aggregate",
        headers=world["app"],
        params={"metrics": "sum:monthly_base", "epsilon": "0.01"},
    )
    assert no_bounds.status_code == 400
    policy = client.get(f"{URL}/policy", headers=world["app"]).json()
    assert policy["privacy"]["epsilon_remaining"] == pytest.approx(0.05)


def test_verify_answers_yes_or_no_and_counts(client: TestClient, world: dict):
    direct_grant(
        client,
        world,
        modes=["verify"],
        fields=["id_number", "person_name"],
        quotas={"verifies_per_day": 3},
    )
    yes = client.post(
        f"{URL}/verify",
        headers=world["app"],
        json={"match": {"id_number": PERSON_ID, "person_name": "张三丰"}},
    )
    assert yes.json() == {"match": True}
    no = client.post(
        f"{URL}/verify",
        headers=world["app"],
        json={"match": {"id_number": PERSON_ID, "person_name": "张三"}},
    )
    assert no.json() == {"match": False}
    not_granted = client.post(
        f"{URL}/verify", headers=world["app"], json={"match": {"phone": "13812345678"}}
    )
    assert not_granted.status_code == 400 and "13812345678" not in not_granted.text
    third = client.post(f"{URL}/verify", headers=world["app"], json={"match": {"id_number": "x"}})
    assert third.status_code == 200
    over = client.post(
        f"{URL}/verify", headers=world["app"], json={"match": {"id_number": PERSON_ID}}
    )
    assert over.status_code == 429 and over.json()["code"] == "quota_exceeded"
    policy = client.get(f"{URL}/policy", headers=world["app"]).json()
    assert policy["quotas"]["verifies_per_day"]["remaining"] == 0


def test_policy_explains_every_field(client: TestClient, world: dict):
    direct_grant(
        client,
        world,
        modes=["records", "aggregate"],
        transforms={"monthly_base": "bucket:1000"},
        k=7,
    )
    policy = client.get(f"{URL}/policy", headers=world["app"]).json()
    assert set(policy["modes"]) == {"records", "aggregate"}
    fields = {f["name"]: f for f in policy["modes"]["records"]["fields"]}
    assert fields["monthly_base"]["transform"] == "bucket:1000"
    assert "grant" in fields["monthly_base"]["reason"]
    assert fields["id_number"]["transform"] == "pseudonym" and fields["id_number"]["level"] == 4
    assert policy["modes"]["aggregate"]["k"] == 7 and policy["grant"]["version"] == 1
    assert client.get(f"{URL}/policy").json()["code"] == "grant_required"


def test_closed_data_is_404_for_everyone_but_data_admins(
    client: TestClient, world: dict, engine: Engine, packages: Path
):
    import_package(
        engine,
        write_package(
            packages, name="household", open_type="closed", fields=SI_FIELDS, rows=si_rows()[:3]
        ),
    )
    for suffix in ("/records", "/records/1", "/export?format=csv", "/aggregate", "/policy"):
        for headers in ({}, world["app"], world["dev"]):
            assert (
                client.get(f"/api/v1/datasets/household{suffix}", headers=headers).status_code
                == 404
            )
        assert (
            client.get(f"/api/v1/datasets/household{suffix}", headers=world["admin"]).status_code
            == 403
        )
    assert (
        client.post(
            "/api/v1/datasets/household/verify",
            headers=world["app"],
            json={"match": {"id_number": PERSON_ID}},
        ).status_code
        == 404
    )


def test_rows_quota_trims_then_refuses_before_sending(client: TestClient, world: dict):
    direct_grant(client, world, quotas={"rows_per_day": 25, "requests_per_day": 100})
    first = client.get(f"{URL}/records", headers=world["app"], params={"limit": 10})
    assert len(first.json()["data"]) == 10 and "x-quota-trimmed" not in first.headers
    second = client.get(f"{URL}/records", headers=world["app"], params={"limit": 50})
    assert len(second.json()["data"]) == 15  # the remainder, and the answer says so
    assert second.headers["x-quota-trimmed"] == "true"
    third = client.get(f"{URL}/records", headers=world["app"], params={"limit": 1})
    assert third.status_code == 429 and third.json()["code"] == "quota_exceeded"
    assert third.json()["quota"] == "rows_per_day" and "retry-after" in third.headers
    exported = client.get(f"{URL}/export", headers=world["app"], params={"format": "jsonl"})
    assert exported.status_code == 429
    policy = client.get(f"{URL}/policy", headers=world["app"]).json()
    assert policy["quotas"]["rows_per_day"] == {"limit": 25, "used": 25, "remaining": 0}


def test_export_stops_at_the_rows_quota_and_refunds_short_pages(client: TestClient, world: dict):
    direct_grant(client, world, quotas={"rows_per_day": 100})
    short = client.get(f"{URL}/records", headers=world["app"], params={"district": "市南区"})
    assert len(short.json()["data"]) == 21  # 100 reserved, 79 given back
    exported = client.get(f"{URL}/export", headers=world["app"], params={"format": "jsonl"})
    assert len(exported.content.splitlines()) == 60
    policy = client.get(f"{URL}/policy", headers=world["app"]).json()
    assert policy["quotas"]["rows_per_day"]["used"] == 81
    direct_grant(client, world, quotas={"rows_per_day": 90})  # a new version, same day
    exported = client.get(f"{URL}/export", headers=world["app"], params={"format": "jsonl"})
    assert len(exported.content.splitlines()) == 9


def test_requests_quota(client: TestClient, world: dict):
    direct_grant(client, world, quotas={"requests_per_day": 2})
    statuses = [client.get(f"{URL}/records", headers=world["app"]).status_code for _ in range(3)]
    assert statuses == [200, 200, 429]


def test_quota_counters_hold_under_concurrent_workers(client: TestClient, world: dict, engine):
    """Many connections taking from one grant's counters at once (as worker processes do):
    no `database is locked` on SQLite, no lost update on PostgreSQL, never past the limit."""
    grant = direct_grant(client, world, quotas={"rows_per_day": 500, "requests_per_day": 150})
    quota_plan = SimpleNamespace(grant=SimpleNamespace(id=grant["id"], quotas=grant["quotas"]))
    workers = create_engine(engine.url.render_as_string(hide_password=False))

    def take(_: int) -> tuple[int, int]:
        requests = rows = 0
        with contextlib.suppress(Problem):
            quotas.count_request(workers, quota_plan)
            requests = 1
        with contextlib.suppress(Problem):
            rows = quotas.reserve_rows(workers, quota_plan, 7)
        return requests, rows

    try:
        with ThreadPoolExecutor(max_workers=12) as pool:
            taken = list(pool.map(take, range(200)))
    finally:
        workers.dispose()
    assert sum(requests for requests, _ in taken) == 150
    assert sum(rows for _, rows in taken) == 500
    policy = client.get(f"{URL}/policy", headers=world["app"]).json()
    assert policy["quotas"]["rows_per_day"] == {"limit": 500, "used": 500, "remaining": 0}
