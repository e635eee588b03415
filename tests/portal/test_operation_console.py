"""授权运营 in the administrator console and 用量与费用 in the developer center, over HTTP
on the web session: every page's role, every form's csrf_token, each bad input refused in
Chinese on the page with nothing changed, the happy paths visible through the JSON API and
written to the audit log, the statement's CSV, issue and printable page, and a developer
who sees only the usage of their own apps."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from operation import statements
from tests.conftest import TestClient
from tests.operation.test_operation_api import setup_operation, uscc, world  # noqa: F401
from tests.portal.web import TOKEN, csrf_of, links_of, web_login

TABLES = (
    "operators",
    "operator_apps",
    "agreements",
    "products",
    "scenarios",
    "statements",
    "grants",
)
TODAY = date.today()
OTHER_ROLES = {"developer": "bank-dev", "auditor": "auditor1"}


def snapshot(engine: Engine) -> dict[str, list]:
    with engine.connect() as conn:
        return {
            t: [tuple(r) for r in conn.execute(sa.text(f"SELECT * FROM {t} ORDER BY 1"))]
            for t in TABLES
        }


def browser_of(client: TestClient, username: str) -> TestClient:
    browser = TestClient(client.app)
    web_login(browser, username)
    return browser


def previous_month() -> str:
    first = date.fromisoformat(statements.current_month() + "-01")
    return (first - timedelta(days=1)).strftime("%Y-%m")


def meter(engine: Engine, client_id: str, product_id: int, day: date, calls: int, rows: int):
    """A day of the usage ledger as the audit trigger leaves it (for a month already over,
    which no request of the test can reach)."""
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO usage_ledger (client_id, product_id, day, free, calls, rows) "
                "VALUES (:c, :p, :d, false, :n, :r)"
            ),
            {"c": client_id, "p": product_id, "d": day, "n": calls, "r": rows},
        )


def web_events(engine: Engine, action: str) -> list[str]:
    """The outcomes of the web console's events of `action` (marked via: web), in order."""
    import json

    with engine.connect() as conn:
        rows = conn.execute(
            sa.text("SELECT outcome, detail FROM audit_events WHERE action = :a ORDER BY seq"),
            {"a": action},
        ).all()
    details = [(r[0], r[1] if isinstance(r[1], dict) else json.loads(r[1] or "{}")) for r in rows]
    return [outcome for outcome, detail in details if detail.get("via") == "web"]


@pytest.fixture
def op(client: TestClient, world: dict, engine: Engine) -> dict:  # noqa: F811
    """The API's operation setup, the bank's grant bound to the product and three calls."""
    made = setup_operation(client, world)
    granted = client.post(
        "/api/v1/admin/grants",
        json={
            "client_id": world["bank"],
            "dataset_id": "credit-records",
            "purpose": "信贷风险评估",
            "modes": ["records"],
        },
        headers=world["admin"],
    )
    assert granted.status_code == 201, granted.text
    bound = client.post(
        f"/api/v1/admin/grants/{granted.json()['id']}/operation",
        json={"scenario_id": made["scenarios"]["industry"], "product_id": made["product_id"]},
        headers=world["admin"],
    )
    assert bound.status_code == 200, bound.text
    for limit in (2, 3, 5):
        answer = client.get(
            f"/api/v1/datasets/credit-records/records?limit={limit}", headers=world["bank_token"]
        )
        assert answer.status_code == 200, answer.text
    pending = client.post(
        "/api/v1/scenarios",
        json={"name": "普惠金融贷后监测", "category": "industry", "organization": "青岛某银行"},
        headers=world["developer"],
    )
    assert pending.status_code == 201, pending.text
    return {**made, "grant_id": granted.json()["id"], "pending": pending.json()["id"]}


def admin_pages(o: dict) -> list[str]:
    month = statements.current_month()
    return [
        "/admin/operators",
        "/admin/agreements",
        "/admin/products",
        "/admin/scenarios",
        "/admin/statements",
        f"/admin/statements?month={month}",
        f"/admin/statements/{month}/csv",
        f"/admin/statements/{month}/print",
    ]


def admin_forms(o: dict, bank: str) -> list[tuple[str, dict]]:
    return [
        ("/admin/operators", {"name": "某运营公司", "credit_code": uscc("91370200MA3C9999")}),
        (f"/admin/operators/{o['operator_id']}/apps", {"client_id": bank}),
        (
            "/admin/agreements",
            {
                "operator_id": str(o["operator_id"]),
                "title": "协议",
                "datasets": "credit-records",
                "modes": "records",
                "starts_on": TODAY.isoformat(),
                "ends_on": (TODAY + timedelta(days=90)).isoformat(),
            },
        ),
        (f"/admin/agreements/{o['agreement_id']}/status", {"to": "suspended", "reason": "核查"}),
        (
            "/admin/products",
            {
                "code": "QD-FIN-0009",
                "operator_id": str(o["operator_id"]),
                "title": "新产品",
                "datasets": "credit-records",
                "modes": "records",
                "unit": "call",
                "price": "0.10",
                "cap": "1.00",
            },
        ),
        (f"/admin/products/{o['product_id']}/price", {"price": "1.00"}),
        (f"/admin/scenarios/{o['pending']}/approve", {}),
        (f"/admin/statements/{previous_month()}/issue", {}),
    ]


DEVELOPER_PAGES = ["/console/fees", "/console/fees/csv"]


def refused(answer, *, anonymous: bool) -> bool:
    if anonymous:
        return answer.status_code == 303 and answer.headers["location"].startswith("/login")
    return answer.status_code == 403 and "无权访问" in answer.text


def test_every_page_and_form_refuses_other_roles_and_strangers(
    client: TestClient,
    world: dict,  # noqa: F811
    op: dict,
    engine: Engine,
):
    from tests.auth.helpers import user

    user(engine, "ops1", "sysadmin")
    before = snapshot(engine)
    walkers = {"anonymous": TestClient(client.app), "sysadmin": browser_of(client, "ops1")}
    walkers.update({role: browser_of(client, name) for role, name in OTHER_ROLES.items()})
    for who, browser in walkers.items():
        anonymous = who == "anonymous"
        token = csrf_of(browser, "/login" if anonymous else "/")
        for path in admin_pages(op):
            answer = browser.get(path, follow_redirects=False)
            assert refused(answer, anonymous=anonymous), (who, path, answer.status_code)
        for path, data in admin_forms(op, world["bank"]):
            answer = browser.post(path, data={**data, "csrf_token": token}, follow_redirects=False)
            assert refused(answer, anonymous=anonymous), (who, path, answer.status_code)
    admin = browser_of(client, "admin1")
    for path in DEVELOPER_PAGES:
        assert refused(walkers["anonymous"].get(path, follow_redirects=False), anonymous=True)
        for browser in (admin, walkers["auditor"], walkers["sysadmin"]):
            assert refused(browser.get(path, follow_redirects=False), anonymous=False), path
    assert snapshot(engine) == before


def test_every_form_without_its_csrf_token_is_403_and_changes_nothing(
    client: TestClient,
    world: dict,  # noqa: F811
    op: dict,
    engine: Engine,
):
    admin = browser_of(client, "admin1")
    before = snapshot(engine)
    for path, data in admin_forms(op, world["bank"]):
        for token in (None, "", "forged-token-value"):
            body = dict(data) if token is None else {**data, "csrf_token": token}
            answer = admin.post(path, data=body, follow_redirects=False)
            assert answer.status_code == 403, (path, token, answer.status_code)
            assert "csrf_token" in answer.text and "未做任何更改" in answer.text
    assert snapshot(engine) == before


def post(browser: TestClient, page: str, path: str, data: dict):
    token = TOKEN.search(browser.get(page).text)
    assert token, page
    return browser.post(path, data={**data, "csrf_token": token.group(1)}, follow_redirects=False)


def test_operators_register_with_a_valid_credit_code_and_link_apps(
    client: TestClient,
    world: dict,  # noqa: F811
    op: dict,
    engine: Engine,
):
    admin = browser_of(client, "admin1")
    page = admin.get("/admin/operators")
    assert page.status_code == 200 and "青岛金融数据运营有限公司" in page.text
    assert uscc() in page.text and world["operator_app"] in page.text
    assert 'aria-current="page">运营机构' in page.text and "授权运营" in page.text
    good = uscc("91370200MA3C7777")
    bad = good[:-1] + ("0" if good[-1] != "0" else "1")
    before = snapshot(engine)
    refused_page = post(
        admin,
        "/admin/operators",
        "/admin/operators",
        {"name": "青岛数据科技有限公司", "credit_code": bad},
    )
    assert refused_page.status_code == 400
    assert "统一社会信用代码无效" in refused_page.text and "未做任何更改" in refused_page.text
    assert (
        'aria-invalid="true"' in refused_page.text and "青岛数据科技有限公司" in refused_page.text
    )
    assert snapshot(engine) == before
    saved = post(
        admin,
        "/admin/operators",
        "/admin/operators",
        {"name": "青岛数据科技有限公司", "credit_code": good, "contact": "张经理"},
    )
    assert saved.status_code == 303, saved.text
    listed = admin.get(saved.headers["location"]).text
    assert "青岛数据科技有限公司" in listed and good in listed and "张经理" in listed
    twice = post(
        admin, "/admin/operators", "/admin/operators", {"name": "重复", "credit_code": good}
    )
    assert twice.status_code == 409 and "已登记" in twice.text
    with engine.connect() as conn:
        new_id = conn.execute(
            sa.text("SELECT id FROM operators WHERE credit_code = :c"), {"c": good}
        ).scalar()
    # the operator app already belongs to the first operator: refused, nothing changed
    before = snapshot(engine)
    taken = post(
        admin,
        "/admin/operators",
        f"/admin/operators/{new_id}/apps",
        {"client_id": world["operator_app"]},
    )
    assert taken.status_code == 409 and "已属于另一运营机构" in taken.text
    missing = post(
        admin, "/admin/operators", f"/admin/operators/{new_id}/apps", {"client_id": "no-such-app"}
    )
    assert missing.status_code == 400 and "不存在" in missing.text
    assert snapshot(engine) == before
    linked = post(
        admin, "/admin/operators", f"/admin/operators/{new_id}/apps", {"client_id": world["bank"]}
    )
    assert linked.status_code == 303
    with engine.connect() as conn:
        owner = conn.execute(
            sa.text("SELECT operator_id FROM operator_apps WHERE client_id = :c"),
            {"c": world["bank"]},
        ).scalar()
    assert owner == new_id
    assert web_events(engine, "operation.operator") == ["error", "allowed", "error"]
    assert web_events(engine, "operation.operator_app") == ["error", "error", "allowed"]


def test_agreements_are_created_moved_and_hold_their_grants(
    client: TestClient,
    world: dict,  # noqa: F811
    op: dict,
    engine: Engine,
):
    admin = browser_of(client, "admin1")
    page = admin.get("/admin/agreements")
    assert "金融数据授权运营协议" in page.text and "生效" in page.text
    form = {
        "operator_id": str(op["operator_id"]),
        "title": "交通数据授权运营协议",
        "datasets": ["credit-records", "other-records"],
        "modes": ["records", "aggregate"],
        "starts_on": TODAY.isoformat(),
        "ends_on": (TODAY - timedelta(days=1)).isoformat(),
    }
    before = snapshot(engine)
    backwards = post(admin, "/admin/agreements", "/admin/agreements", form)
    assert backwards.status_code == 400
    assert (
        "协议终止日期须晚于起始日期" in backwards.text and "交通数据授权运营协议" in backwards.text
    )
    no_date = post(admin, "/admin/agreements", "/admin/agreements", {**form, "starts_on": "x"})
    assert no_date.status_code == 400 and "请填写起始日期" in no_date.text
    no_mode = post(
        admin,
        "/admin/agreements",
        "/admin/agreements",
        {**form, "modes": [], "ends_on": "2099-01-01"},
    )
    assert no_mode.status_code == 400 and "使用方式须从" in no_mode.text
    assert snapshot(engine) == before
    saved = post(
        admin,
        "/admin/agreements",
        "/admin/agreements",
        {**form, "ends_on": (TODAY + timedelta(days=365)).isoformat()},
    )
    assert saved.status_code == 303, saved.text
    listed = client.get("/api/v1/admin/agreements", headers=world["admin"]).json()
    new = next(a for a in listed if a["title"] == "交通数据授权运营协议")
    assert new["status"] == "draft" and new["datasets"] == ["credit-records", "other-records"]
    assert new["modes"] == ["aggregate", "records"]
    # suspending needs a reason: refused in Chinese, nothing changed
    first = op["agreement_id"]
    before = snapshot(engine)
    bare = post(
        admin,
        "/admin/agreements",
        f"/admin/agreements/{first}/status",
        {"to": "suspended", "reason": ""},
    )
    assert bare.status_code == 400 and "暂停或终止的理由不能为空" in bare.text
    wrong = post(
        admin,
        "/admin/agreements",
        f"/admin/agreements/{new['id']}/status",
        {"to": "suspended", "reason": "核查"},
    )
    assert wrong.status_code == 409 and "不能改为“暂停”" in wrong.text
    assert snapshot(engine) == before
    suspended = post(
        admin,
        "/admin/agreements",
        f"/admin/agreements/{first}/status",
        {"to": "suspended", "reason": "核查数据用途"},
    )
    assert suspended.status_code == 303
    shown = admin.get(suspended.headers["location"]).text
    assert "现为“暂停”：1 项授权已随协议停止" in shown and "核查数据用途" in shown
    stopped = client.get(
        "/api/v1/datasets/credit-records/records?limit=1", headers=world["bank_token"]
    )
    assert stopped.status_code == 403
    active = post(admin, "/admin/agreements", f"/admin/agreements/{first}/status", {"to": "active"})
    assert active.status_code == 303
    assert "此前随协议停止的授权已恢复" in admin.get(active.headers["location"]).text
    again = client.get(
        "/api/v1/datasets/credit-records/records?limit=1", headers=world["bank_token"]
    )
    assert again.status_code == 200
    assert web_events(engine, "operation.agreement") == ["error", "error", "error", "allowed"]
    assert web_events(engine, "operation.agreement_status") == [
        "error",
        "error",
        "allowed",
        "allowed",
    ]


def test_products_are_registered_and_priced_in_yuan_under_their_cap(
    client: TestClient,
    world: dict,  # noqa: F811
    op: dict,
    engine: Engine,
):
    admin = browser_of(client, "admin1")
    page = admin.get("/admin/products")
    assert "QD-FIN-0001" in page.text and "12.50" in page.text and "20.00" in page.text
    form = {
        "code": "QD-FIN-0002",
        "operator_id": str(op["operator_id"]),
        "title": "企业信用核验",
        "datasets": "credit-records",
        "modes": "records",
        "unit": "call",
        "price": "3.5",
        "cap": "3.00",
    }
    before = snapshot(engine)
    over = post(admin, "/admin/products", "/admin/products", form)
    assert over.status_code == 400 and "价格 3.50 元超过管理部门核定的上限 3.00 元" in over.text
    assert "企业信用核验" in over.text  # the form keeps what was typed
    fraction = post(admin, "/admin/products", "/admin/products", {**form, "price": "1.005"})
    assert fraction.status_code == 400 and "最多两位小数" in fraction.text
    outside = post(
        admin,
        "/admin/products",
        "/admin/products",
        {**form, "price": "1", "datasets": "other-records"},
    )
    assert outside.status_code == 400 and "不在该运营机构生效中的授权运营协议范围内" in outside.text
    assert snapshot(engine) == before
    saved = post(admin, "/admin/products", "/admin/products", {**form, "price": "2.05"})
    assert saved.status_code == 303, saved.text
    listed = {p["code"]: p for p in client.get("/api/v1/products").json()["data"]}
    assert (listed["QD-FIN-0002"]["price_fen"], listed["QD-FIN-0002"]["cap_fen"]) == (205, 300)
    # repricing above the cap: refused, the price unchanged
    before = snapshot(engine)
    pid = op["product_id"]
    high = post(admin, "/admin/products", f"/admin/products/{pid}/price", {"price": "25.00"})
    assert high.status_code == 400 and "超过管理部门核定的上限 20.00 元" in high.text
    assert snapshot(engine) == before
    lower = post(
        admin, "/admin/products", f"/admin/products/{pid}/price", {"price": "9.99", "cap": "15"}
    )
    assert lower.status_code == 303
    listed = {p["code"]: p for p in client.get("/api/v1/products").json()["data"]}
    assert (listed["QD-FIN-0001"]["price_fen"], listed["QD-FIN-0001"]["cap_fen"]) == (999, 1500)
    assert web_events(engine, "operation.product") == ["error", "error", "error", "allowed"]
    assert web_events(engine, "operation.price") == ["error", "allowed"]


def test_pending_scenarios_are_approved(
    client: TestClient,
    world: dict,  # noqa: F811
    op: dict,
    engine: Engine,
):
    admin = browser_of(client, "admin1")
    page = admin.get("/admin/scenarios")
    assert "普惠金融贷后监测" in page.text and "待审核（1）" in page.text
    assert "惠民补贴发放核验" in page.text and "公益事业" in page.text
    public = [s["name"] for s in client.get("/api/v1/scenarios").json()["data"]]
    assert "普惠金融贷后监测" not in public
    approved = post(admin, "/admin/scenarios", f"/admin/scenarios/{op['pending']}/approve", {})
    assert approved.status_code == 303
    public = [s["name"] for s in client.get("/api/v1/scenarios").json()["data"]]
    assert "普惠金融贷后监测" in public
    before = snapshot(engine)
    twice = post(admin, "/admin/scenarios", f"/admin/scenarios/{op['pending']}/approve", {})
    assert twice.status_code == 409 and "已获批准" in twice.text
    assert snapshot(engine) == before
    assert web_events(engine, "operation.scenario_approve") == ["allowed", "error"]


def test_the_billing_page_its_csv_issue_and_printable_statement(
    client: TestClient,
    world: dict,  # noqa: F811
    op: dict,
    engine: Engine,
):
    admin = browser_of(client, "admin1")
    month = statements.current_month()
    api = client.get(f"/api/v1/admin/statements?month={month}", headers=world["admin"]).json()
    (line,) = api["lines"]
    page = admin.get("/admin/statements")
    assert page.status_code == 200 and f"账单 {month}" in page.text
    assert world["bank"] in page.text and "信贷风险评估" in page.text
    assert f'id="statement-total">{api["total_yuan"]}<' in page.text
    assert "12.50" in page.text and "尚未出具" in page.text
    csv = admin.get(f"/admin/statements/{month}/csv")
    assert csv.status_code == 200 and csv.content.startswith("\ufeff".encode())
    assert (
        csv.text
        == client.get(
            f"/api/v1/admin/statements?month={month}&format=csv", headers=world["admin"]
        ).text
    )
    bad = admin.get("/admin/statements?month=2026-13")
    assert bad.status_code == 400 and "月份格式应为 YYYY-MM" in bad.text
    # the current month cannot be issued: the Chinese refusal on the page, nothing issued
    before = snapshot(engine)
    now = post(admin, "/admin/statements", f"/admin/statements/{month}/issue", {})
    assert now.status_code == 400 and "尚未结束，不能出具正式账单" in now.text
    assert snapshot(engine) == before
    # last month: a day of use, issued and signed
    last = previous_month()
    meter(engine, world["bank"], op["product_id"], date.fromisoformat(last + "-15"), 4, 2500)
    issued = post(admin, f"/admin/statements?month={last}", f"/admin/statements/{last}/issue", {})
    assert issued.status_code == 303, issued.text
    shown = admin.get(issued.headers["location"]).text
    body = client.get(f"/api/v1/admin/statements?month={last}", headers=world["admin"]).json()
    assert body["issued"] is True and body["total_fen"] == (2500 * 1250 + 500) // 1000
    assert "已出具" in shown and body["digest"] in shown and body["signature"] in shown
    assert body["key_id"] in shown and "admin1" in shown and "出具账单</button>" not in shown
    assert body["total_yuan"] == "31.25" and 'id="statement-total">31.25<' in shown
    again = post(admin, f"/admin/statements?month={last}", f"/admin/statements/{last}/issue", {})
    assert again.status_code == 409 and "账单出具后不可更改" in again.text
    printed = admin.get(f"/admin/statements/{last}/print")
    assert printed.status_code == 200
    text = printed.text
    assert "公共数据授权运营月度账单" in text and f"账期：{last[:4]} 年 {last[5:7]} 月" in text
    assert 'id="print-total">31.25 元' in text and body["signature"] in text
    assert "statement-print.css" in text and "statement-print.js" in text
    found = links_of(text)
    assert found.styles == [] and "<style" not in text
    assert all('src="' in tag for tag in text.split("<script")[1:])  # no inline script
    css = client.get("/static/portal/statement-print.css").text
    assert "@media print" in css and "A4" in css
    assert web_events(engine, "operation.statement_issue") == ["error", "allowed", "error"]
    assert line["amount_yuan"] in admin.get(f"/admin/statements/{month}/print").text


def test_a_developer_sees_the_usage_and_fees_of_their_own_apps_only(
    client: TestClient,
    world: dict,  # noqa: F811
    op: dict,
    engine: Engine,
):
    month = statements.current_month()
    today = date.fromisoformat(month + "-01")
    # the operator's app has its own line this month: never on the bank developer's page
    meter(engine, world["operator_app"], op["product_id"], today, 7, 7000)
    bank = browser_of(client, "bank-dev")
    page = bank.get("/console/fees")
    assert page.status_code == 200 and f"用量与费用 {month}" in page.text
    assert 'aria-current="page">用量与费用' in page.text
    own = client.get("/api/v1/usage", headers=world["bank_token"]).json()
    assert world["bank"] in page.text and world["operator_app"] not in page.text
    assert f'id="fee-total">{own["total_yuan"]}<' in page.text and "信贷风险评估" in page.text
    csv = bank.get(f"/console/fees/csv?month={month}")
    assert csv.status_code == 200 and csv.content.startswith("\ufeff".encode())
    assert world["bank"] in csv.text and world["operator_app"] not in csv.text
    other = browser_of(client, "op-dev")
    theirs = other.get("/console/fees").text
    assert world["operator_app"] in theirs and world["bank"] not in theirs
    assert 'id="fee-total">87.50<' in theirs  # 7000 rows at 12.50 per 1000
    assert world["bank"] not in other.get("/console/fees/csv").text
    empty = bank.get("/console/fees?month=2020-01")
    assert empty.status_code == 200 and "没有计量的调用" in empty.text
    bad = bank.get("/console/fees?month=20-1")
    assert bad.status_code == 400 and "月份格式应为 YYYY-MM" in bad.text
