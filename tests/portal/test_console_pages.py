"""The developer center over HTTP: every page needs a signed-in developer; my apps (the
secret shown once), applying for conditional data with the preview of each field, my
applications, grants, usage, 纠错 and demands; every form refused without its csrf_token,
changing nothing."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from tests.auth.helpers import PASSWORD, user
from tests.packages import import_conditional
from tests.portal.web import TOKEN, csrf_of, web_login

FIELDS = [
    {"name": "record_id", "type": "integer", "title": "记录编号", "level": 1},
    {"name": "person_name", "type": "string", "title": "姓名", "level": 3, "pii": "name"},
    {"name": "phone", "type": "string", "title": "联系电话", "level": 3, "pii": "phone"},
    {"name": "district", "type": "string", "title": "所属区市", "level": 1},
]
ROWS = [[1, "欧阳修远", "13912345678", "市南区"], [2, "李四", "13800001111", "市北区"]]
PAGES = [
    "/console",
    "/console/apps",
    "/console/apply",
    "/console/applications",
    "/console/grants",
    "/console/usage",
    "/console/feedback",
    "/console/demands",
    "/me/consents",
]
SECRET = re.compile(r'id="client-secret">([^<]+)<')
CLIENT_ID = re.compile(r'id="client-id">([^<]+)<')


def count(engine: Engine, table: str) -> int:
    with engine.connect() as conn:
        return conn.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar()


@pytest.fixture
def developer(client: TestClient, engine: Engine) -> TestClient:
    user(engine, "bank-dev", "developer")
    web_login(client, "bank-dev", PASSWORD)
    return client


def create_app(client: TestClient, name: str = "普惠授信系统") -> tuple[str, str]:
    page = client.post(
        "/console/apps", data={"name": name, "csrf_token": csrf_of(client, "/console/apps")}
    )
    assert page.status_code == 200, page.text
    return CLIENT_ID.search(page.text).group(1), SECRET.search(page.text).group(1)


def test_every_console_page_sends_a_stranger_to_login(client: TestClient):
    for path in PAGES:
        answer = client.get(path, follow_redirects=False)
        assert answer.status_code == 303, path
        assert answer.headers["location"] == f"/login?next={path}"


def test_console_pages_are_chinese_with_the_web_headers(developer: TestClient):
    for path in PAGES:
        page = developer.get(path)
        assert page.status_code == 200, path
        assert '<html lang="zh-CN">' in page.text
        assert page.headers["x-frame-options"] == "DENY"
        assert "script-src 'self'" in page.headers["content-security-policy"]
        assert page.headers["cache-control"] == "no-store"
        for url in re.findall(r'(?:src|href)="([^"]+)"', page.text):
            assert url.startswith(("/", "#")), (path, url)  # nothing from another host


def test_the_developer_center_is_for_developers(client: TestClient, engine: Engine):
    user(engine, "admin1", "data_admin")
    web_login(client, "admin1", PASSWORD)
    page = client.get("/console/apps")
    assert page.status_code == 403 and "开发者中心仅供开发者账号使用" in page.text


def test_an_app_is_created_with_its_secret_shown_once(developer: TestClient, engine: Engine):
    client_id, secret = create_app(developer)
    listing = developer.get("/console/apps")
    assert client_id in listing.text and secret not in listing.text
    token = developer.post(
        "/oauth/token", data={"grant_type": "client_credentials"}, auth=(client_id, secret)
    )
    assert token.status_code == 200
    rotated = developer.post(
        f"/console/apps/{client_id}/rotate", data={"csrf_token": csrf_of(developer, "/console")}
    )
    new_secret = SECRET.search(rotated.text).group(1)
    assert new_secret != secret
    old = developer.post(
        "/oauth/token", data={"grant_type": "client_credentials"}, auth=(client_id, secret)
    )
    assert old.status_code == 401
    # an empty name is a Chinese message and no app
    before = count(engine, "apps")
    bad = developer.post(
        "/console/apps", data={"name": " ", "csrf_token": csrf_of(developer, "/console")}
    )
    assert bad.status_code == 400 and "应用名称需为 1–100 个字符" in bad.text
    assert count(engine, "apps") == before


def test_private_key_jwt_keys_are_set_and_checked(developer: TestClient, engine: Engine):
    from cryptography.hazmat.primitives.asymmetric import ec
    from joserfc.jwk import ECKey

    client_id, _secret = create_app(developer)
    token = csrf_of(developer, "/console/apps")
    bad = developer.post(
        f"/console/apps/{client_id}/keys", data={"jwks": "{not json", "csrf_token": token}
    )
    assert bad.status_code == 400 and "JWKS 须为 JSON 格式" in bad.text
    private = ECKey.import_key(ec.generate_private_key(ec.SECP256R1()))
    leaked = developer.post(
        f"/console/apps/{client_id}/keys",
        data={"jwks": json.dumps({"keys": [private.as_dict(private=True)]}), "csrf_token": token},
    )
    assert leaked.status_code == 400 and "jwks 只能包含公钥" in leaked.text
    public = json.dumps({"keys": [private.as_dict(private=False)]})
    saved = developer.post(
        f"/console/apps/{client_id}/keys",
        data={"jwks": public, "csrf_token": token},
        follow_redirects=False,
    )
    assert saved.status_code == 303
    page = developer.get(saved.headers["location"])
    assert "private_key_jwt" in page.text and "密钥设置已保存" in page.text
    with engine.connect() as conn:
        stored = conn.execute(sa.text("SELECT jwks FROM apps")).scalar()
    stored = json.loads(stored) if isinstance(stored, str) else stored
    assert "d" not in stored["keys"][0]  # the public key only


def test_apply_with_a_preview_then_see_the_reviewers_conditions(
    developer: TestClient, engine: Engine, packages: Path
):
    import_conditional(engine, packages, fields=FIELDS, rows=ROWS)
    client_id, secret = create_app(developer)
    form = developer.get("/console/apply", params={"dataset": "social-insurance"})
    assert form.status_code == 200
    # the preview: invented values through the API's own masks, never a row of the dataset
    assert "张**" in form.text and "138****5678" in form.text
    assert "欧阳修远" not in form.text and "13912345678" not in form.text
    assert "社会保险参保缴费信息" in form.text
    token = TOKEN.search(form.text).group(1)
    submitted = developer.post(
        "/console/applications",
        data={
            "csrf_token": token,
            "dataset_id": "social-insurance",
            "client_id": client_id,
            "fields": ["record_id", "person_name", "district"],
            "modes": ["records"],
            "purpose": "小微企业授信前核验参保情况",
            "duration_days": "90",
        },
        follow_redirects=False,
    )
    assert submitted.status_code == 303
    mine = developer.get(submitted.headers["location"])
    assert "待审核" in mine.text and "小微企业授信前核验参保情况" in mine.text
    assert "record_id、person_name、district" in mine.text

    user(developer.app.state.engine, "admin1", "data_admin")
    admin = developer.post("/auth/login", json={"username": "admin1", "password": PASSWORD})
    bearer = {"Authorization": f"Bearer {admin.json()['access_token']}"}
    application_id = developer.get("/api/v1/admin/applications", headers=bearer).json()["data"][0][
        "id"
    ]
    approved = developer.post(
        f"/api/v1/admin/applications/{application_id}/approve",
        json={
            "quotas": {"requests_per_day": 50, "rows_per_day": 500},
            "fields": ["record_id", "district"],
        },
        headers=bearer,
    )
    assert approved.status_code == 200, approved.text
    mine = developer.get("/console/applications")
    assert "已批准" in mine.text and "审核人员批准的条件" in mine.text
    assert "requests_per_day 50" in mine.text

    app_token = developer.post(
        "/oauth/token", data={"grant_type": "client_credentials"}, auth=(client_id, secret)
    ).json()["access_token"]
    records = developer.get(
        "/api/v1/datasets/social-insurance/records",
        headers={"Authorization": f"Bearer {app_token}"},
    )
    assert records.status_code == 200
    grants = developer.get("/console/grants")
    assert "生效中" in grants.text and "今日调用" in grants.text
    assert re.search(r"<td>每日请求</td><td>1</td><td>50</td>", grants.text)
    assert re.search(r"<td>每日行数</td><td>2</td><td>500</td>", grants.text)
    usage = developer.get("/console/usage")
    assert "共 1 次" in usage.text


def test_a_bad_application_is_a_chinese_message_and_nothing_stored(
    developer: TestClient, engine: Engine, packages: Path
):
    import_conditional(engine, packages, fields=FIELDS, rows=ROWS)
    client_id, _secret = create_app(developer)
    token = csrf_of(developer, "/console/apply")
    base = {
        "csrf_token": token,
        "dataset_id": "social-insurance",
        "client_id": client_id,
        "fields": ["record_id"],
        "modes": ["records"],
        "purpose": "小微企业授信",
        "duration_days": "90",
    }
    bad = [
        ({"purpose": "x"}, "请说明使用目的"),
        ({"modes": []}, "请至少选择一种使用方式"),
        ({"fields": []}, "请至少选择一个字段"),
        ({"duration_days": "many"}, "申请期限须为 1–3650"),
        ({"duration_days": "0"}, "申请期限须为 1–3650"),
        ({"client_id": "og_someone_else"}, "请选择您自己的应用"),
        ({"modes": ["everything"]}, "modes"),
        ({"purpose": "<script>alert('x')</script>"}, "&lt;script&gt;"),
    ]
    for change, message in bad:
        answer = developer.post("/console/applications", data={**base, **change})
        if change.get("purpose", "").startswith("<script"):
            # a purpose is free text: stored and shown escaped, never as markup
            assert answer.status_code in (200, 303)
            page = developer.get("/console/applications")
            assert message in page.text and "<script>alert" not in page.text
            continue
        assert answer.status_code == 400, change
        assert message in answer.text, (change, answer.text[-800:])
    assert count(engine, "applications") == 1


def test_my_feedback_and_demands_show_their_status(developer: TestClient, engine: Engine):
    made = developer.post(
        "/api/v1/demands",
        json={
            "title": "公交实时到站数据",
            "description": "希望开放公交车辆实时位置",
            "department": "市交通运输局",
        },
        headers={
            "Authorization": "Bearer "
            + developer.post(
                "/auth/login", json={"username": "bank-dev", "password": PASSWORD}
            ).json()["access_token"]
        },
    )
    assert made.status_code == 201, made.text
    page = developer.get("/console/demands")
    assert "公交实时到站数据" in page.text and "征集中" in page.text
    other = TestClient(developer.app)
    user(engine, "someone", "developer")
    web_login(other, "someone", PASSWORD)
    assert "公交实时到站数据" not in other.get("/console/demands").text
    assert "还没有提交过纠错" in other.get("/console/feedback").text


FORMS = {
    "login": ("/login", {"username": "bank-dev", "password": PASSWORD}),
    "register": (
        "/register",
        {
            "username": "new-dev",
            "password": "long enough pass",
            "password2": "long enough pass",
            "email": "n@example.com",
        },
    ),
    "logout": ("/logout", {}),
    "create app": ("/console/apps", {"name": "应用"}),
    "rotate": ("/console/apps/{client_id}/rotate", {}),
    "keys": ("/console/apps/{client_id}/keys", {"jwks_uri": ""}),
    "apply": (
        "/console/applications",
        {
            "dataset_id": "social-insurance",
            "client_id": "{client_id}",
            "fields": "record_id",
            "modes": "records",
            "purpose": "小微企业授信",
            "duration_days": "30",
        },
    ),
    "withdraw": ("/me/consents/{consent_id}/withdraw", {}),
}


def snapshot(engine: Engine) -> dict:
    with engine.connect() as conn:
        return {
            table: conn.execute(sa.text(f"SELECT * FROM {table} ORDER BY 1")).all()
            for table in ("web_sessions", "users", "apps", "applications", "consents")
        }


@pytest.mark.parametrize("form", sorted(FORMS))
def test_each_form_without_a_valid_csrf_token_is_403_and_changes_nothing(
    developer: TestClient, engine: Engine, packages: Path, form: str
):
    from sqlmodel import Session

    from auth.consents import record_approval

    import_conditional(engine, packages, fields=FIELDS, rows=ROWS)
    client_id, _secret = create_app(developer)
    with Session(engine) as db:
        uid = db.exec(sa.text("SELECT id FROM users WHERE username = 'bank-dev'")).scalar()
        consent = record_approval(
            db,
            user_id=uid,
            client_id=client_id,
            dataset_id="social-insurance",
            purpose="核验",
            scope="dataset:social-insurance:self",
            duration_days=30,
        )
    path, data = FORMS[form]
    path = path.format(client_id=client_id, consent_id=consent.id)
    data = {k: v.format(client_id=client_id) for k, v in data.items()}
    # a valid token, but of another person's session
    stranger = TestClient(developer.app)
    user(engine, "stranger", "developer")
    web_login(stranger, "stranger", PASSWORD)
    foreign = TOKEN.search(stranger.get("/console/apps").text).group(1)
    before = snapshot(engine)
    for token in (None, "", "not-the-token", foreign):
        sent = dict(data) if token is None else {**data, "csrf_token": token}
        answer = developer.post(path, data=sent, follow_redirects=False)
        assert answer.status_code == 403, (form, token, answer.text[-300:])
        assert "csrf_token" in answer.text and '<html lang="zh-CN">' in answer.text
    assert snapshot(engine) == before, form


def test_an_application_registers_its_scenario_and_approval_publishes_it(
    developer: TestClient, engine: Engine, packages: Path
):
    import_conditional(engine, packages, fields=FIELDS, rows=ROWS)
    client_id, _secret = create_app(developer)
    form = developer.get("/console/apply", params={"dataset": "social-insurance"})
    assert "登记新的应用场景" in form.text and "产业发展" in form.text
    base = {
        "csrf_token": TOKEN.search(form.text).group(1),
        "dataset_id": "social-insurance",
        "client_id": client_id,
        "fields": ["record_id", "district"],
        "modes": ["records"],
        "purpose": "核验惠民补贴发放对象的参保情况",
        "duration_days": "90",
    }
    bad = [
        ({"scenario_id": "new", "scenario_name": ""}, "场景名称"),
        ({"scenario_id": "new", "scenario_name": "补贴核验", "scenario_category": "x"}, "场景类别"),
        ({"scenario_id": "abc"}, "请从列表中选择应用场景"),
        ({"scenario_id": "424242"}, "应用场景 424242 不存在"),
        ({"product_id": "7"}, "数据产品 7 不存在"),
    ]
    for change, message in bad:
        answer = developer.post("/console/applications", data={**base, **change})
        assert answer.status_code == 400, change
        assert message in answer.text, (change, answer.text[-800:])
    assert count(engine, "applications") == 0 and count(engine, "scenarios") == 0

    submitted = developer.post(
        "/console/applications",
        data={
            **base,
            "scenario_id": "new",
            "scenario_name": "惠民补贴发放核验",
            "scenario_category": "public_welfare",
        },
        follow_redirects=False,
    )
    assert submitted.status_code == 303, submitted.text
    mine = developer.get(submitted.headers["location"])
    assert "惠民补贴发放核验（随申请审核）" in mine.text
    assert developer.get("/api/v1/scenarios").json()["data"] == []

    user(engine, "admin1", "data_admin")
    admin = developer.post("/auth/login", json={"username": "admin1", "password": PASSWORD})
    bearer = {"Authorization": f"Bearer {admin.json()['access_token']}"}
    (pending,) = developer.get("/api/v1/admin/applications", headers=bearer).json()["data"]
    approved = developer.post(
        f"/api/v1/admin/applications/{pending['id']}/approve", json={}, headers=bearer
    )
    assert approved.status_code == 200, approved.text
    (public,) = developer.get("/api/v1/scenarios").json()["data"]
    assert public["name"] == "惠民补贴发放核验" and public["category"] == "public_welfare"
    assert approved.json()["scenario_id"] == public["id"]
    assert "惠民补贴发放核验（已批准）" in developer.get("/console/applications").text
