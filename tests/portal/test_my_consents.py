"""个人授权 for people: the consent page names the app's organization, lists the fields the
app will see and the dataset's title (not its id), explains refusals in Chinese; approving
again extends the one consent of that app × dataset; 我的授权 lists it and withdraws it with
one click, which stops the app's token at once."""

from __future__ import annotations

import httpx
from authlib.integrations.httpx_client import OAuth2Client
from sqlalchemy.engine import Engine

from tests.auth.helpers import PASSWORD, hidden_fields
from tests.conftest import LiveServer
from tests.portal.consenting import approve, consent_rows, consent_url
from tests.portal.web import TOKEN


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


def test_the_consent_page_is_a_portal_page(live: LiveServer, setup: OAuth2Client):
    """The shared layout (site header and navigation, the portal's stylesheets, no inline
    style), the §10 headers, and its refusals in Chinese on the same layout."""

    def on_the_layout(answer: httpx.Response) -> None:
        text = answer.text
        assert answer.headers["content-type"].startswith("text/html")
        assert '<html lang="zh-CN">' in text and 'class="brand"' in text
        assert ">数据目录</a>" in text and ">数据驾驶舱</a>" in text
        assert '<link rel="stylesheet" href="/static/portal/portal.css">' in text
        assert "<style" not in text and " style=" not in text and "<script" not in text
        policy = answer.headers["content-security-policy"]
        assert "style-src 'self';" in policy and "unsafe-inline" not in policy
        assert answer.headers["x-frame-options"] == "DENY"
        assert answer.headers["x-content-type-options"] == "nosniff"
        assert answer.headers["referrer-policy"] == "same-origin"

    with httpx.Client(timeout=30) as http:
        url = consent_url(live, setup, 30)
        page = http.get(url)
        assert page.status_code == 200
        on_the_layout(page)
        assert "<title>个人数据授权 · 公共数据开放平台</title>" in page.text
        assert "使用目的</dt><dd>贷款资格核验</dd>" in page.text
        assert "授权期限</dt><dd>30 天</dd>" in page.text
        assert ">同意授权</button>" in page.text and ">拒绝</button>" in page.text
        form = hidden_fields(page.text)
        wrong = http.post(
            f"{live.url}/oauth/authorize",
            data={**form, "username": "zhangsan", "password": "not-it", "decision": "approve"},
        )
        assert wrong.status_code == 401
        on_the_layout(wrong)
        assert '<p class="notice error" role="alert">用户名或密码错误</p>' in wrong.text
        assert "个人数据授权确认" in wrong.text  # the form again, to try once more
    invalid = httpx.get(f"{live.url}/oauth/authorize?client_id=nobody")
    assert invalid.status_code == 400
    on_the_layout(invalid)
    assert "<h1>授权请求无效</h1>" in invalid.text and "错误代码" in invalid.text


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
