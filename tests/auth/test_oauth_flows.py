"""The authorization server, driven by an unmodified third-party client (Authlib's httpx
OAuth2Client) against the gateway on a real socket."""

from __future__ import annotations

import base64
import json
import time
import uuid
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from authlib.integrations.httpx_client import OAuth2Client
from authlib.oauth2.rfc7523 import PrivateKeyJWT
from joserfc import jwt
from joserfc.jwk import ECKey
from sqlalchemy.engine import Engine

from tests.auth.helpers import (
    PASSWORD,
    REDIRECT,
    consent_form,
    developer_with_app,
    hidden_fields,
    verify_identity,
)
from tests.conftest import LiveServer
from tests.packages import import_conditional

PERSON_ID = "370202199001011237"


def claims_of(token: str) -> tuple[dict, dict]:
    header, payload, _ = token.split(".")
    pad = lambda s: s + "=" * (-len(s) % 4)  # noqa: E731
    return (
        json.loads(base64.urlsafe_b64decode(pad(header))),
        json.loads(base64.urlsafe_b64decode(pad(payload))),
    )


def test_client_credentials_basic_and_post(engine: Engine, live: LiveServer):
    reg = developer_with_app(engine)
    for method in ("client_secret_basic", "client_secret_post"):
        with OAuth2Client(
            reg.client_id, reg.client_secret, token_endpoint_auth_method=method
        ) as client:
            token = client.fetch_token(f"{live.url}/oauth/token", grant_type="client_credentials")
        assert token["token_type"] == "Bearer" and token["expires_in"] == 600
        assert token["scope"] == "data:read"
        header, claims = claims_of(token["access_token"])
        assert header["typ"] == "at+jwt" and header["alg"] == "ES256"
        jwks = httpx.get(f"{live.url}/.well-known/jwks.json").json()
        assert header["kid"] in {k["kid"] for k in jwks["keys"]}
        assert all("d" not in k for k in jwks["keys"])  # public keys only
        assert claims["iss"] == live.url and claims["aud"] == f"{live.url}/api"
        assert claims["client_id"] == claims["sub"] == reg.client_id
        assert {"exp", "iat", "jti"} <= set(claims)
        me = httpx.get(
            f"{live.url}/api/v1/datasets",
            headers={"Authorization": f"Bearer {token['access_token']}"},
        )
        assert me.status_code == 200


def test_metadata_names_the_endpoints(live: LiveServer):
    meta = httpx.get(f"{live.url}/.well-known/oauth-authorization-server").json()
    assert meta["issuer"] == live.url
    assert meta["token_endpoint"] == f"{live.url}/oauth/token"
    assert meta["code_challenge_methods_supported"] == ["S256"]
    assert "implicit" not in meta["grant_types_supported"]
    assert "password" not in meta["grant_types_supported"]


def ec_key() -> ECKey:
    return ECKey.generate_key("P-256", {"kid": "dev-key-1"}, private=True)


def test_private_key_jwt(engine: Engine, live: LiveServer):
    key = ec_key()
    reg = developer_with_app(engine, jwks={"keys": [key.as_dict(private=False)]})
    token_url = f"{live.url}/oauth/token"
    with OAuth2Client(
        reg.client_id, key, token_endpoint_auth_method=PrivateKeyJWT(token_url, alg="ES256")
    ) as client:
        token = client.fetch_token(token_url, grant_type="client_credentials")
    assert claims_of(token["access_token"])[1]["client_id"] == reg.client_id

    def assertion(**overrides: object) -> str:
        now = int(time.time())
        claims = {
            "iss": reg.client_id,
            "sub": reg.client_id,
            "aud": token_url,
            "exp": now + 60,
            "iat": now,
            "jti": uuid.uuid4().hex,
            **overrides,
        }
        return jwt.encode({"alg": "ES256", "kid": "dev-key-1"}, claims, key)

    def post(client_assertion: str) -> httpx.Response:
        return httpx.post(
            token_url,
            data={
                "grant_type": "client_credentials",
                "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                "client_assertion": client_assertion,
            },
        )

    once = assertion()
    assert post(once).status_code == 200
    replay = post(once)  # the same jti again
    assert replay.status_code == 400 and replay.json()["error"] == "invalid_client"
    expired = post(assertion(exp=int(time.time()) - 300, iat=int(time.time()) - 400))
    assert expired.status_code == 400 and expired.json()["error"] == "invalid_client"
    other = ec_key()
    forged = jwt.encode(
        {"alg": "ES256"},
        {
            "iss": reg.client_id,
            "sub": reg.client_id,
            "aud": token_url,
            "exp": int(time.time()) + 60,
            "jti": uuid.uuid4().hex,
        },
        other,
    )
    assert post(forged).json()["error"] == "invalid_client"


@pytest.fixture
def person(engine: Engine, packages: Path, settings) -> dict:
    """A conditional dataset with a subject key, an app that may ask for it, and a person
    whose account is linked to an identity number."""
    fields = [
        {"name": "record_id", "type": "integer", "level": 1},
        {
            "name": "id_number",
            "type": "string",
            "level": 4,
            "pii": "id_number",
            "subject_key": True,
        },
        {"name": "monthly_base", "type": "integer", "level": 3},
    ]
    import_conditional(
        engine,
        packages,
        fields=fields,
        rows=[[1, PERSON_ID, 8000], [2, "370203198502024321", 9000]],
    )
    reg = developer_with_app(engine)
    developer_with_app(engine, "zhangsan", redirect_uris=[])
    verify_identity(engine, settings.data_dir, "zhangsan", PERSON_ID)
    return {"client_id": reg.client_id, "client_secret": reg.client_secret}


def authorize(live: LiveServer, client: OAuth2Client, verifier: str, **extra: str) -> str:
    url, _state = client.create_authorization_url(
        f"{live.url}/oauth/authorize",
        code_verifier=verifier,
        scope="dataset:social-insurance:self",
        purpose="贷款资格核验",
        duration_days="30",
        **extra,
    )
    # A browser: the page's cookie goes back with its form. A live server in this test
    # process shares it with the suite's own threads: on a loaded machine 5 s was too short.
    with httpx.Client(timeout=30) as http:
        page = http.get(url)
        assert page.status_code == 200, page.text
        for shown in (
            "个人数据授权确认",
            "社会保险参保缴费信息",
            "贷款资格核验",
            "30 天",
            "dev1 的应用",
        ):
            assert shown in page.text
        data = hidden_fields(page.text)
        data.update(username="zhangsan", password=PASSWORD, decision="approve")
        answer = http.post(f"{live.url}/oauth/authorize", data=data)
    assert answer.status_code == 302, answer.text
    return answer.headers["location"]


def test_authorization_code_with_pkce_and_rotating_refresh(
    engine: Engine, live: LiveServer, person: dict
):
    token_url = f"{live.url}/oauth/token"
    client = OAuth2Client(
        person["client_id"],
        person["client_secret"],
        redirect_uri=REDIRECT,
        code_challenge_method="S256",
    )
    verifier = "v" * 64
    location = authorize(live, client, verifier)
    token = client.fetch_token(token_url, authorization_response=location, code_verifier=verifier)
    _header, claims = claims_of(token["access_token"])
    assert claims["sub"] == "zhangsan" and claims["consent"] and claims["uid"]
    assert token["scope"] == "dataset:social-insurance:self"
    auth = {"Authorization": f"Bearer {token['access_token']}"}
    assert httpx.get(f"{live.url}/api/v1/datasets", headers=auth).status_code == 200

    # refresh rotates; reusing the spent one ends the whole family
    first_refresh = token["refresh_token"]
    rotated = client.refresh_token(token_url, refresh_token=first_refresh)
    assert rotated["refresh_token"] != first_refresh
    reuse = httpx.post(
        token_url,
        auth=(person["client_id"], person["client_secret"]),
        data={"grant_type": "refresh_token", "refresh_token": first_refresh},
    )
    assert reuse.status_code == 400 and reuse.json()["error"] == "invalid_grant"
    after = httpx.post(
        token_url,
        auth=(person["client_id"], person["client_secret"]),
        data={"grant_type": "refresh_token", "refresh_token": rotated["refresh_token"]},
    )
    assert after.json()["error"] == "invalid_grant"
    time.sleep(1.2)  # the revocation mirror refreshes every second without Redis
    revoked = httpx.get(
        f"{live.url}/api/v1/datasets",
        headers={"Authorization": f"Bearer {rotated['access_token']}"},
    )
    assert revoked.status_code == 401

    # the code is single-use (its reuse is refused; what it still revokes: see below)
    code = parse_qs(urlsplit(location).query)["code"][0]
    reused = httpx.post(
        token_url,
        auth=(person["client_id"], person["client_secret"]),
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT,
            "code_verifier": verifier,
        },
    )
    assert reused.status_code == 400 and reused.json()["error"] == "invalid_grant"


def test_pkce_is_required_and_checked(live: LiveServer, person: dict):
    client = OAuth2Client(
        person["client_id"],
        person["client_secret"],
        redirect_uri=REDIRECT,
        code_challenge_method="S256",
    )
    location = authorize(live, client, "a" * 64)
    code = parse_qs(urlsplit(location).query)["code"][0]
    mismatch = httpx.post(
        f"{live.url}/oauth/token",
        auth=(person["client_id"], person["client_secret"]),
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT,
            "code_verifier": "b" * 64,
        },
    )
    assert mismatch.status_code == 400 and mismatch.json()["error"] == "invalid_grant"
    base = {
        "response_type": "code",
        "client_id": person["client_id"],
        "redirect_uri": REDIRECT,
        "scope": "dataset:social-insurance:self",
        "purpose": "贷款资格核验",
    }
    no_pkce = httpx.get(f"{live.url}/oauth/authorize", params=base)
    assert no_pkce.status_code == 400 and "code_challenge" in no_pkce.text
    plain = httpx.get(
        f"{live.url}/oauth/authorize",
        params={**base, "code_challenge": "c" * 43, "code_challenge_method": "plain"},
    )
    assert plain.status_code == 400
    other_redirect = httpx.get(
        f"{live.url}/oauth/authorize",
        params={
            **base,
            "redirect_uri": "http://127.0.0.1:9/elsewhere",
            "code_challenge": "c" * 43,
            "code_challenge_method": "S256",
        },
    )
    assert other_redirect.status_code == 400
    assert "elsewhere" not in other_redirect.headers.get("location", "")


def test_refusing_consent_redirects_with_access_denied(live: LiveServer, person: dict):
    client = OAuth2Client(
        person["client_id"],
        person["client_secret"],
        redirect_uri=REDIRECT,
        code_challenge_method="S256",
    )
    url, state = client.create_authorization_url(
        f"{live.url}/oauth/authorize",
        code_verifier="d" * 64,
        scope="dataset:social-insurance:self",
        purpose="贷款资格核验",
    )
    with httpx.Client(timeout=30) as http:
        data = consent_form(http, url)
        data["decision"] = "deny"
        answer = http.post(f"{live.url}/oauth/authorize", data=data)
    assert answer.status_code == 302
    query = parse_qs(urlsplit(answer.headers["location"]).query)
    assert query["error"] == ["access_denied"] and query["state"] == [state]


def test_withdrawing_consent_stops_the_token(engine: Engine, live: LiveServer, person: dict):
    client = OAuth2Client(
        person["client_id"],
        person["client_secret"],
        redirect_uri=REDIRECT,
        code_challenge_method="S256",
    )
    location = authorize(live, client, "e" * 64)
    token = client.fetch_token(
        f"{live.url}/oauth/token", authorization_response=location, code_verifier="e" * 64
    )
    person_auth = {"Authorization": f"Bearer {token['access_token']}"}
    login = httpx.post(
        f"{live.url}/auth/login", json={"username": "zhangsan", "password": PASSWORD}
    ).json()
    mine = {"Authorization": f"Bearer {login['access_token']}"}
    consents = httpx.get(f"{live.url}/api/v1/me/consents", headers=mine).json()["data"]
    assert len(consents) == 1 and consents[0]["purpose"] == "贷款资格核验"
    withdrawn = httpx.post(
        f"{live.url}/api/v1/me/consents/{consents[0]['id']}/withdraw", headers=mine
    )
    assert withdrawn.json()["withdrawn_at"]
    # this worker learns at once; other workers through Redis or within a second
    response = httpx.get(f"{live.url}/api/v1/datasets", headers=person_auth)
    assert response.status_code == 401
    assert "Bearer" in response.headers["www-authenticate"]


def test_wrong_and_unknown_clients(engine: Engine, live: LiveServer):
    reg = developer_with_app(engine)
    url = f"{live.url}/oauth/token"
    wrong = httpx.post(url, auth=(reg.client_id, "nope"), data={"grant_type": "client_credentials"})
    assert wrong.status_code == 401 and wrong.json()["error"] == "invalid_client"
    assert "nope" not in wrong.text
    unknown = httpx.post(url, auth=("og_nobody", "x"), data={"grant_type": "client_credentials"})
    assert unknown.json()["error"] == "invalid_client"
    password_grant = httpx.post(
        url,
        auth=(reg.client_id, reg.client_secret),
        data={"grant_type": "password", "username": "a", "password": "b"},
    )
    assert password_grant.json()["error"] == "unsupported_grant_type"


def test_introspection_and_revocation(engine: Engine, live: LiveServer):
    reg = developer_with_app(engine)
    other = developer_with_app(engine, "dev2")
    basic = (reg.client_id, reg.client_secret)
    token = httpx.post(
        f"{live.url}/oauth/token", auth=basic, data={"grant_type": "client_credentials"}
    ).json()["access_token"]
    active = httpx.post(f"{live.url}/oauth/introspect", auth=basic, data={"token": token}).json()
    assert active["active"] is True and active["client_id"] == reg.client_id
    foreign = httpx.post(
        f"{live.url}/oauth/introspect",
        auth=(other.client_id, other.client_secret),
        data={"token": token},
    )
    assert foreign.json().get("active") is not True
    assert (
        httpx.post(f"{live.url}/oauth/revoke", auth=basic, data={"token": token}).status_code == 200
    )
    auth = {"Authorization": f"Bearer {token}"}
    assert httpx.get(f"{live.url}/api/v1/datasets", headers=auth).status_code == 401
    after = httpx.post(f"{live.url}/oauth/introspect", auth=basic, data={"token": token}).json()
    assert after == {"active": False}


def test_private_key_jwt_with_an_allow_listed_jwks_uri(engine: Engine, tmp_path: Path, settings):
    import http.server
    import threading

    from gateway.app import create_app
    from tests.conftest import LiveServer, free_port

    key = ec_key()
    (tmp_path / "jwks.json").write_text(json.dumps({"keys": [key.as_dict(private=False)]}))
    handler = lambda *a, **k: http.server.SimpleHTTPRequestHandler(  # noqa: E731
        *a, directory=str(tmp_path), **k
    )
    jwks_server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=jwks_server.serve_forever, daemon=True).start()
    jwks_uri = f"http://127.0.0.1:{jwks_server.server_port}/jwks.json"
    port = free_port()
    live_settings = settings.model_copy(
        update={
            "issuer": f"http://127.0.0.1:{port}",
            "jwks_uri_allowlist": f"http://127.0.0.1:{jwks_server.server_port}/",
        }
    )
    try:
        with LiveServer(create_app(live_settings, engine=engine), port) as live:
            from tests.auth.helpers import user as make_user

            make_user(engine, "jwks-dev", "developer")
            login = httpx.post(
                f"{live.url}/auth/login", json={"username": "jwks-dev", "password": PASSWORD}
            ).json()
            auth = {"Authorization": f"Bearer {login['access_token']}"}
            refused = httpx.post(
                f"{live.url}/api/v1/apps",
                headers=auth,
                json={"name": "x", "jwks_uri": "http://127.0.0.1:1/other.json"},
            )
            assert refused.status_code == 400
            app = httpx.post(
                f"{live.url}/api/v1/apps",
                headers=auth,
                json={"name": "远程公钥", "jwks_uri": jwks_uri},
            ).json()
            assert "private_key_jwt" in app["token_endpoint_auth_methods"]
            token_url = f"{live.url}/oauth/token"
            with OAuth2Client(
                app["client_id"],
                key,
                token_endpoint_auth_method=PrivateKeyJWT(token_url, alg="ES256"),
            ) as client:
                token = client.fetch_token(token_url, grant_type="client_credentials")
            assert token["access_token"]
    finally:
        jwks_server.shutdown()


def _redeem(live: LiveServer, person: dict, code: str, verifier: str) -> httpx.Response:
    return httpx.post(
        f"{live.url}/oauth/token",
        auth=(person["client_id"], person["client_secret"]),
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT,
            "code_verifier": verifier,
        },
        timeout=30,
    )


def _fresh_code(live: LiveServer, person: dict, verifier: str) -> str:
    client = OAuth2Client(
        person["client_id"],
        person["client_secret"],
        redirect_uri=REDIRECT,
        code_challenge_method="S256",
    )
    return parse_qs(urlsplit(authorize(live, client, verifier)).query)["code"][0]


def test_parallel_redemptions_of_one_code_give_one_token(live: LiveServer, person: dict):
    """Finding 9: 8 redemptions of one code at the same moment: exactly one answer is a
    token (the code is spent by one conditional UPDATE), every other is invalid_grant — and,
    since the code was used more than once, the one token is revoked too (RFC 6749 §4.1.2)."""
    import threading

    verifier = "r" * 64
    code = _fresh_code(live, person, verifier)
    barrier = threading.Barrier(8)
    answers: list[httpx.Response] = []
    lock = threading.Lock()

    def redeem() -> None:
        barrier.wait(timeout=10)
        answer = _redeem(live, person, code, verifier)
        with lock:
            answers.append(answer)

    threads = [threading.Thread(target=redeem) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    statuses = sorted(a.status_code for a in answers)
    assert statuses == [200] + [400] * 7, statuses
    assert all(a.json()["error"] == "invalid_grant" for a in answers if a.status_code == 400)
    [won] = [a.json() for a in answers if a.status_code == 200]
    basic = (person["client_id"], person["client_secret"])
    introspected = httpx.post(
        f"{live.url}/oauth/introspect", auth=basic, data={"token": won["access_token"]}
    ).json()
    assert introspected == {"active": False}
    refresh = httpx.post(
        f"{live.url}/oauth/token",
        auth=basic,
        data={"grant_type": "refresh_token", "refresh_token": won["refresh_token"]},
    )
    assert refresh.json()["error"] == "invalid_grant"


def test_a_reused_code_revokes_the_tokens_issued_from_it(live: LiveServer, person: dict):
    """RFC 6749 §4.1.2: the second redemption is refused and ends the first one's tokens —
    the access token (introspection, the API) and the refresh token."""
    verifier = "s" * 64
    code = _fresh_code(live, person, verifier)
    first = _redeem(live, person, code, verifier)
    assert first.status_code == 200
    token = first.json()
    basic = (person["client_id"], person["client_secret"])
    introspect = f"{live.url}/oauth/introspect"
    active = httpx.post(introspect, auth=basic, data={"token": token["access_token"]}).json()
    assert active["active"] is True
    again = _redeem(live, person, code, verifier)
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"
    after = httpx.post(introspect, auth=basic, data={"token": token["access_token"]}).json()
    assert after == {"active": False}
    auth = {"Authorization": f"Bearer {token['access_token']}"}
    assert httpx.get(f"{live.url}/api/v1/datasets", headers=auth).status_code == 401
    refresh = httpx.post(
        f"{live.url}/oauth/token",
        auth=basic,
        data={"grant_type": "refresh_token", "refresh_token": token["refresh_token"]},
    )
    assert refresh.status_code == 400 and refresh.json()["error"] == "invalid_grant"
