"""A person, an app that asks for their own rows, and the consent page's approval, for the
我的授权 tests (HTTP and browser)."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from authlib.integrations.httpx_client import OAuth2Client
from sqlalchemy.engine import Engine

from auth.secrets import identity_hmac
from gateway.settings import Settings
from tests.auth.helpers import (
    PASSWORD,
    REDIRECT,
    consent_form,
    developer_with_app,
    verify_identity,
)
from tests.conftest import LiveServer
from tests.keys import keys_of
from tests.packages import import_conditional

PERSON_ID = "370202199001011237"
FIELDS = [
    {"name": "record_id", "type": "integer", "title": "记录编号", "level": 1},
    {"name": "person_name", "type": "string", "title": "姓名", "level": 3, "pii": "name"},
    {
        "name": "id_number",
        "type": "string",
        "title": "公民身份号码",
        "level": 4,
        "pii": "id_number",
        "subject_key": True,
    },
    {"name": "monthly_base", "type": "integer", "title": "缴费基数", "level": 3},
]


@pytest.fixture
def setup(engine: Engine, packages: Path, settings: Settings) -> OAuth2Client:
    key = keys_of(settings, engine).identity
    rows = [[1, "张三丰", PERSON_ID, 8000], [2, "李四", "370203198502024321", 9000]]
    import_conditional(
        engine, packages, fields=FIELDS, rows=rows, subject_hmac=partial(identity_hmac, key)
    )
    reg = developer_with_app(engine)
    with engine.begin() as conn:
        conn.execute(
            sa.text("UPDATE users SET organization = '青岛某某银行' WHERE username = 'dev1'")
        )
    developer_with_app(engine, "zhangsan", redirect_uris=[])
    verify_identity(engine, settings.data_dir, "zhangsan", PERSON_ID)
    return OAuth2Client(
        reg.client_id, reg.client_secret, redirect_uri=REDIRECT, code_challenge_method="S256"
    )


def consent_url(live: LiveServer, client: OAuth2Client, days: int) -> str:
    url, _state = client.create_authorization_url(
        f"{live.url}/oauth/authorize",
        code_verifier="v" * 64,
        scope="dataset:social-insurance:self",
        purpose="贷款资格核验",
        duration_days=str(days),
    )
    return url


def approve(live: LiveServer, url: str) -> str:
    with httpx.Client(timeout=30) as http:
        data = consent_form(http, url)
        data.update(username="zhangsan", password=PASSWORD, decision="approve")
        answer = http.post(f"{live.url}/oauth/authorize", data=data)
    assert answer.status_code == 302, answer.text
    return answer.headers["location"]


def consent_rows(engine: Engine) -> list[tuple]:
    with engine.connect() as conn:
        return conn.execute(
            sa.text("SELECT id, expires_at, withdrawn_at FROM consents ORDER BY id")
        ).all()
