"""The developer center and 我的授权 in a real browser (headless Chromium driven by
selenium, the harness of tests/gateway/test_docs_browser.py): a developer registers, signs
in, creates an app and sees its secret once, applies for a conditional dataset after
looking at the preview of its fields; a person withdraws a consent with one click. Every
assertion is on what the page shows, under the gateway's own Content-Security-Policy,
loading nothing from another host.

OPENGATE_SCREENSHOTS=<folder> also saves the pages there (docs/screenshots/ is made so)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import httpx
import pytest
from authlib.integrations.httpx_client import OAuth2Client
from sqlalchemy.engine import Engine

from tests.auth.helpers import PASSWORD
from tests.conftest import LiveServer
from tests.portal.consenting import approve, consent_url

SCREENSHOTS = os.environ.get("OPENGATE_SCREENSHOTS")
pytestmark = pytest.mark.slow


def shoot(driver: Any, tmp_path: Path, name: str) -> None:
    driver.save_screenshot(str(tmp_path / name))
    if SCREENSHOTS:
        Path(SCREENSHOTS).mkdir(parents=True, exist_ok=True)
        # the whole page, not just the window
        height = driver.execute_script("return document.documentElement.scrollHeight")
        driver.set_window_size(1400, max(900, min(height + 40, 3000)))
        driver.save_screenshot(str(Path(SCREENSHOTS) / name))


def clean_log(driver: Any, origin: str) -> None:
    """No CSP violation, no script error, nothing loaded from elsewhere. (Network entries
    are the answers the test asked for: a wrong password's 401, the absent favicon.)"""
    log = driver.get_log("browser")
    assert not [e for e in log if "Content Security Policy" in e["message"]], log
    assert not [e for e in log if e["level"] == "SEVERE" and e["source"] != "network"], log
    loaded = driver.execute_script(
        "return performance.getEntriesByType('resource').map(e => e.name)"
    )
    assert all(url.startswith(origin + "/") for url in loaded), loaded


def fill(driver: Any, values: dict[str, str]) -> None:
    from selenium.webdriver.common.by import By

    for name, value in values.items():
        box = driver.find_element(By.NAME, name)
        box.clear()
        box.send_keys(value)


def submit(driver: Any, label: str, *, navigates: bool = True) -> None:
    """Press a form's button and wait for the next page (reading the old page races);
    a script-sent form (`navigates=False`) stays on its page and the caller waits."""
    from selenium.webdriver.common.by import By

    driver.execute_script("window.__opengate_old_page = true")
    driver.find_element(By.XPATH, f"//button[normalize-space()='{label}']").click()
    if navigates:
        replaced(driver)


def replaced(driver: Any, timeout: float = 20) -> None:
    """Wait until a new, loaded document stands where the marked one was. Asked mid-swap,
    chromium answers with a plain WebDriverException ("Node ... does not belong to the
    document") instead of a stale-element error, so every driver error means "not yet"."""
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, timeout, ignored_exceptions=(WebDriverException,)).until(
        lambda d: d.execute_script(
            "return !window.__opengate_old_page && document.readyState === 'complete'"
        )
    )


def test_a_developer_registers_creates_an_app_and_applies(
    live: LiveServer,
    setup: OAuth2Client,
    browser: Any,
    tmp_path: Path,
):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

    browser.get(f"{live.url}/register")
    fill(
        browser,
        {
            "username": "bank-dev",
            "password": "long enough pass",
            "password2": "long enough pass",
            "email": "dev@bank.example",
            "organization": "青岛某某银行",
        },
    )
    submit(browser, "注册")
    assert "注册申请已受理" in browser.find_element(By.CSS_SELECTOR, "[role=status]").text
    browser.find_element(By.LINK_TEXT, "以 bank-dev 登录").click()

    fill(browser, {"username": "bank-dev", "password": "wrong password"})
    submit(browser, "登录")
    assert "用户名或密码错误" in browser.find_element(By.CSS_SELECTOR, "[role=alert]").text
    fill(browser, {"password": "long enough pass"})
    submit(browser, "登录")
    assert browser.current_url == f"{live.url}/console"
    assert "您好，bank-dev（青岛某某银行）" in browser.find_element(By.TAG_NAME, "main").text

    browser.find_element(By.LINK_TEXT, "我的应用").click()
    fill(browser, {"name": "普惠授信系统"})
    submit(browser, "创建应用")
    secret = browser.find_element(By.ID, "client-secret").text
    client_id = browser.find_element(By.ID, "client-id").text
    assert len(secret) >= 32 and "只显示这一次" in browser.page_source
    token = httpx.post(
        f"{live.url}/oauth/token",
        data={"grant_type": "client_credentials"},
        auth=(client_id, secret),
    )
    assert token.status_code == 200  # the secret on the page is the app's
    browser.find_element(By.LINK_TEXT, "我已保存，返回我的应用").click()
    assert client_id in browser.page_source and secret not in browser.page_source

    browser.find_element(By.LINK_TEXT, "申请数据").click()
    Select(browser.find_element(By.ID, "dataset")).select_by_visible_text(
        "社会保险参保缴费信息（市生态环境局）"
    )
    submit(browser, "查看字段")
    shown = {
        cell.get_attribute("data-field"): cell.text
        for cell in browser.find_elements(By.CSS_SELECTOR, "td[data-field]")
    }
    assert shown["person_name"] == "张**" and shown["record_id"] == "12345"
    assert shown["id_number"].startswith("p_") and len(shown["id_number"]) == 18
    browser.find_element(By.ID, "field-id_number").click()  # not needed: untick it
    browser.find_element(By.NAME, "purpose").send_keys("小微企业授信前核验参保情况")
    shoot(browser, tmp_path, "console-apply.png")
    submit(browser, "提交申请")
    main = browser.find_element(By.TAG_NAME, "main").text
    assert "已提交，等待数据管理员审核" in main and "待审核" in main
    assert "record_id、person_name、monthly_base" in main

    browser.find_element(By.LINK_TEXT, "调用统计").click()
    # the chart is drawn by the vendored ECharts; the same figures stay in the table
    assert browser.find_elements(By.CSS_SELECTOR, "#chart-usage[data-rendered=true] canvas")
    assert len(browser.find_elements(By.CSS_SELECTOR, "#usage-table tbody tr")) == 30

    browser.find_element(By.LINK_TEXT, "概览").click()
    assert "待审核申请" in browser.page_source
    shoot(browser, tmp_path, "console.png")
    clean_log(browser, live.url)

    submit(browser, "退出")
    WebDriverWait(browser, 10).until(lambda d: d.current_url == f"{live.url}/")
    browser.get(f"{live.url}/console/apps")
    assert browser.current_url.startswith(f"{live.url}/login")


def test_a_person_withdraws_a_consent_with_one_click(
    engine: Engine,
    live: LiveServer,
    setup: OAuth2Client,
    browser: Any,
    tmp_path: Path,
):
    from selenium.webdriver.common.by import By

    location = approve(live, consent_url(live, setup, 30))
    token = setup.fetch_token(
        f"{live.url}/oauth/token", authorization_response=location, code_verifier="v" * 64
    )
    app_auth = {"Authorization": f"Bearer {token['access_token']}"}
    records = f"{live.url}/api/v1/datasets/social-insurance/records"
    assert httpx.get(records, headers=app_auth).status_code == 200

    browser.get(f"{live.url}/me/consents")
    assert browser.current_url.startswith(f"{live.url}/login")  # sign in first
    fill(browser, {"username": "zhangsan", "password": PASSWORD})
    submit(browser, "登录")
    assert browser.current_url == f"{live.url}/me/consents"
    row = browser.find_element(By.CSS_SELECTOR, "#consents tbody tr").text
    for shown in ("dev1 的应用", "青岛某某银行", "社会保险参保缴费信息", "贷款资格核验", "生效中"):
        assert shown in row
    shoot(browser, tmp_path, "me-consents.png")
    submit(browser, "撤回授权")
    assert "授权已撤回" in browser.find_element(By.CSS_SELECTOR, "[role=status]").text
    row = browser.find_element(By.CSS_SELECTOR, "#consents tbody tr").text
    assert "已撤回" in row and not browser.find_elements(
        By.XPATH, "//button[normalize-space()='撤回授权']"
    )
    clean_log(browser, live.url)
    assert httpx.get(records, headers=app_auth).status_code == 401
