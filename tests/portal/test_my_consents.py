"""个人授权 for people: the consent page names the app's organization, lists the fields the
app will see and the dataset's title (not its id), explains refusals in Chinese; approving
again extends the one consent of that app × dataset; 我的授权 lists it and withdraws it with
one click, which stops the app's token at once."""

from __future__ import annotations

from functools import partial
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import sqlalchemy as sa
from authlib.integrations.httpx_client import OAuth2Client
from sqlalchemy.engine import Engine

from auth.secrets import identity_hmac
from gateway.settings import Settings
from tests.auth.helpers import PASSWORD, REDIRECT, developer_with_app, verify_identity
from tests.conftest import LiveServer
from tests.keys import keys_of
from tests.packages import import_conditional
from tests.portal.web import TOKEN

PERSON_ID = "370202199001011237"
FIELDS = [
    {"name": "record_id", "type": "integer", "title": "记录编号", "level": 1},
    {"name": "person_name", "type": "string", "title": "姓名", "level": 3, "pii": "name"},
    {
        "name": "id_number",
        "type": "string",
        "title": "公民身份号码",
        "level": 4,
        "pii": "id_number",
        "subject_key": True,
    },
    {"name": "monthly_base", "type": "integer", "title": "缴费基数", "level": 3},
]


@pytest.fixture
def setup(engine: Engine, packages: Path, settings: Settings) -> OAuth2Client:
    key = keys_of(settings, engine).identity
    rows = [[1, "张三丰", PERSON_ID, 8000], [2, "李四", "370203198502024321", 9000]]
    import_conditional(
        engine, packages, fields=FIELDS, rows=rows, subject_hmac=partial(identity_hmac, key)
    )
    reg = developer_with_app(engine)
    with engine.begin() as conn:
        conn.execute(
            sa.text("UPDATE users SET organization = '青岛某某银行' WHERE username = 'dev1'")
        )
    developer_with_app(engine, "zhangsan", redirect_uris=[])
    verify_identity(engine, settings.data_dir, "zhangsan", PERSON_ID)
    return OAuth2Client(
        reg.client_id, reg.client_secret, redirect_uri=REDIRECT, code_challenge_method="S256"
    )


def consent_url(live: LiveServer, client: OAuth2Client, days: int) -> str:
    url, _state = client.create_authorization_url(
        f"{live.url}/oauth/authorize",
        code_verifier="v" * 64,
        scope="dataset:social-insurance:self",
        purpose="贷款资格核验",
        duration_days=str(days),
    )
    return url


def approve(live: LiveServer, url: str) -> str:
    data = {k: v[0] for k, v in parse_qs(urlsplit(url).query, keep_blank_values=True).items()}
    data.update(username="zhangsan", password=PASSWORD, decision="approve")
    answer = httpx.post(f"{live.url}/oauth/authorize", data=data)
    assert answer.status_code == 302, answer.text
    return answer.headers["location"]


def consent_rows(engine: Engine) -> list[tuple]:
    with engine.connect() as conn:
        return conn.execute(
            sa.text("SELECT id, expires_at, withdrawn_at FROM consents ORDER BY id")
        ).all()


def test_the_consent_page_names_the_organization_the_fields_and_the_title(
    live: LiveServer, setup: OAuth2Client
):
    page = httpx.get(consent_url(live, setup, 30))
    assert page.status_code == 200
    text = page.text
    assert "申请单位" in text and "青岛某某银行" in text
    assert "可见字段" in text
    for title in ("记录编号", "姓名", "公民身份号码", "缴费基数"):
        assert title in text
    assert "社会保险参保缴费信息" in text and "social-insurance）" not in text
    assert page.headers["x-frame-options"] == "DENY"


def test_a_bad_request_is_explained_in_chinese(live: LiveServer, setup: OAuth2Client):
    url, _ = setup.create_authorization_url(
        f"{live.url}/oauth/authorize", code_verifier="v" * 64, scope="dataset:nothing-here:self"
    )
    page = httpx.get(url)
    assert page.status_code == 400
    assert "申请的数据范围无效" in page.text and "invalid_scope" in page.text
    bad_redirect = consent_url(live, setup, 30).replace("127.0.0.1%3A9", "evil.example")
    page = httpx.get(bad_redirect)
    assert page.status_code == 400 and "授权请求" in page.text
    assert '<html lang="zh-CN">' in page.text


def test_approving_again_extends_the_one_consent(
    engine: Engine, live: LiveServer, setup: OAuth2Client
):
    approve(live, consent_url(live, setup, 30))
    [(first_id, first_until, _)] = consent_rows(engine)
    approve(live, consent_url(live, setup, 90))
    [(again_id, again_until, withdrawn)] = consent_rows(engine)
    assert again_id == first_id and withdrawn is None
    assert again_until > first_until
    # a shorter term later never shortens the consent
    approve(live, consent_url(live, setup, 1))
    assert consent_rows(engine)[0][1] == again_until


def test_my_consents_lists_and_withdraws_with_one_click(
    engine: Engine, live: LiveServer, setup: OAuth2Client
):
    location = approve(live, consent_url(live, setup, 30))
    token = setup.fetch_token(
        f"{live.url}/oauth/token", authorization_response=location, code_verifier="v" * 64
    )
    app_auth = {"Authorization": f"Bearer {token['access_token']}"}
    records = f"{live.url}/api/v1/datasets/social-insurance/records"
    assert httpx.get(records, headers=app_auth).status_code == 200

    with httpx.Client(base_url=live.url, follow_redirects=True) as person:
        login = person.get("/login")
        person.post(
            "/login",
            data={
                "username": "zhangsan",
                "password": PASSWORD,
                "csrf_token": TOKEN.search(login.text).group(1),
            },
        )
        page = person.get("/me/consents")
        assert page.status_code == 200
        for shown in (
            "dev1 的应用",
            "青岛某某银行",
            "社会保险参保缴费信息",
            "贷款资格核验",
            "生效中",
        ):
            assert shown in page.text
        [consent_id] = [row[0] for row in consent_rows(engine)]
        # without its csrf_token the click changes nothing
        assert person.post(f"/me/consents/{consent_id}/withdraw").status_code == 403
        assert consent_rows(engine)[0][2] is None
        done = person.post(
            f"/me/consents/{consent_id}/withdraw",
            data={"csrf_token": TOKEN.search(page.text).group(1)},
        )
        assert done.status_code == 200  # followed the redirect back to the list
        assert "授权已撤回" in done.text and "已撤回" in done.text
        assert "撤回授权</button>" not in done.text
    assert consent_rows(engine)[0][2] is not None
    assert httpx.get(records, headers=app_auth).status_code == 401


def test_a_consent_of_someone_else_cannot_be_withdrawn(
    engine: Engine, live: LiveServer, setup: OAuth2Client
):
    approve(live, consent_url(live, setup, 30))
    [consent_id] = [row[0] for row in consent_rows(engine)]
    with httpx.Client(base_url=live.url) as other:
        login = other.get("/login")
        other.post(
            "/login",
            data={
                "username": "dev1",
                "password": PASSWORD,
                "csrf_token": TOKEN.search(login.text).group(1),
            },
        )
        page = other.get("/me/consents")
        assert "您还没有给任何应用授权" in page.text
        refused = other.post(
            f"/me/consents/{consent_id}/withdraw",
            data={"csrf_token": TOKEN.search(page.text).group(1)},
        )
        assert refused.status_code == 404 and f"授权 {consent_id} 不存在" in refused.text
    assert consent_rows(engine)[0][2] is None
