"""The auditor's bar (issue 16), in a real browser: headless Chromium signs in as an
auditor, finds every access of one app to one dataset in one month with the search form,
opens one event, signs a checkpoint from its page, downloads its inclusion proof and the
public key, runs the chain check, and opens the charts (drawn by the vendored ECharts under
the page's CSP); the downloaded proof is then checked offline with `opengate audit
verify-proof`, from an empty folder with no database.

With OPENGATE_SCREENSHOTS=<folder> each auditor page is saved there (docs/screenshots/)."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import Engine

from tests.audit.helpers import opengate
from tests.auth.helpers import PASSWORD, user
from tests.gateway.test_docs_browser import browser  # noqa: F401 (a fixture)
from tests.portal.test_audit_console import world

SHOTS = os.environ.get("OPENGATE_SCREENSHOTS")


def _wait_for(path: Path, timeout: float = 15) -> Path:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and path.stat().st_size > 0:
            return path
        time.sleep(0.1)
    raise AssertionError(f"{path.name} was not downloaded")


def _shot(driver: Any, name: str) -> None:
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        height = driver.execute_script("return document.body.scrollHeight")
        driver.set_window_size(1280, min(max(height + 40, 800), 4000))
        driver.save_screenshot(str(Path(SHOTS) / f"audit-{name}.png"))


@pytest.mark.slow
def test_an_auditor_finds_verifies_and_proves_in_the_browser(
    engine: Engine,
    live: Any,
    browser: Any,  # noqa: F811 (the fixture imported above)
    settings: Any,
    tmp_path: Path,
):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    if engine.dialect.name != "sqlite":
        pytest.skip("one backend is enough for the browser; test_audit_console runs on both")
    seqs = world(engine)
    user(engine, "auditor-browser", "auditor")
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    browser.execute_cdp_cmd(
        "Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)}
    )
    wait = WebDriverWait(browser, 20)

    browser.get(f"{live.url}/login?next=/audit")
    browser.find_element(By.ID, "username").send_keys("auditor-browser")
    browser.find_element(By.ID, "password").send_keys(PASSWORD)
    browser.find_element(By.CSS_SELECTOR, "form button[type=submit].btn").click()
    time.sleep(3)
    assert browser.current_url.endswith("/audit"), (browser.current_url, browser.page_source[-800:])

    # every access of og_bank to enterprise-credit in October 2026
    for field, value in (
        ("f-dataset", "enterprise-credit"),
        ("f-client_id", "og_bank"),
        ("f-since", "2026-10-01"),
        ("f-until", "2026-10-31"),
    ):
        browser.find_element(By.ID, field).send_keys(value)
    browser.find_element(By.ID, "search-submit").click()
    wait.until(lambda d: "client_id=og_bank" in d.current_url)
    links = browser.find_elements(By.CSS_SELECTOR, "a.event-link")
    assert sorted(int(a.text) for a in links) == sorted(seqs["target"])
    assert "符合条件的事件共 4 条" in browser.find_element(By.ID, "matched").text
    _shot(browser, "search")

    # one event: its hash, then a checkpoint now, then its proof
    chosen = max(seqs["target"])
    browser.find_element(By.LINK_TEXT, str(chosen)).click()
    wait.until(lambda d: d.find_elements(By.ID, "event-hash"))
    assert "一致" in browser.find_element(By.ID, "hash-check").text
    browser.find_element(By.ID, "sign-now").click()
    wait.until(lambda d: d.find_elements(By.ID, "proof-download"))
    _shot(browser, "event")
    browser.find_element(By.ID, "proof-download").click()
    proof = _wait_for(downloads / f"audit-proof-{chosen}.json")

    # the chain check, and the public key to check the proof with
    browser.find_element(By.LINK_TEXT, "链校验与检查点").click()
    browser.find_element(By.ID, "run-verify").click()
    wait.until(lambda d: d.find_elements(By.ID, "verify-result"))
    assert browser.find_element(By.ID, "verify-result").text.startswith("校验通过")
    fingerprint = browser.find_element(By.ID, "key-fingerprint").text
    assert len(fingerprint.replace(" ", "")) == 64
    _shot(browser, "verify")
    browser.find_element(By.ID, "public-key-download").click()
    key = _wait_for(downloads / "audit-public.pem")

    # the charts draw under the CSP, with nothing from another host
    browser.get(f"{live.url}/audit/charts?since=2026-10-01&until=2026-10-31")
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "[data-rendered='1']")) == 5)
    assert browser.find_elements(By.CSS_SELECTOR, "#chart-per-day svg")
    assert "集中拒绝" in browser.find_element(By.ID, "anomalies").text
    _shot(browser, "charts")
    browser.get(f"{live.url}/audit/export")
    _shot(browser, "export")
    problems = [
        e["message"]
        for e in browser.get_log("browser")
        if (e["level"] == "SEVERE" and "favicon.ico" not in e["message"])
        or "Content Security Policy" in e["message"]
    ]
    assert not problems, problems
    hosts = browser.execute_script(
        "return performance.getEntriesByType('resource').map(e => new URL(e.name).host)"
    )
    assert set(hosts) <= {live.url.removeprefix("http://")}

    # offline: the downloaded proof against the downloaded key, no database
    empty = tmp_path / "offline"
    empty.mkdir()
    offline = settings.model_copy(update={"database_url": "sqlite:///nowhere/none.db"})
    checked = opengate(
        "audit", "verify-proof", str(proof), "--public-key", str(key), settings=offline, cwd=empty
    )
    assert checked.returncode == 0, checked.stderr
    assert checked.stdout.startswith(f"ok: event {chosen} is in the tree of")
