"""The package upload and the usage page in headless Chromium: upload.js sends the form
with XMLHttpRequest (progress bar), follows the import to the dataset's page, and shows a
bad package's error in place; /admin/usage draws its charts with the vendored ECharts.
All under the gateway's CSP, nothing loaded from another host."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import Engine

from tests.auth.helpers import PASSWORD, user
from tests.conftest import LiveServer
from tests.packages import STATION_FIELDS, write_package
from tests.portal.test_admin_browser import loaded, sign_in
from tests.portal.test_admin_upload import zipped
from tests.portal.test_console_browser import clean_log, submit

pytestmark = pytest.mark.slow


def test_upload_with_progress_then_usage_charts(
    engine: Engine, live: LiveServer, browser: Any, tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    user(engine, "publisher", "data_admin")
    good = tmp_path / "good.zip"
    good.write_bytes(zipped(write_package(tmp_path / "good")))
    fields = [dict(f, level=9) if f["name"] == "aqi" else f for f in STATION_FIELDS]
    bad = tmp_path / "bad.zip"
    bad.write_bytes(zipped(write_package(tmp_path / "bad", fields=fields)))

    sign_in(browser, live, "/admin/datasets/upload", "publisher", PASSWORD)
    # A bad package: the importer's message appears on the same page (no navigation).
    browser.find_element(By.ID, "package").send_keys(str(bad))
    submit(browser, "上传并导入", navigates=False)
    error = browser.find_element(By.ID, "upload-error")
    WebDriverWait(browser, 15).until(lambda _: error.is_displayed())
    assert "数据包有误，未导入任何数据：" in error.text and "level" in error.text
    assert browser.current_url == f"{live.url}/admin/datasets/upload"
    # The progress bar followed the upload to its end (XMLHttpRequest upload events).
    assert browser.find_element(By.ID, "upload-progress").get_attribute("value") == "100"

    browser.find_element(By.ID, "package").send_keys(str(good))
    submit(browser, "上传并导入", navigates=False)
    WebDriverWait(browser, 15).until(lambda d: "imported=1" in d.current_url)
    assert browser.current_url == f"{live.url}/admin/datasets/air-readings?imported=1"
    assert "已导入版本 v1" in loaded(browser, "p.notice").text
    clean_log(browser, live.url)

    browser.get(f"{live.url}/admin/usage")
    loaded(browser, "#chart-app-requests canvas")
    assert browser.find_element(By.ID, "fig-datasets").text == "1"
    clean_log(browser, live.url)
