"""The portal in a real browser (issue 15): headless Chromium, driven by selenium, against a
served gateway: search from the home page, open a dataset page whose preview shows what the
records API answers, send a 纠错 and (signed in) a 数据需求, and see the cockpit's charts
drawn — all under the gateway's Content-Security-Policy, loading nothing from another host.

Screenshots go to the test's folder, and also to OPENGATE_SCREENSHOTS_DIR when set (how
docs/screenshots/ is made). Needs Debian's chromium, chromium-driver and fonts-noto-cjk;
skipped without them unless OPENGATE_REQUIRE_BROWSER=1 (as .ci/run sets)."""

from __future__ import annotations

import os
import shutil
import subprocess
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import GatewayProcess
from tests.packages import write_package
from tests.participation.conftest import PERSON_FIELDS

PASSWORD = "a-long-password"


def _shoot(driver: Any, tmp_path: Path, name: str) -> None:
    """A full-page screenshot at the current width."""
    height = driver.execute_script("return document.documentElement.scrollHeight")
    width = driver.execute_script("return window.innerWidth")
    driver.set_window_size(max(width, 360), min(max(height + 120, 800), 4000))
    target = tmp_path / f"{name}.png"
    driver.save_screenshot(str(target))
    folder = os.environ.get("OPENGATE_SCREENSHOTS_DIR")
    if folder:
        shutil.copy(target, Path(folder) / f"{name}.png")


# ReDoc 2's side menu shows Redocly's logo from its CDN; the policy blocks the image and
# the component hides itself on the error (decision 0016). Nothing else may be refused.
REDOC_LOGO = "https://cdn.redoc.ly/redoc/logo-mini.svg"


def _clean_log(driver: Any, base: str) -> None:
    log = [e for e in driver.get_log("browser") if REDOC_LOGO not in e["message"]]
    violations = [e["message"] for e in log if "Content Security Policy" in e["message"]]
    assert not violations, violations
    severe = [e["message"] for e in log if e["level"] == "SEVERE" and "favicon" not in e["message"]]
    assert not severe, severe
    loaded = driver.execute_script(
        "return performance.getEntriesByType('resource').map(e => e.name)"
    )
    # (a resource the policy refused is listed too, with nothing transferred)
    assert all(url.startswith(base + "/") for url in loaded if url != REDOC_LOGO), loaded


@pytest.fixture
def portal(tmp_path: Path) -> Any:
    gateway = GatewayProcess(tmp_path)
    gateway.cli("migrate")
    packages = tmp_path / "pkgs"
    gateway.cli("datasets", "import", str(write_package(packages)))
    rows = [
        [
            i,
            "张三丰",
            f"3702021990010112{i:02d}",
            "13812345678",
            ["市南区", "崂山区"][i % 2],
            5000 + i,
        ]
        for i in range(1, 31)
    ]
    person = write_package(
        packages,
        name="social-insurance",
        title="社会保险参保缴费信息",
        open_type="conditional",
        fields=PERSON_FIELDS,
        rows=rows,
        publisher="市人力资源社会保障局",
        theme="社保就业",
        keywords=("社保", "参保"),
        zone="finance",
    )
    gateway.cli("datasets", "import", str(person))
    subprocess.run(
        [*gateway.command, "users", "create", "citizen", "--role", "developer", "--password-stdin"],
        env=gateway.env,
        input=PASSWORD + "\n",
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    )
    gateway.serve(workers=1)
    try:
        yield gateway
    finally:
        gateway.stop()


@pytest.mark.slow
def test_search_read_report_ask_and_see_the_cockpit(
    portal: GatewayProcess, browser: Any, tmp_path: Path
):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    wait = partial(WebDriverWait, browser, 30, poll_frequency=0.2)
    base = portal.url
    browser.set_window_size(1400, 1000)

    # search from the home page with a Chinese substring
    browser.get(base + "/")
    assert browser.find_element(By.TAG_NAME, "html").get_attribute("lang") == "zh-CN"
    _shoot(browser, tmp_path, "home")
    box = browser.find_element(By.ID, "q")
    box.send_keys("空气")
    box.submit()
    wait().until(lambda d: "/datasets?q=" in d.current_url)
    results = browser.find_elements(By.CSS_SELECTOR, ".results h3 a")
    assert [r.text for r in results] == ["空气质量读数"]

    # the dataset page: its preview is what the records API answers
    results[0].click()
    wait().until(lambda d: d.find_elements(By.ID, "preview-table"))
    api = httpx.get(f"{base}/api/v1/datasets/air-readings/records?limit=5", timeout=10).json()
    shown = [
        [cell.text for cell in row.find_elements(By.TAG_NAME, "td")]
        for row in browser.find_elements(By.CSS_SELECTOR, "#preview-table tbody tr")
    ]
    expected = [
        [
            "是" if v is True else "否" if v is False else "（空）" if v is None else str(v)
            for v in row.values()
        ]
        for row in api["data"]
    ]
    assert shown == expected
    _shoot(browser, tmp_path, "dataset")

    # 纠错, anonymous, through the form
    browser.set_window_size(1400, 1000)
    browser.find_element(By.ID, "fb-record").send_keys("3")
    browser.find_element(By.ID, "fb-message").send_keys("站点名称有误<script>alert(1)</script>")
    browser.find_element(By.CSS_SELECTOR, "#feedback button[type=submit]").click()
    notice = wait().until(lambda d: d.find_elements(By.CSS_SELECTOR, "#feedback .notice.ok"))
    assert "纠错已提交" in notice[0].text
    assert not browser.find_elements(By.CSS_SELECTOR, "#feedback-error")

    # a conditional dataset: the page says what the API says to this caller
    browser.get(base + "/datasets/social-insurance")
    refused = browser.find_element(By.ID, "preview-refused").text
    api_refusal = httpx.get(f"{base}/api/v1/datasets/social-insurance/records?limit=5", timeout=10)
    assert api_refusal.status_code == 403 and refused == api_refusal.json()["detail"]
    assert "张三丰" not in browser.page_source and "张**" not in browser.page_source

    # sign in and ask for data
    browser.get(base + "/login?next=/demands")
    browser.find_element(By.ID, "username").send_keys("citizen")
    browser.find_element(By.ID, "password").send_keys(PASSWORD)
    browser.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
    wait().until(lambda d: d.find_elements(By.ID, "d-title"))
    browser.find_element(By.ID, "d-title").send_keys("公交车辆实时位置")
    browser.find_element(By.ID, "d-description").send_keys("希望开放公交车辆实时位置，每 30 秒更新")
    browser.find_element(By.ID, "d-department").send_keys("市交通运输局")
    browser.find_element(By.CSS_SELECTOR, "#new-demand button[type=submit]").click()
    wait().until(lambda d: d.find_elements(By.CSS_SELECTOR, ".notice.ok"))
    listed = [h.text for h in browser.find_elements(By.CSS_SELECTOR, "#demand-list h3")]
    assert listed == ["公交车辆实时位置"]
    _shoot(browser, tmp_path, "demands")

    # the cockpit: every chart drawn on a canvas, the same figures in tables
    browser.set_window_size(1400, 1000)
    browser.get(base + "/cockpit")
    wait().until(
        lambda d: (
            len(d.find_elements(By.CSS_SELECTOR, "[data-chart][data-rendered=true] canvas")) == 6
        )
    )
    captions = [c.text for c in browser.find_elements(By.CSS_SELECTOR, "table.sr-table caption")]
    assert "按开放属性" in captions and "数据需求（供需对接）" in captions
    _shoot(browser, tmp_path, "cockpit")

    # a phone-sized window still reads: no horizontal scroll of the page itself
    browser.set_window_size(390, 844)
    browser.get(base + "/datasets/air-readings")
    overflow = browser.execute_script(
        "return document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 1
    _shoot(browser, tmp_path, "dataset-phone")
    _clean_log(browser, base)


@pytest.mark.slow
def test_redoc_renders_offline_under_the_policy(portal: GatewayProcess, browser: Any):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(portal.url + "/redoc")
    WebDriverWait(browser, 60, poll_frequency=0.25).until(
        lambda d: d.find_elements(By.CSS_SELECTOR, "h1, [role=navigation] li")
    )
    WebDriverWait(browser, 60, poll_frequency=0.25).until(
        lambda d: "opengate" in d.find_element(By.CSS_SELECTOR, "h1").text
    )
    heading = browser.find_element(By.CSS_SELECTOR, "h1").text
    assert "opengate" in heading
    assert "提交数据纠错" in browser.page_source  # the Chinese summaries of the reference
    _clean_log(browser, portal.url)
