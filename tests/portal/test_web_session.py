"""The web session of contract §10: sign-in sets `og_session` (HttpOnly, SameSite=Lax,
Secure for an https issuer), a server-side row that sign-out, expiry, a disabled or
deleted account end; sign-in takes the API's rules and its throttle; every form carries a
csrf_token and a form from another origin is refused."""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from sqlmodel import Session

from auth.revocations import Revocations
from auth.users import disable_user, get_user
from catalog.models import utcnow
from gateway.settings import Settings
from tests.auth.helpers import PASSWORD, user
from tests.portal.web import csrf_of, web_login


def session_rows(engine: Engine) -> list[tuple]:
    with engine.connect() as conn:
        return conn.execute(sa.text("SELECT user_id, ended_at FROM web_sessions")).all()


def test_sign_in_sets_the_session_cookie_and_sign_out_ends_it(client: TestClient, engine: Engine):
    user(engine, "alice", "developer")
    token = csrf_of(client, "/login")
    answer = client.post(
        "/login",
        data={"username": "alice", "password": PASSWORD, "csrf_token": token},
        follow_redirects=False,
    )
    assert answer.status_code == 303 and answer.headers["location"] == "/console"
    cookie = answer.headers["set-cookie"]
    assert cookie.startswith("og_session=")
    assert "HttpOnly" in cookie and "samesite=lax" in cookie.lower()
    assert "Secure" not in cookie  # the issuer is http
    stolen = client.cookies["og_session"]
    home = client.get("/console")
    assert home.status_code == 200 and "alice" in home.text
    assert home.headers["cache-control"] == "no-store"
    # the database keeps a digest, never the cookie's value
    with engine.connect() as conn:
        stored = conn.execute(sa.text("SELECT token_hash FROM web_sessions")).scalar()
    assert stored != stolen and len(stored) == 64

    logout = client.post(
        "/logout", data={"csrf_token": csrf_of(client, "/logout")}, follow_redirects=False
    )
    assert logout.status_code == 303
    assert [ended is not None for _uid, ended in session_rows(engine)] == [True]
    # the cookie copied before sign-out signs nobody in any more
    client.cookies.set("og_session", stolen)
    assert client.get("/console", follow_redirects=False).headers["location"] == (
        "/login?next=/console"
    )


def test_an_https_issuer_makes_the_cookie_secure(engine: Engine, settings: Settings):
    from gateway.app import create_app

    https = settings.model_copy(update={"issuer": "https://data.example.gov.cn"})
    user(engine, "alice", "developer")
    with TestClient(create_app(https, engine=engine), base_url="https://testserver") as client:
        token = csrf_of(client, "/login")
        answer = client.post(
            "/login",
            data={"username": "alice", "password": PASSWORD, "csrf_token": token},
            follow_redirects=False,
        )
    assert answer.status_code == 303
    assert "Secure" in answer.headers["set-cookie"]


def test_a_session_of_a_disabled_account_is_dead(client: TestClient, engine: Engine):
    user(engine, "alice", "developer")
    web_login(client, "alice", PASSWORD)
    assert client.get("/console").status_code == 200
    with Session(engine) as db:
        disable_user(db, user=get_user(db, username="alice"), revocations=Revocations(engine))
    answer = client.get("/console", follow_redirects=False)
    assert answer.status_code == 303 and answer.headers["location"].startswith("/login")
    # enabled again, the old session stays dead (as the account's tokens do)
    with Session(engine) as db:
        from auth.users import enable_user

        enable_user(db, user=get_user(db, username="alice"), revocations=Revocations(engine))
    assert client.get("/console", follow_redirects=False).status_code == 303


def test_a_session_of_a_deleted_account_is_dead(client: TestClient, engine: Engine):
    user(engine, "alice", "developer")
    web_login(client, "alice", PASSWORD)
    with engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM login_failures"))
        conn.execute(sa.text("DELETE FROM users WHERE username = 'alice'"))
    answer = client.get("/console", follow_redirects=False)
    assert answer.status_code == 303
    assert session_rows(engine) == []  # the rows went with the account


def test_an_expired_session_is_dead(client: TestClient, engine: Engine):
    user(engine, "alice", "developer")
    web_login(client, "alice", PASSWORD)
    with engine.begin() as conn:
        conn.execute(
            sa.text("UPDATE web_sessions SET expires_at = :t"),
            {"t": utcnow() - timedelta(seconds=1)},
        )
    answer = client.get("/console/apps", follow_redirects=False)
    assert answer.status_code == 303
    assert answer.headers["location"] == "/login?next=/console/apps"


def test_a_login_posted_from_another_origin_is_refused(client: TestClient, engine: Engine):
    user(engine, "alice", "developer")
    token = csrf_of(client, "/login")
    form = {"username": "alice", "password": PASSWORD, "csrf_token": token}
    for header in ({"Origin": "https://evil.example"}, {"Referer": "https://evil.example/x"}):
        answer = client.post("/login", data=form, headers=header, follow_redirects=False)
        assert answer.status_code == 403
        assert "拒绝来自其他网站的表单提交" in answer.text
        assert "og_session" not in answer.headers.get("set-cookie", "")
    assert session_rows(engine) == []
    same = client.post(
        "/login", data=form, headers={"Origin": "http://testserver"}, follow_redirects=False
    )
    assert same.status_code == 303


def test_a_login_without_a_valid_csrf_token_is_refused(client: TestClient, engine: Engine):
    user(engine, "alice", "developer")
    csrf_of(client, "/login")  # the browser holds the og_csrf cookie
    for token in (None, "", "forged-token-value"):
        data = {"username": "alice", "password": PASSWORD}
        if token is not None:
            data["csrf_token"] = token
        answer = client.post("/login", data=data, follow_redirects=False)
        assert answer.status_code == 403
        assert "csrf_token" in answer.text and "未做任何更改" in answer.text
    # a token of another browser's nonce is no good either
    other = TestClient(client.app)
    stranger_token = csrf_of(other, "/login")
    data = {"username": "alice", "password": PASSWORD, "csrf_token": stranger_token}
    assert client.post("/login", data=data, follow_redirects=False).status_code == 403
    assert session_rows(engine) == []


def test_wrong_password_is_a_chinese_message_and_no_session(client: TestClient, engine: Engine):
    user(engine, "alice", "developer")
    token = csrf_of(client, "/login")
    answer = client.post(
        "/login", data={"username": "alice", "password": "wrong password", "csrf_token": token}
    )
    assert answer.status_code == 401
    assert "用户名或密码错误" in answer.text and 'value="alice"' in answer.text
    empty = client.post("/login", data={"username": "", "password": "", "csrf_token": token})
    assert empty.status_code == 400 and "请填写用户名和密码" in empty.text
    assert session_rows(engine) == []


def test_next_never_leaves_the_gateway(client: TestClient, engine: Engine):
    user(engine, "alice", "developer")
    for target in ("//evil.example/x", "https://evil.example", "/\\evil.example"):
        token = csrf_of(client, "/login")
        answer = client.post(
            "/login",
            data={"username": "alice", "password": PASSWORD, "csrf_token": token, "next": target},
            follow_redirects=False,
        )
        assert answer.headers["location"] == "/console", target
        client.cookies.delete("og_session")


def test_the_web_sign_in_shares_the_api_slow_down(client: TestClient, engine: Engine):
    """Failures through the API slow the same (account, address) pair down on the web."""
    user(engine, "alice", "developer")
    for _ in range(6):
        client.post("/auth/login", json={"username": "alice", "password": "wrong password"})
    token = csrf_of(client, "/login")
    answer = client.post(
        "/login", data={"username": "alice", "password": PASSWORD, "csrf_token": token}
    )
    assert answer.status_code == 429
    assert "登录失败次数过多" in answer.text and answer.headers["retry-after"]
    assert session_rows(engine) == []


def test_the_web_sign_in_counts_in_the_one_login_window(engine: Engine, settings: Settings):
    from gateway.app import create_app

    user(engine, "alice", "developer")
    limited = settings.model_copy(update={"rate_login": "3/minute"})
    with TestClient(create_app(limited, engine=engine)) as client:
        token = csrf_of(client, "/login")
        for _ in range(2):
            assert (
                client.post(
                    "/auth/login", json={"username": "alice", "password": PASSWORD}
                ).status_code
                == 200
            )
        data = {"username": "alice", "password": PASSWORD, "csrf_token": token}
        first = client.post("/login", data=data, follow_redirects=False)
        assert first.status_code == 303
        refused = client.post("/login", data=data, follow_redirects=False)
        assert refused.status_code == 429
        assert refused.headers["content-type"].startswith("text/html")
        assert '<html lang="zh-CN">' in refused.text and "限流" in refused.text
        assert (
            client.post("/auth/login", json={"username": "alice", "password": PASSWORD}).status_code
            == 429
        )


def test_registration_takes_the_api_rules(client: TestClient, engine: Engine):
    token = csrf_of(client, "/register")
    base = {
        "username": "bank-dev",
        "password": "long enough pass",
        "password2": "long enough pass",
        "email": "dev@bank.example",
        "organization": "某某银行股份有限公司",
        "csrf_token": token,
    }
    bad = [
        ({"username": "x"}, "用户名需为 3–64 位"),
        ({"password": "short", "password2": "short"}, "密码至少 8 位"),
        ({"email": "not-an-address"}, "请填写有效的电子邮箱地址"),
        ({"password2": "another pass"}, "两次输入的密码不一致"),
        ({"organization": "<script>alert(1)</script>" * 20}, "所在单位不能超过 200 字"),
    ]
    for change, message in bad:
        answer = client.post("/register", data={**base, **change})
        assert answer.status_code == 400 and message in answer.text, change
        assert "<script>alert" not in answer.text  # echoed escaped, never as markup
    with Session(engine) as db:
        assert get_user(db, username="bank-dev") is None
        assert get_user(db, username="x") is None
    done = client.post("/register", data=base)
    assert done.status_code == 200 and "注册申请已受理" in done.text
    other = {"password": "other password x", "password2": "other password x"}
    again = client.post("/register", data={**base, **other})
    assert again.status_code == 200 and again.text.count("注册申请已受理") == 1  # no disclosure
    with Session(engine) as db:
        made = get_user(db, username="bank-dev")
        assert made is not None and made.role == "developer"
        assert made.organization == "某某银行股份有限公司"
    web_login(client, "bank-dev", "long enough pass")
    assert "bank-dev" in client.get("/console").text
