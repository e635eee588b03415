"""The public pages over HTTP: every page in Chinese with the §10 headers and nothing from
another host; search with Chinese substrings and facets; the dataset page's dictionary
(computed by the access decision), preview (through the records API, audited), downloads
and examples; no count of a hosted table on the page path."""

from __future__ import annotations

import json
import re

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from tests.participation.conftest import World
from tests.portal.web import CSS_URL, foreign, links_of, web_login

PAGES = [
    "/",
    "/datasets",
    "/datasets?q=社保",
    "/datasets?theme=生态环境&open_type=unconditional",
    "/datasets?page=2",
    "/datasets/air-readings",
    "/datasets/social-insurance",
    "/demands",
    "/demands?status=open",
    "/cockpit",
    "/zones",
    "/products",
    "/redoc",
    "/docs",
    "/login",
    "/register",
]


def check_page(world: World, url: str) -> str:
    answer = world.client.get(url)
    assert answer.status_code == 200, (url, answer.text[:500])
    assert answer.headers["content-type"].startswith("text/html")
    assert '<html lang="zh-CN">' in answer.text, url
    policy = answer.headers["content-security-policy"]
    assert (
        "script-src 'self'" in policy
        and "unsafe-inline" not in policy.split("script-src")[1].split(";")[0]
    )
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert answer.headers["x-frame-options"] == "DENY"
    assert answer.headers["referrer-policy"] == "same-origin"
    links = links_of(answer.text)
    assert not [u for u in links.urls if foreign(u)], (url, links.urls)
    for style in links.styles:
        assert not [u for u in CSS_URL.findall(style) if foreign(u)], (url, style)
    # no inline script: every <script> either loads from the gateway or is a data block
    for tag in re.findall(r"<script[^>]*>", answer.text):
        assert 'src="/' in tag or 'type="application/json"' in tag, (url, tag)
    for sheet in [u for u in links.urls if u.endswith(".css")]:
        css = world.client.get(sheet)
        assert css.status_code == 200, sheet
        assert not [u for u in CSS_URL.findall(css.text) if foreign(u)], sheet
    return answer.text


def test_every_public_page_walks_clean(world: World):
    for url in PAGES:
        check_page(world, url)


def test_every_page_walks_clean_signed_in(world: World):
    web_login(world.client, "dev-a")
    for url in PAGES:
        if url in ("/login", "/register"):  # a signed-in account is sent on from these
            continue
        page = check_page(world, url)
        if url not in ("/redoc", "/docs"):  # the API references have no site header
            assert "dev-a" in page


def test_search_by_a_chinese_substring_and_facets(world: World):
    page = world.client.get("/datasets?q=参保").text
    assert "社会保险参保缴费信息" in page and "空气质量读数" not in page
    assert "共 <strong>1</strong> 个数据集" in page
    facet = world.client.get("/datasets?open_type=unconditional").text
    assert "空气质量读数" in facet and "社会保险参保缴费信息" not in facet
    # closed datasets are not listed to the public
    assert "不予开放登记簿" not in world.client.get("/datasets").text
    assert world.client.get("/datasets?level=9").status_code == 400
    assert world.client.get("/datasets?q=" + "长" * 101).status_code == 400


def test_the_dictionary_is_the_access_decision(world: World):
    page = world.client.get("/datasets/social-insurance").text
    row = re.search(r"<code>person_name</code>.*?</tr>", page, re.S).group(0)
    cells = re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)
    # after the name cell: title, type, level, pii, then the three callers
    assert cells[0] == "姓名" and "3 级 敏感" in cells[2] and cells[3] == "姓名"
    assert cells[4] == "不提供（需授权）"  # anonymous
    assert "mask_name" in cells[5]  # a granted app, default terms
    assert cells[6] == "原样提供"  # the person the row is about
    id_row = re.search(r"<code>id_number</code>.*?</tr>", page, re.S).group(0)
    assert "pseudonym" in id_row and "主体标识" in id_row


def test_the_preview_is_the_records_api(world: World, engine: Engine):
    page = world.client.get("/datasets/air-readings").text
    api = world.client.get("/api/v1/datasets/air-readings/records?limit=5").json()
    table = re.search(r'<table id="preview-table">.*?</table>', page, re.S).group(0)
    first = [re.sub(r"<[^>]+>", "", c) for c in re.findall(r"<td>(.*?)</td>", table)][:8]
    expected = [
        "是" if v is True else "否" if v is False else str(v) for v in api["data"][0].values()
    ]
    assert first == expected
    assert "/api/v1/datasets/air-readings/export?format=csv" in page
    with engine.connect() as conn:
        events = conn.execute(
            sa.text(
                "SELECT action, resource, row_count, outcome FROM audit_events "
                "WHERE action = 'data.records'"
            )
        ).all()
    assert ("data.records", "datasets/air-readings", 5, "allowed") in [tuple(e) for e in events]


def test_conditional_data_is_not_previewed_without_a_grant(world: World):
    for signed_in in (False, True):
        if signed_in:
            web_login(world.client, "dev-a")
        page = world.client.get("/datasets/social-insurance").text
        assert 'id="preview-refused"' in page and "preview-table" not in page
        assert "export?format=csv" not in page
        assert "dataset:social-insurance:records" in page  # the token step of the example


def test_a_closed_dataset_page_is_only_for_a_data_admin(world: World):
    assert world.client.get("/datasets/sealed-registry").status_code == 404
    assert world.client.get("/datasets/no-such").status_code == 404
    web_login(world.client, "admin")
    page = world.client.get("/datasets/sealed-registry")
    assert page.status_code == 200 and "不予开放" in page.text
    assert "preview-table" not in page.text  # no data API at all


def test_the_page_path_never_counts_a_hosted_table(world: World, engine: Engine):
    seen: list[str] = []

    def record(_conn, _cursor, statement, *_args) -> None:
        seen.append(statement.lower())

    sa.event.listen(engine, "before_cursor_execute", record)
    try:
        for url in ("/", "/datasets", "/datasets/air-readings", "/datasets/social-insurance"):
            assert world.client.get(url).status_code == 200
    finally:
        sa.event.remove(engine, "before_cursor_execute", record)
    counting = [s for s in seen if "count(" in s and "data_" in s]
    assert counting == []
    # the listener saw the pages' own reads (the records path runs some statements on the
    # driver's cursor, unseen here; it never counts either: catalog/statements.py)
    assert any("from datasets" in s for s in seen)


def test_the_cockpit_has_the_figures_as_tables_and_as_chart_data(world: World):
    for _ in range(3):
        world.client.get("/api/v1/datasets/air-readings/records?limit=1")
    world.client.app.state.overview.clear()  # type: ignore[attr-defined]
    page = world.client.get("/cockpit").text
    data = json.loads(
        re.search(
            r'<script type="application/json" id="cockpit-data">(.*?)</script>', page, re.S
        ).group(1)
    )
    assert {"open_type", "level", "theme", "department", "requests", "top"} <= set(data)
    assert data["top"][0] == {"name": "空气质量读数", "value": 3}
    assert sum(d["value"] for d in data["requests"]) == 3
    assert "<caption>按开放属性</caption>" in page and "<caption>每日数据调用量</caption>" in page
    overview = world.client.get("/api/v1/stats/overview").json()
    assert overview["datasets"]["by_open_type"] == {
        "unconditional": 1,
        "conditional": 1,
        "closed": 1,
    }
    assert overview["requests"]["total"] == 3 and len(overview["requests"]["by_day"]) == 30
    text = json.dumps(overview, ensure_ascii=False)
    assert "client" not in text and "dev-a" not in text and "sealed-registry" not in text


@pytest.mark.parametrize(
    "url",
    [
        "/static/portal/cockpit.js",
        "/static/portal/vendor/echarts/echarts.min.js",
        "/redoc-assets/redoc.standalone.js",
    ],
)
def test_scripts_are_served_by_the_gateway(world: World, url: str):
    answer = world.client.get(url)
    assert answer.status_code == 200 and "javascript" in answer.headers["content-type"]
