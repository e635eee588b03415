"""A catalog with a personal conditional dataset (canary values at level 3/4), an open one
and a closed one, plus accounts of every role that matters here."""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from auth.secrets import identity_hmac
from catalog.importer import import_package
from gateway.settings import Settings
from tests.auth.helpers import PASSWORD, user
from tests.conftest import TestClient
from tests.keys import keys_of
from tests.packages import write_package

CANARY_NAME = "金丝雀甲乙"
CANARY_ID = "370211198811110019"
CANARY_PHONE = "13977665544"
PERSON_FIELDS = [
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
    {"name": "phone", "type": "string", "title": "手机号码", "level": 3, "pii": "phone"},
    {"name": "district", "type": "string", "title": "所属区市", "level": 1},
    {"name": "monthly_base", "type": "integer", "title": "缴费基数", "level": 3},
]


@dataclass
class World:
    client: TestClient
    engine: Engine
    tokens: dict[str, dict[str, str]]

    def as_(self, name: str) -> dict[str, str]:
        return self.tokens[name]


def login(client: TestClient, username: str) -> dict[str, str]:
    answer = client.post("/auth/login", json={"username": username, "password": PASSWORD})
    assert answer.status_code == 200, answer.text
    return {"Authorization": f"Bearer {answer.json()['access_token']}"}


def load_catalog(engine: Engine, packages: Path, settings: Settings) -> None:
    rows = [
        [
            i,
            CANARY_NAME,
            CANARY_ID if i == 1 else f"3702111988111100{i:02d}",
            CANARY_PHONE,
            ["市南区", "崂山区"][i % 2],
            5000 + i,
        ]
        for i in range(1, 21)
    ]
    key = keys_of(settings, engine).identity
    import_package(
        engine,
        write_package(
            packages,
            name="social-insurance",
            title="社会保险参保缴费信息",
            open_type="conditional",
            fields=PERSON_FIELDS,
            rows=rows,
            publisher="市人力资源社会保障局",
            theme="社保就业",
            keywords=("社保", "参保"),
        ),
        subject_hmac=partial(identity_hmac, key),
    )
    import_package(engine, write_package(packages))  # air-readings, unconditional
    import_package(
        engine,
        write_package(
            packages,
            name="sealed-registry",
            title="不予开放登记簿",
            open_type="closed",
            fields=PERSON_FIELDS,
            rows=rows[:3],
            publisher="市公安局",
            theme="公共安全",
        ),
        subject_hmac=partial(identity_hmac, key),
    )


@pytest.fixture
def world(client: TestClient, engine: Engine, packages: Path, settings: Settings) -> World:
    load_catalog(engine, packages, settings)
    for name, role in (("dev-a", "developer"), ("dev-b", "developer"), ("admin", "data_admin")):
        user(engine, name, role)
    tokens = {name: login(client, name) for name in ("dev-a", "dev-b", "admin")}
    return World(client, engine, tokens)
