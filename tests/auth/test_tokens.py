"""Access-token checks on the resource side: every way a token can be wrong is a 401 with
`WWW-Authenticate`, and a right token is accepted without a database hit."""

from __future__ import annotations

import base64
import json
import time

import pytest
from joserfc import jwt
from joserfc.jwk import ECKey
from sqlalchemy.engine import Engine

from auth.keys import KeyRing
from auth.tokens import InvalidToken, TokenIssuer, TokenVerifier
from gateway.settings import Settings
from tests.auth.helpers import PASSWORD, user
from tests.conftest import TestClient
from tests.keys import keys_of

ISSUER = "http://testserver"


def b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


@pytest.fixture
def keys(engine: Engine, settings: Settings) -> KeyRing:
    return keys_of(settings, engine).tokens


def issued(keys: KeyRing, **overrides: object) -> str:
    token, _ = TokenIssuer(keys, ISSUER).issue(subject="app1", client_id="app1", scope="data:read")
    return token


def forge(keys: KeyRing, header: dict, claims: dict, key: ECKey | None = None) -> str:
    signer = keys.signing_key()
    return jwt.encode(header, claims, key or signer.key, algorithms=["ES256"])


def good_claims(**overrides: object) -> dict:
    now = int(time.time())
    return {
        "iss": ISSUER,
        "sub": "app1",
        "aud": f"{ISSUER}/api",
        "exp": now + 600,
        "iat": now,
        "jti": "j1",
        "scope": "data:read",
        "client_id": "app1",
        **overrides,
    }


def test_round_trip_and_cache(keys: KeyRing):
    verifier = TokenVerifier(keys, ISSUER)
    token = issued(keys)
    claims = verifier.verify(token)
    assert claims.client_id == "app1" and claims.scope == "data:read"
    assert verifier.verify(token) is claims  # the second check is a cache hit


def bad_tokens(keys: KeyRing) -> dict[str, str]:
    kid = keys.signing_key().kid
    header = {"alg": "ES256", "typ": "at+jwt", "kid": kid}
    stranger = ECKey.generate_key("P-256", private=True)
    good = forge(keys, header, good_claims())
    head, _body, sig = good.split(".")
    return {
        "malformed": "not.a.jwt",
        "garbage": "x" * 40,
        "oversized": good + "A" * 9000,
        "alg none": b64({"alg": "none", "typ": "at+jwt", "kid": kid})
        + "."
        + b64(good_claims())
        + ".",
        "wrong typ": forge(keys, {**header, "typ": "JWT"}, good_claims()),
        "no typ": forge(keys, {"alg": "ES256", "kid": kid}, good_claims()),
        "unknown kid": forge(keys, {**header, "kid": "nope"}, good_claims()),
        "foreign key": forge(keys, header, good_claims(), key=stranger),
        "tampered": f"{head}.{b64(good_claims(scope='admin'))}.{sig}",
        "wrong audience": forge(keys, header, good_claims(aud="http://elsewhere/api")),
        "wrong issuer": forge(keys, header, good_claims(iss="http://evil")),
        "expired": forge(keys, header, good_claims(exp=int(time.time()) - 5)),
        "issued in the future": forge(keys, header, good_claims(iat=int(time.time()) + 3600)),
    }


def test_every_bad_token_is_refused(keys: KeyRing):
    verifier = TokenVerifier(keys, ISSUER)
    for name, token in bad_tokens(keys).items():
        with pytest.raises(InvalidToken):
            verifier.verify(token)
        assert name


def test_bad_tokens_get_401_with_www_authenticate(
    client: TestClient, engine: Engine, settings: Settings
):
    keys = keys_of(settings, engine).tokens
    for name, token in bad_tokens(keys).items():
        response = client.get("/api/v1/datasets", headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 401, name
        assert response.headers["www-authenticate"].startswith('Bearer realm="opengate"'), name
        body = response.json()
        assert body["code"] == "unauthorized"
        assert token[:40] not in response.text  # the token is never echoed


def test_key_rotation_keeps_old_tokens_valid(
    client: TestClient, engine: Engine, settings: Settings
):
    user(engine, "ops", "developer")
    old = client.post("/auth/login", json={"username": "ops", "password": PASSWORD}).json()
    keys = keys_of(settings, engine).tokens
    old_kid = keys.signing_key().kid
    new_kid = keys.rotate()
    assert new_kid != old_kid
    client.app.state.security.keys._reload(force=True)  # another process rotated: reload now
    published = {k["kid"] for k in client.get("/.well-known/jwks.json").json()["keys"]}
    assert {old_kid, new_kid} <= published
    assert (
        client.get(
            "/api/v1/me", headers={"Authorization": f"Bearer {old['access_token']}"}
        ).status_code
        == 200
    )
    new = client.post("/auth/login", json={"username": "ops", "password": PASSWORD}).json()
    assert (
        json.loads(base64.urlsafe_b64decode(new["access_token"].split(".")[0] + "=="))["kid"]
        == new_kid
    )
