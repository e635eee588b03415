"""The role walk of the administrator console and the system page: every page and form,
called with every wrong role and anonymously, is 403 or a redirect to /login and changes
nothing; every form without its csrf_token is 403 and changes nothing (contract §10)."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from tests.portal.admin_setup import DATASET, ROLES, bank_application, signed_in
from tests.portal.test_admin_console import conditions, token_of
from tests.portal.web import csrf_of

TABLES = ("applications", "grants", "grant_versions", "feedback", "demands", "users", "apps")


def snapshot(engine: Engine) -> dict[str, list]:
    with engine.connect() as conn:
        return {
            t: [tuple(r) for r in conn.execute(sa.text(f"SELECT * FROM {t} ORDER BY 1"))]
            for t in TABLES
        }


@pytest.fixture
def admin_world(client: TestClient, engine: Engine, packages: Path) -> dict:
    """A pending application, an active grant, a 纠错 report and a demand to act on."""
    from participation import demands

    bank = bank_application(engine, packages)
    second = bank_application(engine, packages, username="qdbank2", first=False)
    admin = signed_in(client, engine, "data_admin", "reviewer")
    page = admin.get(f"/admin/applications/{second.application_id}")
    saved = admin.post(
        f"/admin/applications/{second.application_id}/approve",
        data={**conditions(), "csrf_token": token_of(page.text)},
        follow_redirects=False,
    )
    assert saved.status_code == 303
    with engine.begin() as conn:
        grant_id = conn.execute(sa.text("SELECT id FROM grants")).scalar()
        conn.execute(
            sa.text(
                "INSERT INTO feedback (dataset_id, version, message, redacted, reporter, source,"
                " status, response, created_at, updated_at) VALUES (:d, 1, '数值有误', false,"
                " 'qdbank', '', 'submitted', '', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
            ),
            {"d": DATASET},
        )
    demand = demands.create(
        engine, requester="qdbank", title="企业用电", description="授信", department="", scenario=""
    )
    return {"bank": bank, "grant_id": grant_id, "demand_id": demand.id, "feedback_id": 1}


def admin_pages(w: dict) -> list[str]:
    return [
        "/admin",
        "/admin/applications",
        "/admin/applications?status=all",
        f"/admin/applications/{w['bank'].application_id}",
        "/admin/grants",
        "/admin/grants?view=expiring",
        "/admin/grants/new",
        f"/admin/grants/new?dataset={DATASET}",
        "/admin/datasets",
        "/admin/datasets/upload",
        "/admin/usage",
        f"/admin/datasets/{DATASET}",
        "/admin/feedback",
        "/admin/demands",
        # 授权运营 (tests/portal/test_operation_console.py walks them with their data)
        "/admin/operators",
        "/admin/agreements",
        "/admin/products",
        "/admin/scenarios",
        "/admin/statements",
        "/admin/statements/2026-01/csv",
        "/admin/statements/2026-01/print",
    ]


def admin_forms(w: dict) -> list[tuple[str, dict]]:
    a, g = w["bank"].application_id, w["grant_id"]
    f, d = w["feedback_id"], w["demand_id"]
    direct = {**conditions(), "client_id": w["bank"].client_id, "dataset_id": DATASET}
    return [
        (f"/admin/applications/{a}/preview", conditions()),
        (f"/admin/applications/{a}/approve", conditions()),
        (f"/admin/applications/{a}/reject", {"reason": "不符合"}),
        (f"/admin/grants/{g}/revoke", {"reason": "终止"}),
        ("/admin/grants/new/preview", {**direct, "purpose": "授权运营"}),
        ("/admin/grants/new", {**direct, "purpose": "授权运营"}),
        (f"/admin/feedback/{f}/accept", {"response": "受理"}),
        (f"/admin/feedback/{f}/reject", {"reason": "不采纳"}),
        (f"/admin/feedback/{f}/fixed", {"version": "2"}),
        (f"/admin/demands/{d}/answer", {"response": "答复"}),
        (f"/admin/demands/{d}/satisfy", {"dataset_id": DATASET}),
        (f"/admin/demands/{d}/decline", {"reason": "无法提供"}),
        ("/admin/operators", {"name": "某公司", "credit_code": "91370200MA3C1234XX"}),
        ("/admin/operators/1/apps", {"client_id": w["bank"].client_id}),
        ("/admin/agreements", {"operator_id": "1", "title": "协议"}),
        ("/admin/agreements/1/status", {"to": "active"}),
        ("/admin/products", {"code": "QD-0001", "operator_id": "1"}),
        ("/admin/products/1/price", {"price": "1.00"}),
        ("/admin/scenarios/1/approve", {}),
        ("/admin/statements/2026-01/issue", {}),
    ]


SYSTEM_PAGES = ["/admin/system"]


def system_forms() -> list[tuple[str, dict]]:
    return [
        ("/admin/system/users/qdbank/role", {"role": "data_admin"}),
        ("/admin/system/users/qdbank/disable", {}),
        ("/admin/system/users/qdbank/enable", {}),
    ]


def refused(answer, *, anonymous: bool) -> bool:
    if answer.status_code == 403:
        return True
    return (
        anonymous and answer.status_code == 303 and answer.headers["location"].startswith("/login")
    )


def walk(client: TestClient, engine: Engine, pages: list[str], forms, allowed: str) -> None:
    before = snapshot(engine)
    browsers = {
        role: signed_in(client, engine, role, f"walk-{role.replace('_', '-')}")
        for role in ROLES
        if role != allowed
    }
    browsers["anonymous"] = TestClient(client.app)
    for who, browser in browsers.items():
        anonymous = who == "anonymous"
        # a token the browser may hold: its own session's, or the anonymous sign-in form's
        token = csrf_of(browser, "/login" if anonymous else "/")
        for path in pages:
            answer = browser.get(path, follow_redirects=False)
            assert refused(answer, anonymous=anonymous), (who, path, answer.status_code)
        for path, data in forms:
            answer = browser.post(path, data={**data, "csrf_token": token}, follow_redirects=False)
            assert refused(answer, anonymous=anonymous), (who, path, answer.status_code)
    after = snapshot(engine)
    # only the walkers' own accounts were added (and their sign-ins recorded on them)
    assert {k: v for k, v in after.items() if k != "users"} == {
        k: v for k, v in before.items() if k != "users"
    }
    assert len(after["users"]) == len(before["users"]) + len(browsers) - 1


def test_every_admin_page_and_form_refuses_every_other_role_and_strangers(
    client: TestClient, engine: Engine, admin_world: dict
):
    walk(client, engine, admin_pages(admin_world), admin_forms(admin_world), "data_admin")


def test_every_system_page_and_form_refuses_every_other_role_and_strangers(
    client: TestClient, engine: Engine, admin_world: dict
):
    walk(client, engine, SYSTEM_PAGES, system_forms(), "sysadmin")


def test_a_sysadmin_reads_no_grant_and_no_audit_data(
    client: TestClient, engine: Engine, admin_world: dict
):
    sysadmin = signed_in(client, engine, "sysadmin", "ops")
    for path in ("/admin/grants", "/admin/applications", "/admin"):
        assert sysadmin.get(path).status_code == 403
    page = sysadmin.get("/admin/system")
    assert page.status_code == 200
    assert "普惠授信系统" not in page.text and "社会保险" not in page.text


def test_every_admin_form_without_its_csrf_token_is_403_and_changes_nothing(
    client: TestClient, engine: Engine, admin_world: dict
):
    admin = TestClient(client.app)
    from tests.auth.helpers import PASSWORD
    from tests.portal.web import web_login

    web_login(admin, "reviewer", PASSWORD)
    sysadmin = signed_in(client, engine, "sysadmin", "ops")
    before = snapshot(engine)
    for browser, forms in ((admin, admin_forms(admin_world)), (sysadmin, system_forms())):
        for path, data in forms:
            for token in (None, "", "forged-token-value"):
                body = dict(data) if token is None else {**data, "csrf_token": token}
                answer = browser.post(path, data=body, follow_redirects=False)
                assert answer.status_code == 403, (path, token, answer.status_code)
                assert "csrf_token" in answer.text
    assert snapshot(engine) == before


def test_the_system_page_shows_roles_keys_checkpoints_and_readiness(
    client: TestClient, engine: Engine, admin_world: dict
):
    sysadmin = signed_in(client, engine, "sysadmin", "ops")
    page = sysadmin.get("/admin/system")
    text = page.text
    assert 'id="ready-database">正常' in text
    assert "token-signing" in text and "audit-signing" in text and "建议轮换" in text
    assert "签发间隔" in text and "每 60 秒" in text
    assert "qdbank" in text and "数据管理员" in text
    token = token_of(text)
    bad = sysadmin.post(
        "/admin/system/users/qdbank/role", data={"role": "root", "csrf_token": token}
    )
    assert bad.status_code == 400 and "未知角色" in bad.text and "developer" in bad.text
    own = sysadmin.post("/admin/system/users/ops/disable", data={"csrf_token": token})
    assert own.status_code == 400 and "当前登录的系统管理员" in own.text
    changed = sysadmin.post(
        "/admin/system/users/qdbank/role",
        data={"role": "auditor", "csrf_token": token},
        follow_redirects=False,
    )
    assert changed.status_code == 303
    with engine.connect() as conn:
        role = conn.execute(sa.text("SELECT role FROM users WHERE username = 'qdbank'")).scalar()
        events = conn.execute(
            sa.text("SELECT count(*) FROM audit_events WHERE action = 'user.set_role'")
        ).scalar()
    assert role == "auditor" and events >= 1
    disabled = sysadmin.post(
        "/admin/system/users/qdbank/disable", data={"csrf_token": token}, follow_redirects=False
    )
    assert disabled.status_code == 303
    with engine.connect() as conn:
        active = conn.execute(
            sa.text("SELECT is_active FROM users WHERE username = 'qdbank'")
        ).scalar()
    assert not active


def test_the_system_page_says_when_redis_does_not_answer(engine: Engine, settings):
    from gateway.app import create_app
    from tests.auth.helpers import PASSWORD, user
    from tests.portal.web import web_login

    down = settings.model_copy(update={"redis_url": "redis://127.0.0.1:1/0"})
    user(engine, "ops", "sysadmin")
    with TestClient(create_app(down, engine=engine)) as browser:
        web_login(browser, "ops", PASSWORD)
        page = browser.get("/admin/system")
        assert browser.get("/readyz").status_code == 503  # the same probe
    assert page.status_code == 200
    assert 'id="ready-redis">不可用' in page.text and 'id="ready-database">正常' in page.text
