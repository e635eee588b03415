"""个人授权 end to end: a person approves an app at the consent page; the app's token then
sees that person's rows only, their level 3–4 fields clear; withdrawing the consent stops
it on the next request."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import httpx
import pytest
from authlib.integrations.httpx_client import OAuth2Client
from sqlalchemy.engine import Engine

from auth.secrets import identity_hmac
from gateway.settings import Settings
from tests.auth.helpers import PASSWORD, REDIRECT, developer_with_app, verify_identity
from tests.auth.test_oauth_flows import authorize
from tests.conftest import LiveServer
from tests.keys import keys_of
from tests.packages import import_conditional

PERSON_ID = "370202199001011237"
FIELDS = [
    {"name": "record_id", "type": "integer", "level": 1},
    {"name": "person_name", "type": "string", "level": 3, "pii": "name"},
    {"name": "id_number", "type": "string", "level": 4, "pii": "id_number", "subject_key": True},
    {"name": "monthly_base", "type": "integer", "level": 3},
]


@pytest.fixture
def consented(engine: Engine, packages: Path, settings: Settings, live: LiveServer) -> dict:
    key = keys_of(settings, engine).identity
    rows = [
        [1, "张三丰", PERSON_ID, 8000],
        [2, "李四", "370203198502024321", 9000],
        [3, "张三丰", PERSON_ID, 8100],
        [4, "王五", "370212197703030034", 7000],
    ]
    import_conditional(
        engine, packages, fields=FIELDS, rows=rows, subject_hmac=partial(identity_hmac, key)
    )
    reg = developer_with_app(engine)
    developer_with_app(engine, "zhangsan", redirect_uris=[])
    verify_identity(engine, settings.data_dir, "zhangsan", PERSON_ID)
    client = OAuth2Client(
        reg.client_id, reg.client_secret, redirect_uri=REDIRECT, code_challenge_method="S256"
    )
    location = authorize(live, client, "p" * 64)
    token = client.fetch_token(
        f"{live.url}/oauth/token", authorization_response=location, code_verifier="p" * 64
    )
    return {"auth": {"Authorization": f"Bearer {token['access_token']}"}}


def test_a_person_bound_token_sees_only_their_own_rows_in_clear(live: LiveServer, consented: dict):
    url = f"{live.url}/api/v1/datasets/social-insurance"
    body = httpx.get(f"{url}/records", headers=consented["auth"]).json()
    assert [r["record_id"] for r in body["data"]] == [1, 3]
    assert {r["id_number"] for r in body["data"]} == {PERSON_ID}
    assert body["data"][0]["person_name"] == "张三丰"
    assert all(f["transform"] == "clear" for f in body["fields"])
    assert httpx.get(f"{url}/records/2", headers=consented["auth"]).status_code == 404
    exported = httpx.get(f"{url}/export", params={"format": "jsonl"}, headers=consented["auth"])
    assert len(exported.content.splitlines()) == 2
    assert "李四" not in exported.text
    assert httpx.get(f"{url}/aggregate", headers=consented["auth"]).status_code == 403
    other = httpx.get(f"{live.url}/api/v1/datasets/other/records", headers=consented["auth"])
    assert other.status_code == 404


def test_withdrawal_stops_the_app_at_once(live: LiveServer, consented: dict):
    url = f"{live.url}/api/v1/datasets/social-insurance/records"
    assert httpx.get(url, headers=consented["auth"]).status_code == 200
    login = httpx.post(
        f"{live.url}/auth/login", json={"username": "zhangsan", "password": PASSWORD}
    ).json()
    mine = {"Authorization": f"Bearer {login['access_token']}"}
    consent = httpx.get(f"{live.url}/api/v1/me/consents", headers=mine).json()["data"][0]
    httpx.post(f"{live.url}/api/v1/me/consents/{consent['id']}/withdraw", headers=mine)
    assert httpx.get(url, headers=consented["auth"]).status_code == 401
