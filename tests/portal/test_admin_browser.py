"""Onboarding a bank's app to a conditional dataset entirely in the browser (headless
Chromium driven by selenium, the harness of tests/portal/test_console_browser.py): the
developer registers, creates an app and applies; the data administrator reads the
application beside the bank's organization, sets the conditions, checks the policy on the
confirm step and approves; the app's first record comes back masked as the page said.
Then the system administrator's page. Every page under the gateway's own CSP, loading
nothing from another host.

OPENGATE_SCREENSHOTS=<folder> also saves the pages there (docs/screenshots/ is made so)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.engine import Engine

from tests.auth.helpers import PASSWORD, user
from tests.conftest import LiveServer
from tests.packages import import_conditional
from tests.portal.admin_setup import DATASET, FIELDS, ROWS
from tests.portal.test_console_browser import clean_log, fill, shoot, submit

pytestmark = pytest.mark.slow


def loaded(driver: Any, css: str) -> Any:
    """The element once the page that has it is loaded (a form's POST and its 303 take a
    moment on a loaded machine)."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, 15).until(
        expected_conditions.presence_of_element_located((By.CSS_SELECTOR, css))
    )


def send(driver: Any, label: str) -> None:
    """Press the form's button and wait until the next page has replaced this one."""
    submit(driver, label)


def sign_in(driver: Any, live: LiveServer, path: str, username: str, password: str) -> None:
    driver.get(f"{live.url}{path}")
    assert driver.current_url.startswith(f"{live.url}/login")
    fill(driver, {"username": username, "password": password})
    send(driver, "登录")
    assert driver.current_url == f"{live.url}{path}"


def test_a_bank_app_is_onboarded_in_the_browser(
    engine: Engine, live: LiveServer, packages: Path, browser: Any, tmp_path: Path
):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    import_conditional(engine, packages, fields=FIELDS, rows=ROWS, name=DATASET)
    user(engine, "reviewer", "data_admin")
    user(engine, "ops", "sysadmin")

    # the developer: register, sign in, create the app, apply
    browser.get(f"{live.url}/register")
    fill(
        browser,
        {
            "username": "qdbank-dev",
            "password": "long enough pass",
            "password2": "long enough pass",
            "email": "dev@qdbank.example",
            "organization": "青岛银行股份有限公司",
        },
    )
    send(browser, "注册")
    browser.find_element(By.LINK_TEXT, "以 qdbank-dev 登录").click()
    fill(browser, {"username": "qdbank-dev", "password": "long enough pass"})
    send(browser, "登录")
    browser.find_element(By.LINK_TEXT, "我的应用").click()
    fill(browser, {"name": "普惠授信系统"})
    send(browser, "创建应用")
    secret = browser.find_element(By.ID, "client-secret").text
    client_id = browser.find_element(By.ID, "client-id").text
    browser.find_element(By.LINK_TEXT, "我已保存，返回我的应用").click()
    browser.find_element(By.LINK_TEXT, "申请数据").click()
    Select(browser.find_element(By.ID, "dataset")).select_by_visible_text(
        "社会保险参保缴费信息（市生态环境局）"
    )
    send(browser, "查看字段")
    browser.find_element(By.ID, "field-monthly_base").click()  # not needed: untick it
    browser.find_element(By.NAME, "purpose").send_keys(
        "核实小微企业主社保缴纳情况，用于普惠贷款审批"
    )
    send(browser, "提交申请")
    assert "等待数据管理员审核" in loaded(browser, "[role=status]").text
    clean_log(browser, live.url)
    send(browser, "退出")

    # the data administrator: the queue names the bank; conditions; confirm; approve
    sign_in(browser, live, "/admin/applications", "reviewer", PASSWORD)
    row = loaded(browser, "tbody tr").text
    for shown in ("普惠授信系统", "青岛银行股份有限公司", "qdbank-dev", "核实小微企业主"):
        assert shown in row
    shoot(browser, tmp_path, "admin-queue.png")
    browser.find_element(By.CSS_SELECTOR, "tbody tr a").click()
    assert loaded(browser, "#organization").text == "青岛银行股份有限公司"
    assert not browser.find_element(By.ID, "field-monthly_base").is_selected()
    id_choice = Select(browser.find_element(By.NAME, "transform.id_number"))
    assert [o.get_attribute("value") for o in id_choice.options] == ["redact", "pseudonym"]
    Select(browser.find_element(By.NAME, "transform.phone")).select_by_value("redact")
    fill(browser, {"quota.requests_per_day": "1000", "duration_days": "180"})
    browser.find_element(By.NAME, "row_filter").send_keys("district=市南区")
    shoot(browser, tmp_path, "admin-application.png")
    send(browser, "预览批准结果")
    policy = json.loads(loaded(browser, "#policy-json").text)
    previewed = {f["name"]: f["transform"] for f in policy["modes"]["records"]["fields"]}
    assert previewed["phone"] == "redact" and previewed["person_name"] == "mask_name"
    assert previewed["id_number"] == "pseudonym" and "monthly_base" not in previewed
    shoot(browser, tmp_path, "admin-confirm.png")
    send(browser, "确认并保存授权")
    assert "即刻生效" in loaded(browser, "[role=status]").text
    shoot(browser, tmp_path, "admin-grants.png")
    browser.find_element(By.LINK_TEXT, "数据集").click()
    shoot(browser, tmp_path, "admin-datasets.png")
    browser.find_element(By.LINK_TEXT, "社会保险参保缴费信息").click()
    assert "导入历史" in browser.page_source
    shoot(browser, tmp_path, "admin-dataset.png")
    browser.find_element(By.LINK_TEXT, "概览").click()
    shoot(browser, tmp_path, "admin.png")
    clean_log(browser, live.url)
    send(browser, "退出")

    # the app's first record: masked as the confirm step said
    token = httpx.post(
        f"{live.url}/oauth/token",
        data={"grant_type": "client_credentials"},
        auth=(client_id, secret),
    ).json()["access_token"]
    answer = httpx.get(
        f"{live.url}/api/v1/datasets/{DATASET}/records?limit=1",
        headers={"Authorization": f"Bearer {token}"},
    ).json()
    assert {f["name"]: f["transform"] for f in answer["fields"]} == previewed
    first = answer["data"][0]
    assert first["district"] == "市南区" and first["person_name"] == "欧***"
    assert first["phone"] is None and first["id_number"].startswith("p_")

    # the system administrator's page
    sign_in(browser, live, "/admin/system", "ops", PASSWORD)
    assert loaded(browser, "#ready-database").text == "正常"
    assert "token-signing" in browser.page_source
    shoot(browser, tmp_path, "admin-system.png")
    clean_log(browser, live.url)
