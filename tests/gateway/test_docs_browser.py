"""`/docs` renders in a real browser (issue 13): headless Chromium, driven by selenium,
loads the page of a served gateway and lists every operation of `/openapi.json`, under the
gateway's own Content-Security-Policy, loading nothing from another host.

Needs Debian's `chromium` and `chromium-driver` (and `fonts-noto-cjk` for the Chinese
text); skipped without them unless OPENGATE_REQUIRE_BROWSER=1, as `.ci/run` sets."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import GatewayProcess
from tests.packages import write_package

CHROMIUM = os.environ.get("OPENGATE_TEST_CHROMIUM", "/usr/bin/chromium")
DRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
REQUIRE = os.environ.get("OPENGATE_REQUIRE_BROWSER") == "1"
METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1280,2400",
]


def _missing() -> str | None:
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -e '.[dev]')"
    for path in (CHROMIUM, DRIVER):
        if not os.access(path, os.X_OK):
            return f"{path} is missing (apt-get install chromium chromium-driver fonts-noto-cjk)"
    return None


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    missing = _missing()
    if missing:
        if REQUIRE:
            pytest.fail(f"OPENGATE_REQUIRE_BROWSER=1 but {missing}")
        pytest.skip(missing)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in [*FLAGS, f"--user-data-dir={tmp_path / 'profile'}"]:
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.mark.slow
def test_docs_list_every_operation_under_the_policy(tmp_path: Path, browser: Any):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    gateway = GatewayProcess(tmp_path)
    gateway.cli("migrate")
    gateway.cli("datasets", "import", str(write_package(tmp_path / "pkgs")))
    try:
        gateway.serve(workers=1)
        document = httpx.get(f"{gateway.url}/openapi.json", timeout=10).json()
        operations = [
            (method.upper(), path)
            for path, item in document["paths"].items()
            for method in item
            if method in METHODS
        ]
        assert len(operations) >= 40  # the whole API, not a fragment
        policy = httpx.get(f"{gateway.url}/docs", timeout=10).headers["content-security-policy"]
        assert "script-src 'self'" in policy and "unsafe-inline" not in policy

        browser.get(f"{gateway.url}/docs")

        def listed(driver: Any) -> list[Any]:
            return driver.find_elements(By.CSS_SELECTOR, ".opblock .opblock-summary")

        # Swagger UI fetches /openapi.json and renders asynchronously: wait for the list.
        WebDriverWait(browser, 60, poll_frequency=0.25).until(
            lambda d: (
                len(listed(d)) >= len(operations)
                or d.find_elements(By.CSS_SELECTOR, ".errors-wrapper, .loading-container .errors")
            )
        )
        browser.save_screenshot(str(tmp_path / "docs.png"))
        errors = browser.find_elements(By.CSS_SELECTOR, ".errors-wrapper")
        assert not errors, errors[0].text
        shown = set()
        for summary in listed(browser):
            method = summary.find_element(By.CSS_SELECTOR, ".opblock-summary-method").text
            path = summary.find_element(By.CSS_SELECTOR, ".opblock-summary-path").get_attribute(
                "data-path"
            )
            shown.add((method, path))
        assert shown == set(operations)
        assert "opengate" in browser.find_element(By.CSS_SELECTOR, ".info .title").text
        # An operation opens, its parameters and schemas render (still under the policy).
        listed(browser)[0].click()
        WebDriverWait(browser, 30, poll_frequency=0.25).until(
            lambda d: d.find_elements(By.CSS_SELECTOR, ".opblock.is-open .parameters, .responses")
        )

        log = browser.get_log("browser")
        violations = [e["message"] for e in log if "Content Security Policy" in e["message"]]
        assert not violations, violations
        severe = [e["message"] for e in log if e["level"] == "SEVERE"]
        assert not severe, severe
        loaded = browser.execute_script(
            "return performance.getEntriesByType('resource').map(e => e.name)"
        )
        assert loaded and all(url.startswith(gateway.url + "/") for url in loaded), loaded
    finally:
        gateway.stop()
