"""`/admin/usage` over HTTP: the cockpit's figures and the per-app breakdown (requests and
rows per app per day, from the audit log) against calls made through the API; the page's
chart data block carries the same figures; other roles are refused."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from sqlmodel import Session

from auth.apps import create_app
from auth.users import create_user
from catalog.importer import import_package
from participation.app_usage import per_app
from tests.auth.helpers import PASSWORD
from tests.packages import write_package
from tests.portal.admin_setup import signed_in

DATA = re.compile(r'<script type="application/json" id="usage-data">(.*?)</script>', re.S)


def app_token(client: TestClient, engine: Engine, name: str) -> tuple[str, str]:
    with Session(engine) as db:
        username = f"dev{len(name)}{ord(name[0])}"
        dev = create_user(db, username=username, password=PASSWORD, role="developer")
        app, secret = create_app(db, owner=dev, name=name, redirect_uris=[])
        client_id = app.client_id
    answer = client.post(
        "/oauth/token", data={"grant_type": "client_credentials"}, auth=(client_id, secret)
    )
    return client_id, answer.json()["access_token"]


def test_usage_page_breaks_the_cockpits_figures_down_per_app(
    client: TestClient, engine: Engine, packages: Path
) -> None:
    import_package(engine, write_package(packages))
    first, first_token = app_token(client, engine, "空气质量小程序")
    second, second_token = app_token(client, engine, "环保监测平台")
    url = "/api/v1/datasets/air-readings/records"
    for _ in range(3):
        got = client.get(f"{url}?limit=5", headers={"Authorization": f"Bearer {first_token}"})
        assert got.status_code == 200 and len(got.json()["data"]) == 5
    got = client.get(f"{url}?limit=7", headers={"Authorization": f"Bearer {second_token}"})
    assert len(got.json()["data"]) == 7
    assert client.get(f"{url}?limit=2").status_code == 200  # anonymous open-data read
    admin = signed_in(client, engine, "data_admin")
    page = admin.get("/admin/usage")
    assert page.status_code == 200 and page.headers["cache-control"] == "no-store"
    overview = client.get("/api/v1/stats/overview").json()
    assert overview["requests"]["total"] == 5
    text = page.text
    assert '<span class="count" id="fig-requests">5</span>' in text
    assert f'<span class="count" id="fig-datasets">{overview["datasets"]["total"]}</span>' in text
    assert '<span class="count" id="fig-rows">24</span>' in text
    table = text.split('id="usage-apps"')[1].split("</table>")[0]
    rows = re.findall(r"<tr><td>(.*?)</td><td>(.*?)</td><td>(\d+)</td><td>(\d+)</td></tr>", table)
    assert [(r[0], r[2], r[3]) for r in rows] == [
        ("空气质量小程序", "3", "15"),
        ("环保监测平台", "1", "7"),
        ("（未使用应用）", "1", "2"),
    ]
    assert f"<code>{first}</code>" in rows[0][1] and f"<code>{second}</code>" in rows[1][1]
    assert "<td>5</td><td>24</td>" in table.split("<tfoot>")[1]
    charts = json.loads(DATA.search(text).group(1))
    today = datetime.now(UTC).strftime("%m-%d")
    assert len(charts["days"]) == 30 and charts["days"][-1] == today
    assert [a["requests"][-1] for a in charts["apps"]] == [3, 1, 1]
    assert [sum(a["rows"]) for a in charts["apps"]] == [15, 7, 2]
    assert "admin-usage.js" in text and "vendor/echarts/echarts.min.js" in text


def test_days_outside_the_window_are_not_counted(
    client: TestClient, engine: Engine, packages: Path
) -> None:
    import_package(engine, write_package(packages))
    _, token = app_token(client, engine, "空气质量小程序")
    client.get(
        "/api/v1/datasets/air-readings/records?limit=4",
        headers={"Authorization": f"Bearer {token}"},
    )
    later = per_app(engine, now=datetime(2099, 1, 1, tzinfo=UTC))
    assert later["days"][0] == "2098-12-03" and later["days"][-1] == "2099-01-01"
    assert (later["apps"], later["requests"], later["rows"]) == ([], 0, 0)
    now = per_app(engine)
    assert now["requests"] == 1 and now["rows"] == 4


def test_usage_page_is_for_data_admins_only(client: TestClient, engine: Engine) -> None:
    assert client.get("/admin/usage", follow_redirects=False).status_code == 303
    for role in ("developer", "auditor", "sysadmin"):
        assert signed_in(client, engine, role).get("/admin/usage").status_code == 403
