"""Authorized operation over HTTP (contract §13): registers with their Chinese refusals,
the agreement's hold on grants, metering kept by the database beside the audit log,
statements in integer fen, reconciliation — on SQLite and on the real PostgreSQL."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from catalog.identifiers import uscc_check_char
from catalog.importer import import_package
from operation import statements
from operation.models import UsageLine
from policies.models import Grant
from tests.auth.helpers import PASSWORD, developer_with_app, user
from tests.conftest import TestClient
from tests.packages import write_package

TODAY = date.today()


def uscc(body16: str = "91370200MA3C1234") -> str:
    from catalog.identifiers import org_code_check_char

    first17 = body16 + org_code_check_char(body16[8:16])
    return first17 + uscc_check_char(first17)


def chinese(answer, status: int, parameter: str | None = None) -> dict:
    assert answer.status_code == status, answer.text
    problem = answer.json()
    assert any("\u4e00" <= ch <= "\u9fff" for ch in problem["detail"]), problem
    if parameter:
        assert problem.get("parameter") == parameter, problem
    return problem


@pytest.fixture
def world(client: TestClient, engine: Engine, packages: Path) -> dict:
    import_package(
        engine,
        write_package(
            packages, name="credit-records", title="企业信用记录", open_type="conditional"
        ),
    )
    import_package(
        engine,
        write_package(
            packages / "b", name="other-records", title="其他记录", open_type="conditional"
        ),
    )
    operator_app = developer_with_app(engine, "op-dev")
    bank = developer_with_app(engine, "bank-dev")
    user(engine, "admin1", "data_admin")
    user(engine, "auditor1", "auditor")

    def login(name: str) -> dict[str, str]:
        answer = client.post("/auth/login", json={"username": name, "password": PASSWORD})
        return {"Authorization": f"Bearer {answer.json()['access_token']}"}

    def app_token(reg) -> dict[str, str]:
        answer = client.post(
            "/oauth/token",
            auth=(reg.client_id, reg.client_secret),
            data={"grant_type": "client_credentials"},
        )
        return {"Authorization": f"Bearer {answer.json()['access_token']}"}

    return {
        "admin": login("admin1"),
        "auditor": login("auditor1"),
        "developer": login("bank-dev"),
        "operator_app": operator_app.client_id,
        "operator_token": app_token(operator_app),
        "bank": bank.client_id,
        "bank_token": app_token(bank),
    }


def setup_operation(client: TestClient, world: dict) -> dict:
    admin = world["admin"]
    zone = client.post(
        "/api/v1/admin/zones", json={"id": "finance", "name": "金融专区"}, headers=admin
    )
    assert zone.status_code == 201, zone.text
    operator = client.post(
        "/api/v1/admin/operators",
        json={"name": "青岛金融数据运营有限公司", "credit_code": uscc()},
        headers=admin,
    )
    assert operator.status_code == 201, operator.text
    operator_id = operator.json()["id"]
    bound = client.post(
        f"/api/v1/admin/operators/{operator_id}/apps",
        json={"client_id": world["operator_app"]},
        headers=admin,
    )
    assert bound.status_code == 200, bound.text
    agreement = client.post(
        "/api/v1/admin/agreements",
        json={
            "operator_id": operator_id,
            "title": "金融数据授权运营协议",
            "datasets": ["credit-records"],
            "modes": ["records"],
            "starts_on": (TODAY - timedelta(days=30)).isoformat(),
            "ends_on": (TODAY + timedelta(days=800)).isoformat(),
        },
        headers=admin,
    )
    assert agreement.status_code == 201, agreement.text
    agreement_id = agreement.json()["id"]
    active = client.post(
        f"/api/v1/admin/agreements/{agreement_id}/activate", json={}, headers=admin
    )
    assert active.json()["status"] == "active", active.text
    product = client.post(
        "/api/v1/admin/products",
        json={
            "code": "QD-FIN-0001",
            "operator_id": operator_id,
            "title": "信贷风险评估",
            "zone_id": "finance",
            "datasets": ["credit-records"],
            "modes": ["records"],
            "unit": "1000_rows",
            "price_fen": 1250,
            "cap_fen": 2000,
        },
        headers=admin,
    )
    assert product.status_code == 201, product.text
    scenarios = {}
    for name, category in (
        ("小微企业信贷风控", "industry"),
        ("惠民补贴发放核验", "public_welfare"),
    ):
        made = client.post(
            "/api/v1/scenarios",
            json={
                "name": name,
                "category": category,
                "organization": "青岛某银行",
                "zone_id": "finance",
            },
            headers=world["developer"],
        )
        assert made.status_code == 201, made.text
        approved = client.post(
            f"/api/v1/admin/scenarios/{made.json()['id']}/approve", headers=admin
        )
        assert approved.status_code == 200, approved.text
        scenarios[category] = made.json()["id"]
    return {
        "operator_id": operator_id,
        "agreement_id": agreement_id,
        "product_id": product.json()["id"],
        "scenarios": scenarios,
    }


def direct_grant(client: TestClient, world: dict, client_id: str, dataset: str = "credit-records"):
    return client.post(
        "/api/v1/admin/grants",
        json={
            "client_id": client_id,
            "dataset_id": dataset,
            "purpose": "信贷风险评估",
            "modes": ["records"],
        },
        headers=world["admin"],
    )


def bound_grant(client: TestClient, world: dict, made: dict, category: str):
    """A direct grant to the bank's app, bound to the product under a `category` scenario."""
    grant_id = direct_grant(client, world, world["bank"]).json()["id"]
    return client.post(
        f"/api/v1/admin/grants/{grant_id}/operation",
        json={"scenario_id": made["scenarios"][category], "product_id": made["product_id"]},
        headers=world["admin"],
    )


def ledger(engine: Engine) -> list[tuple[str, int, bool, int, int]]:
    with Session(engine) as session:
        return [
            (u.client_id, u.product_id, u.free, u.calls, u.rows)
            for u in session.exec(select(UsageLine).order_by(UsageLine.client_id))
        ]


def test_bad_registrations_are_refused_in_chinese_and_change_nothing(
    client: TestClient, world: dict
):
    admin = world["admin"]
    bad_code = uscc()[:-1] + ("0" if uscc()[-1] != "0" else "1")
    chinese(
        client.post(
            "/api/v1/admin/operators",
            json={"name": "某公司", "credit_code": bad_code},
            headers=admin,
        ),
        400,
        "credit_code",
    )
    assert client.get("/api/v1/products").json()["data"] == []
    made = setup_operation(client, world)
    backwards = client.post(
        "/api/v1/admin/agreements",
        json={"operator_id": made["operator_id"], "title": "倒签协议",
              "datasets": ["credit-records"], "modes": ["records"],
              "starts_on": "2026-12-01", "ends_on": "2026-11-01"},
        headers=admin,
    )  # fmt: skip
    chinese(backwards, 400, "ends_on")
    assert len(client.get("/api/v1/admin/agreements", headers=admin).json()) == 1
    product = {
        "code": "QD-FIN-0002", "operator_id": made["operator_id"], "title": "超价产品",
        "datasets": ["credit-records"], "modes": ["records"], "unit": "call",
        "price_fen": 2001, "cap_fen": 2000,
    }  # fmt: skip
    chinese(client.post("/api/v1/admin/products", json=product, headers=admin), 400, "price_fen")
    outside = {**product, "price_fen": 100, "datasets": ["other-records"]}
    chinese(client.post("/api/v1/admin/products", json=outside, headers=admin), 400, "datasets")
    assert [p["code"] for p in client.get("/api/v1/products").json()["data"]] == ["QD-FIN-0001"]
    chinese(
        client.post(
            f"/api/v1/admin/products/{made['product_id']}/price",
            json={"price_fen": 5000},
            headers=admin,
        ),
        400,
        "price_fen",
    )
    assert client.get("/api/v1/products").json()["data"][0]["price_yuan"] == "12.50"
    # The operator's own app outside its agreement: another dataset.
    refused = chinese(direct_grant(client, world, world["operator_app"], "other-records"), 403)
    assert refused["code"] == "grant_outside_agreement"
    assert client.get("/api/v1/admin/grants", headers=admin).json()["data"] == []
    # A zero-priced product may serve only public governance or welfare.
    free = client.post(
        "/api/v1/admin/products",
        json={**product, "code": "QD-FIN-0003", "price_fen": 0, "title": "惠民核验"},
        headers=admin,
    )
    assert free.status_code == 201, free.text
    granted = direct_grant(client, world, world["bank"])
    assert granted.status_code == 201, granted.text
    grant_id = granted.json()["id"]
    binding = {"scenario_id": made["scenarios"]["industry"], "product_id": free.json()["id"]}
    chinese(
        client.post(f"/api/v1/admin/grants/{grant_id}/operation", json=binding, headers=admin),
        400,
        "product_id",
    )
    shown = client.get("/api/v1/admin/grants", headers=admin).json()["data"][0]
    assert shown["id"] == grant_id
    # The current month cannot be issued.
    chinese(
        client.post(f"/api/v1/admin/statements/{statements.current_month()}/issue", headers=admin),
        400,
        "month",
    )
    chinese(client.get("/api/v1/admin/statements?month=2026-13", headers=admin), 400, "month")


def test_metered_calls_match_the_audit_log_and_the_agreement_holds_grants(
    client: TestClient, world: dict, engine: Engine
):
    admin = world["admin"]
    made = setup_operation(client, world)
    bound = bound_grant(client, world, made, "industry")
    assert bound.status_code == 200, bound.text
    assert bound.json()["agreement_id"] == made["agreement_id"]
    rows = 0
    for limit in (2, 3, 5):
        answer = client.get(
            f"/api/v1/datasets/credit-records/records?limit={limit}", headers=world["bank_token"]
        )
        assert answer.status_code == 200, answer.text
        rows += len(answer.json()["data"])
    month = statements.current_month()
    assert ledger(engine) == [(world["bank"], made["product_id"], False, 3, rows)]
    usage = client.get("/api/v1/usage", headers=world["bank_token"]).json()
    (line,) = usage["lines"]
    assert (line["calls"], line["rows"], line["unit_price_fen"]) == (3, rows, 1250)
    assert line["amount_fen"] == (rows * 1250 + 500) // 1000
    statement = client.get(f"/api/v1/admin/statements?month={month}", headers=admin).json()
    assert statement["issued"] is False and statement["total_fen"] == line["amount_fen"]
    csv_body = client.get(f"/api/v1/admin/statements?month={month}&format=csv", headers=admin)
    assert csv_body.content.startswith("\ufeff".encode()) and "信贷风险评估" in csv_body.text
    recon = client.get(f"/api/v1/audit/reconciliation?month={month}", headers=world["auditor"])
    assert recon.status_code == 200 and recon.json()["differences"] == []
    assert (
        client.get(f"/api/v1/audit/reconciliation?month={month}", headers=admin).status_code == 403
    )
    # Suspending the agreement stops the grant under it on the next request.
    suspended = client.post(
        f"/api/v1/admin/agreements/{made['agreement_id']}/suspend",
        json={"reason": "核查数据用途"},
        headers=admin,
    )
    assert suspended.json()["status"] == "suspended", suspended.text
    stopped = client.get(
        "/api/v1/datasets/credit-records/records?limit=1", headers=world["bank_token"]
    )
    assert stopped.status_code == 403, stopped.text
    assert ledger(engine) == [
        (world["bank"], made["product_id"], False, 3, rows)
    ]  # refusals are free
    client.post(f"/api/v1/admin/agreements/{made['agreement_id']}/activate", json={}, headers=admin)
    again = client.get(
        "/api/v1/datasets/credit-records/records?limit=1", headers=world["bank_token"]
    )
    assert again.status_code == 200, again.text
    assert statements.reconcile(engine, month) == []


def test_public_lists_and_disclosure_csv(client: TestClient, world: dict):
    setup_operation(client, world)
    zones = client.get("/api/v1/zones").json()["data"]
    assert zones == [
        {"id": "finance", "name": "金融专区", "description": "", "datasets": 0, "products": 1}
    ]
    scenarios = client.get("/api/v1/scenarios").json()["data"]
    assert {s["category_label"] for s in scenarios} == {"产业发展", "公益事业"}
    disclosure = client.get("/api/v1/products?format=csv")
    assert disclosure.headers["content-type"].startswith("text/csv")
    text = disclosure.content.decode("utf-8-sig")
    assert text.splitlines()[0].startswith("登记编码,产品名称,运营机构")
    assert (
        "QD-FIN-0001,信贷风险评估,青岛金融数据运营有限公司,finance,credit-records,每千行,12.50,20.00"
        in text
    )


def opengate(settings, *args: str):
    import os
    import subprocess
    import sys

    env = {
        **os.environ,
        "OPENGATE_DATABASE_URL": settings.database_url,
        "OPENGATE_DATA_DIR": str(settings.data_dir),
    }
    return subprocess.run(
        [sys.executable, "-m", "gateway.cli", *args],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_reconcile_on_the_command_line_finds_an_edited_ledger(
    client: TestClient, world: dict, engine: Engine, settings
):
    import json

    import sqlalchemy as sa

    made = setup_operation(client, world)
    bound_grant(client, world, made, "public_welfare")
    for _ in range(2):
        client.get("/api/v1/datasets/credit-records/records?limit=4", headers=world["bank_token"])
    month = statements.current_month()
    (line,) = statements.compute(engine, month)
    assert line["free"] is True and line["calls"] == 2 and line["amount_fen"] == 0
    agreed = opengate(settings, "operation", "reconcile", "--month", month, "--json")
    assert agreed.returncode == 0, agreed.stderr
    assert json.loads(agreed.stdout)["differences"] == []
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE usage_ledger SET calls = calls + 1"))
    edited = opengate(settings, "operation", "reconcile", "--month", month, "--json")
    assert edited.returncode == 1, edited.stderr
    (difference,) = json.loads(edited.stdout)["differences"]
    assert difference["ledger"]["calls"] == 3 and difference["audit"]["calls"] == 2
    refused = opengate(settings, "operation", "issue", "--month", month)
    assert refused.returncode == 2 and "尚未结束" in refused.stderr


def test_an_application_names_its_scenario_and_approval_approves_it_with_the_grant(
    client: TestClient, world: dict, engine: Engine
):
    admin, developer = world["admin"], world["developer"]
    made = setup_operation(client, world)
    pending = client.post(
        "/api/v1/scenarios",
        json={"name": "普惠金融授信核验", "category": "industry", "organization": "青岛某银行"},
        headers=developer,
    ).json()
    assert pending["approved_at"] is None
    application = {
        "client_id": world["bank"],
        "dataset_id": "credit-records",
        "purpose": "小微企业授信前核验企业信用",
        "modes": ["records"],
    }
    # Each bad binding: a Chinese refusal naming the member, no application stored.
    refusals = (
        ({"scenario_id": 999_999}, "scenario_id"),
        ({"scenario_id": pending["id"], "product_id": 999_999}, "product_id"),
        ({"product_id": made["product_id"]}, "scenario_id"),  # a product needs its scenario
    )
    for binding, parameter in refusals:
        answer = client.post("/api/v1/applications", json=application | binding, headers=developer)
        chinese(answer, 400, parameter)
    assert client.get("/api/v1/applications", headers=developer).json()["data"] == []

    submitted = client.post(
        "/api/v1/applications",
        json=application | {"scenario_id": pending["id"], "product_id": made["product_id"]},
        headers=developer,
    )
    assert submitted.status_code == 201, submitted.text
    body = submitted.json()
    assert (body["scenario_id"], body["product_id"]) == (pending["id"], made["product_id"])
    listed = [s["id"] for s in client.get("/api/v1/scenarios").json()["data"]]
    assert pending["id"] not in listed  # not public until approved

    approved = client.post(
        f"/api/v1/admin/applications/{body['id']}/approve", json={}, headers=admin
    )
    assert approved.status_code == 200, approved.text
    grant = approved.json()
    assert (grant["scenario_id"], grant["product_id"]) == (pending["id"], made["product_id"])
    assert grant["agreement_id"] == made["agreement_id"]
    public = {s["id"]: s for s in client.get("/api/v1/scenarios").json()["data"]}
    assert public[pending["id"]]["approved_at"] is not None

    answer = client.get(
        "/api/v1/datasets/credit-records/records?limit=4", headers=world["bank_token"]
    )
    assert answer.status_code == 200, answer.text
    assert ledger(engine) == [
        (world["bank"], made["product_id"], False, 1, len(answer.json()["data"]))
    ]
    assert statements.reconcile(engine, statements.current_month()) == []


def test_an_approval_that_breaks_the_operation_rules_approves_nothing(
    client: TestClient, world: dict, engine: Engine
):
    """A zero-priced product cannot serve an industry scenario: the approval is refused and
    neither the scenario nor the application nor any grant changes."""
    admin, developer = world["admin"], world["developer"]
    made = setup_operation(client, world)
    free_product = client.post(
        "/api/v1/admin/products",
        json={
            "code": "QD-FIN-0002",
            "operator_id": made["operator_id"],
            "title": "惠民补贴核验",
            "datasets": ["credit-records"],
            "modes": ["records"],
            "unit": "call",
            "price_fen": 0,
            "cap_fen": 100,
        },
        headers=admin,
    ).json()
    pending = client.post(
        "/api/v1/scenarios",
        json={"name": "企业贷后监测", "category": "industry", "organization": "青岛某银行"},
        headers=developer,
    ).json()

    def apply(product_id: int):
        return client.post(
            "/api/v1/applications",
            json={
                "client_id": world["bank"],
                "dataset_id": "credit-records",
                "purpose": "贷后监测企业经营",
                "modes": ["records"],
                "scenario_id": pending["id"],
                "product_id": product_id,
            },
            headers=developer,
        )

    chinese(apply(free_product["id"]), 400, "product_id")
    assert client.get("/api/v1/applications", headers=developer).json()["data"] == []
    assert pending["id"] not in [s["id"] for s in client.get("/api/v1/scenarios").json()["data"]]
    with Session(engine) as session:
        assert session.exec(select(Grant)).all() == []
    # An approval refused after the scenario check (the product's agreement is suspended)
    # rolls the scenario's approval back with everything else.
    submitted = apply(made["product_id"])
    assert submitted.status_code == 201, submitted.text
    client.post(
        f"/api/v1/admin/agreements/{made['agreement_id']}/suspend",
        json={"reason": "核查数据用途"},
        headers=admin,
    )
    refused = client.post(
        f"/api/v1/admin/applications/{submitted.json()['id']}/approve", json={}, headers=admin
    )
    assert refused.status_code == 403 and refused.json()["code"] == "grant_outside_agreement"
    assert pending["id"] not in [s["id"] for s in client.get("/api/v1/scenarios").json()["data"]]
    (still,) = client.get("/api/v1/applications", headers=developer).json()["data"]
    assert still["status"] == "pending" and still["grant_id"] is None
    with Session(engine) as session:
        assert session.exec(select(Grant)).all() == []


def test_a_closed_months_statement_is_issued_once_signed_and_immutable(
    client: TestClient, world: dict, engine: Engine, monkeypatch: pytest.MonkeyPatch
):
    import base64
    from datetime import datetime

    import sqlalchemy as sa

    from audit.signing import load_public_key

    made = setup_operation(client, world)
    assert bound_grant(client, world, made, "industry").status_code == 200
    for limit in (3, 4):
        client.get(
            f"/api/v1/datasets/credit-records/records?limit={limit}", headers=world["bank_token"]
        )
    month = statements.current_month()
    # A month later, this month is closed and may be issued.
    later = datetime.now() + timedelta(days=40)
    monkeypatch.setattr(statements, "utcnow", lambda: later)
    issued = client.post(f"/api/v1/admin/statements/{month}/issue", headers=world["admin"])
    assert issued.status_code == 201, issued.text
    body = issued.json()
    (line,) = body["lines"]
    assert (line["calls"], line["rows"], line["amount_fen"]) == (2, 7, (7 * 1250 + 500) // 1000)
    assert body["issued"] is True and body["total_fen"] == line["amount_fen"]
    # Anyone with the published key verifies it: signed over the canonical lines.
    pem = client.get("/api/v1/audit/public-key", headers=world["auditor"]).text
    load_public_key(pem.encode()).verify(
        base64.b64decode(body["signature"]),
        f"opengate-statement:{month}:".encode() + statements.canonical(body["lines"]),
    )
    again = client.post(f"/api/v1/admin/statements/{month}/issue", headers=world["admin"])
    chinese(again, 409)
    shown = client.get(f"/api/v1/admin/statements?month={month}", headers=world["admin"]).json()
    assert shown["signature"] == body["signature"] and shown["issued"] is True
    # Later calls change the live ledger, never the issued statement; reconcile says so.
    client.get("/api/v1/datasets/credit-records/records?limit=1", headers=world["bank_token"])
    (difference,) = statements.reconcile(engine, month)
    assert difference["issued"]["calls"] == 2 and difference["audit"]["calls"] == 3
    for statement in ("UPDATE statements SET total_fen = 0", "DELETE FROM statements"):
        with pytest.raises(sa.exc.DBAPIError, match="immutable"), engine.begin() as conn:
            conn.execute(sa.text(statement))
    with engine.connect() as conn:
        assert (
            conn.execute(sa.text("SELECT total_fen FROM statements")).scalar() == body["total_fen"]
        )
