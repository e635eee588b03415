"""The consent page's form carries a csrf_token (contract §10): a POST without this
browser's token, or from another site, is refused with 403 in Chinese before anyone is
signed in: no consent stored, no failed sign-in counted, no code issued."""

from __future__ import annotations

import httpx
import sqlalchemy as sa
from authlib.integrations.httpx_client import OAuth2Client
from sqlalchemy.engine import Engine

from tests.auth.helpers import PASSWORD, consent_form, hidden_fields
from tests.conftest import LiveServer
from tests.portal.consenting import consent_rows, consent_url

REFUSED = "安全校验码"


def _failures(engine: Engine) -> int:
    with engine.connect() as conn:
        return conn.execute(sa.text("SELECT COUNT(*) FROM login_failures")).scalar_one()


def _post(http: httpx.Client, live: LiveServer, data: dict[str, str], **kw) -> httpx.Response:
    return http.post(f"{live.url}/oauth/authorize", data=data, **kw)


def _unchanged(engine: Engine, answer: httpx.Response, failures: int = 0) -> None:
    assert answer.status_code == 403, answer.text
    assert "location" not in answer.headers  # no code, no redirect to the app
    assert answer.headers["x-frame-options"] == "DENY"
    assert consent_rows(engine) == [] and _failures(engine) == failures


def test_a_post_without_the_token_changes_nothing(
    engine: Engine, live: LiveServer, setup: OAuth2Client
):
    with httpx.Client(timeout=30) as http:
        form = consent_form(http, consent_url(live, setup, 30))
        del form["csrf_token"]
        # a right password or a wrong one: neither is even tried
        for password in (PASSWORD, "wrong-password"):
            answer = _post(
                http,
                live,
                {**form, "username": "zhangsan", "password": password, "decision": "approve"},
            )
            _unchanged(engine, answer)
            assert REFUSED in answer.text and '<html lang="zh-CN">' in answer.text
        empty = _post(
            http,
            live,
            {
                **form,
                "csrf_token": "",
                "username": "zhangsan",
                "password": "wrong-password",
                "decision": "approve",
            },
        )
        _unchanged(engine, empty)


def test_another_browsers_token_or_no_cookie_is_refused(
    engine: Engine, live: LiveServer, setup: OAuth2Client
):
    url = consent_url(live, setup, 30)
    with httpx.Client(timeout=30) as mine, httpx.Client(timeout=30) as theirs:
        form = consent_form(mine, url)
        other = consent_form(theirs, url)
        assert other["csrf_token"] != form["csrf_token"]
        signed = {"username": "zhangsan", "password": PASSWORD, "decision": "approve"}
        wrong = _post(mine, live, {**form, **signed, "csrf_token": other["csrf_token"]})
        _unchanged(engine, wrong)
        assert REFUSED in wrong.text
        forged = _post(mine, live, {**form, **signed, "csrf_token": form["csrf_token"] + "x"})
        _unchanged(engine, forged)
    # the page's token without the page's cookie (what another site can send)
    bare = httpx.post(f"{live.url}/oauth/authorize", data={**form, **signed})
    _unchanged(engine, bare)


def test_a_form_posted_from_another_site_is_refused_even_with_the_token(
    engine: Engine, live: LiveServer, setup: OAuth2Client
):
    with httpx.Client(timeout=30) as http:
        form = consent_form(http, consent_url(live, setup, 30))
        data = {**form, "username": "zhangsan", "password": PASSWORD, "decision": "approve"}
        answer = _post(http, live, data, headers={"Origin": "https://evil.example"})
        _unchanged(engine, answer)
        assert "其他网站" in answer.text


def test_the_token_survives_a_wrong_password_and_the_approval_goes_through(
    engine: Engine, live: LiveServer, setup: OAuth2Client
):
    with httpx.Client(timeout=30) as http:
        form = consent_form(http, consent_url(live, setup, 30))
        wrong = _post(
            http,
            live,
            {**form, "username": "zhangsan", "password": "nope-nope", "decision": "approve"},
        )
        assert wrong.status_code == 401 and _failures(engine) == 1
        # the page shown again carries a token for the same browser: a browser posts it
        again = hidden_fields(wrong.text)
        assert again["csrf_token"] == form["csrf_token"]
        right = _post(
            http,
            live,
            {**again, "username": "zhangsan", "password": PASSWORD, "decision": "approve"},
        )
    assert right.status_code == 302 and "code=" in right.headers["location"]
    assert len(consent_rows(engine)) == 1
