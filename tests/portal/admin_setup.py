"""A bank's app applying for a conditional dataset, and the accounts of every role, for
the administrator console's tests."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from sqlmodel import Session

from auth.apps import create_app
from auth.users import create_user
from catalog.hosted import HostedCatalog
from policies import grants as grant_service
from tests.auth.helpers import PASSWORD
from tests.packages import import_conditional
from tests.portal.web import web_login

FIELDS = [
    {"name": "record_id", "type": "integer", "title": "记录编号", "level": 1},
    {"name": "district", "type": "string", "title": "所属区市", "level": 1},
    {"name": "person_name", "type": "string", "title": "姓名", "level": 3, "pii": "name"},
    {"name": "phone", "type": "string", "title": "联系电话", "level": 3, "pii": "phone"},
    {"name": "id_number", "type": "string", "title": "身份证号", "level": 4, "pii": "id_number"},
    {"name": "monthly_base", "type": "integer", "title": "缴费基数", "level": 2},
]
ROWS = [
    [1, "市南区", "欧阳修远", "13912345678", "370202199001011234", 8200],
    [2, "市北区", "李四", "13800001111", "370203198505052345", 6100],
    [3, "市南区", "王五", "13700002222", "370202197712123456", 9900],
]
DATASET = "social-insurance"
ROLES = ("developer", "data_admin", "auditor", "sysadmin")


@dataclass
class Bank:
    client_id: str
    secret: str
    application_id: int


def bank_application(
    engine: Engine, packages: Path, *, username: str = "qdbank", first: bool = True
) -> Bank:
    """The dataset (imported by the `first` call), a developer of 青岛银行 with an app, and
    its pending application."""
    if first:
        import_conditional(engine, packages, fields=FIELDS, rows=ROWS, name=DATASET)
    with Session(engine) as db:
        dev = create_user(
            db,
            username=username,
            password=PASSWORD,
            role="developer",
            organization="青岛银行股份有限公司",
        )
        app, secret = create_app(db, owner=dev, name="普惠授信系统", redirect_uris=[])
        hosted = HostedCatalog(engine, ttl=0).get(DATASET)
        assert hosted is not None
        row = grant_service.apply(
            db,
            applicant_id=dev.id,  # type: ignore[arg-type]
            client_id=app.client_id,
            hosted=hosted,
            purpose="核实小微企业主社保缴纳情况，用于普惠贷款审批",
            modes=["records", "aggregate"],
            fields=["record_id", "district", "person_name", "phone", "id_number"],
            duration_days=180,
        )
        return Bank(app.client_id, secret, row.id)  # type: ignore[arg-type]


def signed_in(client: TestClient, engine: Engine, role: str, name: str | None = None) -> TestClient:
    """A browser of its own (its own cookies) signed in with a new account of `role`."""
    username = name or f"{role.replace('_', '')}1"
    with Session(engine) as db:
        create_user(db, username=username, password=PASSWORD, role=role)
    browser = TestClient(client.app)
    web_login(browser, username, PASSWORD)
    return browser
