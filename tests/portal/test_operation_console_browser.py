"""授权运营 in a real browser (headless Chromium driven by selenium, the harness of
tests/portal/test_console_browser.py): the data administrator registers an operator (a
wrong 统一社会信用代码 first), drafts an agreement (its end before its start first) and
puts it into force, registers a product (priced above its cap first), reads the month's
bill, is refused the current month's statement and opens the printable page; the
developer reads 用量与费用 of their own app. Under the gateway's own CSP, loading nothing
from another host.

OPENGATE_SCREENSHOTS=<folder> also saves the pages there (docs/screenshots/ is made so)."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest

from operation import statements
from tests.conftest import LiveServer, TestClient
from tests.operation.test_operation_api import uscc, world  # noqa: F401
from tests.portal.test_admin_browser import loaded, send, sign_in
from tests.portal.test_console_browser import clean_log, fill, shoot

pytestmark = pytest.mark.slow
TODAY = date.today()


def day(driver: Any, element_id: str, value: date) -> None:
    """Set a date input (what its picker sets; typed digits follow the browser's locale)."""
    from selenium.webdriver.common.by import By

    box = driver.find_element(By.ID, element_id)
    driver.execute_script("arguments[0].value = arguments[1]", box, value.isoformat())


def test_the_administrator_runs_authorized_operation_in_the_browser(
    client: TestClient,
    world: dict,  # noqa: F811
    live: LiveServer,
    browser: Any,
    tmp_path: Path,
):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    from tests.auth.helpers import PASSWORD

    sign_in(browser, live, "/admin/operators", "admin1", PASSWORD)
    good = uscc()
    bad = good[:-1] + ("0" if good[-1] != "0" else "1")
    fill(browser, {"name": "青岛金融数据运营有限公司", "credit_code": bad, "contact": "王经理"})
    send(browser, "登记运营机构")
    assert "统一社会信用代码无效" in loaded(browser, "[role=alert]").text
    fill(browser, {"credit_code": good})
    send(browser, "登记运营机构")
    assert "已登记" in loaded(browser, "[role=status]").text
    assert good in browser.find_element(By.ID, "operator-table").text
    Select(browser.find_element(By.CSS_SELECTOR, "#operator-table select")).select_by_value(
        world["operator_app"]
    )
    send(browser, "登记应用")
    assert world["operator_app"] in browser.find_element(By.ID, "operator-table").text
    shoot(browser, tmp_path, "admin-operators.png")

    browser.find_element(By.LINK_TEXT, "授权运营协议").click()
    Select(browser.find_element(By.ID, "ag-operator")).select_by_visible_text(
        "青岛金融数据运营有限公司"
    )
    fill(browser, {"title": "金融数据授权运营协议"})
    Select(browser.find_element(By.ID, "ag-datasets")).select_by_value("credit-records")
    browser.find_element(By.CSS_SELECTOR, "input[name=modes][value=records]").click()
    day(browser, "ag-start", TODAY - timedelta(days=10))
    day(browser, "ag-end", TODAY - timedelta(days=20))
    send(browser, "新建协议（草拟）")
    assert "协议终止日期须晚于起始日期" in loaded(browser, "[role=alert]").text
    day(browser, "ag-end", TODAY + timedelta(days=400))
    send(browser, "新建协议（草拟）")
    assert "已新建（草拟）" in loaded(browser, "[role=status]").text
    send(browser, "生效")
    assert "现为“生效”" in loaded(browser, "[role=status]").text

    browser.find_element(By.CSS_SELECTOR, "a[href='/admin/products']").click()
    fill(browser, {"code": "QD-FIN-0001", "title": "信贷风险评估", "price": "25", "cap": "20"})
    Select(browser.find_element(By.ID, "pr-operator")).select_by_visible_text(
        "青岛金融数据运营有限公司"
    )
    Select(browser.find_element(By.ID, "pr-datasets")).select_by_value("credit-records")
    browser.find_element(By.CSS_SELECTOR, "input[name=modes][value=records]").click()
    Select(browser.find_element(By.ID, "pr-unit")).select_by_value("1000_rows")
    send(browser, "登记数据产品")
    assert "超过管理部门核定的上限 20.00 元" in loaded(browser, "[role=alert]").text
    fill(browser, {"price": "12.50"})
    send(browser, "登记数据产品")
    assert "QD-FIN-0001" in loaded(browser, "[role=status]").text
    row = browser.find_element(By.ID, "product-table").text
    assert "12.50" in row and "20.00" in row
    shoot(browser, tmp_path, "admin-products.png")

    # the bank's grant bound to the product, and its calls (the API, as the test's client)
    scenario = client.post(
        "/api/v1/scenarios",
        json={"name": "小微企业信贷风控", "category": "industry", "organization": "青岛某银行"},
        headers=world["developer"],
    ).json()["id"]
    browser.find_element(By.LINK_TEXT, "应用场景").click()
    send(browser, "批准")
    assert "已批准" in loaded(browser, "[role=status]").text
    granted = client.post(
        "/api/v1/admin/grants",
        json={"client_id": world["bank"], "dataset_id": "credit-records",
              "purpose": "信贷风险评估", "modes": ["records"]},
        headers=world["admin"],
    ).json()["id"]  # fmt: skip
    product = client.get("/api/v1/products").json()["data"][0]["id"]
    bound = client.post(
        f"/api/v1/admin/grants/{granted}/operation",
        json={"scenario_id": scenario, "product_id": product},
        headers=world["admin"],
    )
    assert bound.status_code == 200, bound.text
    for limit in (2, 3):
        answer = client.get(
            f"/api/v1/datasets/credit-records/records?limit={limit}", headers=world["bank_token"]
        )
        assert answer.status_code == 200, answer.text

    browser.find_element(By.LINK_TEXT, "账单").click()
    lines = loaded(browser, "#statement-lines").text
    assert world["bank"] in lines and "信贷风险评估" in lines
    shoot(browser, tmp_path, "admin-statements.png")
    send(browser, "出具账单")
    assert "尚未结束，不能出具正式账单" in loaded(browser, "[role=alert]").text
    browser.find_element(By.LINK_TEXT, "打印版").click()
    month = statements.current_month()
    assert "公共数据授权运营月度账单" in loaded(browser, ".statement-sheet h1").text
    assert browser.find_element(By.ID, "print-button").is_displayed()  # the script ran
    total = client.get(f"/api/v1/admin/statements?month={month}", headers=world["admin"])
    assert browser.find_element(By.ID, "print-total").text == f"{total.json()['total_yuan']} 元"
    shoot(browser, tmp_path, "admin-statement-print.png")
    clean_log(browser, live.url)
    send(browser, "退出")

    sign_in(browser, live, "/console/fees", "bank-dev", PASSWORD)
    fees = loaded(browser, "#fee-lines").text
    assert "信贷风险评估" in fees and world["bank"] in fees
    shoot(browser, tmp_path, "console-fees.png")
    clean_log(browser, live.url)
