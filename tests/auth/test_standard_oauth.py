"""Standard OAuth as strict clients meet it (issue 13, finding 4): metadata Authlib's
validator accepts, every advertised assertion algorithm working with Authlib's own client,
public clients with PKCE, scopes refused when unknown and enforced on the data routes,
`purpose` only where personal data is asked for, and an issuer that follows `--port`."""

from __future__ import annotations

from functools import partial
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import sqlalchemy as sa
from authlib.integrations.base_client import OAuthError
from authlib.integrations.httpx_client import OAuth2Client
from authlib.oauth2.rfc7523 import PrivateKeyJWT
from authlib.oauth2.rfc8414 import AuthorizationServerMetadata
from joserfc.jwk import ECKey, OKPKey, RSAKey
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from auth.models import RefreshToken
from auth.secrets import identity_hmac
from tests.auth.helpers import (
    PASSWORD,
    REDIRECT,
    consent_form,
    developer_with_app,
    verify_identity,
)
from tests.auth.test_oauth_flows import PERSON_ID, claims_of
from tests.conftest import GatewayProcess, LiveServer
from tests.keys import keys_of
from tests.packages import import_conditional, write_package

SI = "social-insurance"
AIR = "air-readings"


@pytest.fixture
def catalog(engine: Engine, packages: Path, settings) -> dict:
    """A conditional dataset with a subject key (and a grant on it for the bank's app), an
    unconditional one, a verified person and a developer."""
    fields = [
        {"name": "record_id", "type": "integer", "level": 1},
        {"name": "id_number", "type": "string", "level": 4, "pii": "id_number"}
        | {"subject_key": True},
        {"name": "district", "type": "string", "level": 1},
    ]
    key = keys_of(settings, engine).identity
    import_conditional(
        engine,
        packages,
        fields=fields,
        rows=[[1, PERSON_ID, "市南区"], [2, "370203198502024321", "市北区"]],
        subject_hmac=partial(identity_hmac, key),
    )
    from catalog.importer import import_package

    import_package(engine, write_package(packages))
    bank = developer_with_app(engine, "bank")
    developer_with_app(engine, "zhangsan", redirect_uris=[])
    verify_identity(engine, settings.data_dir, "zhangsan", PERSON_ID)
    from policies.grants import grant, validate_terms
    from tests.auth.helpers import user

    admin = user(engine, "admin1", "data_admin")
    from catalog.hosted import HostedCatalog

    hosted = HostedCatalog(engine, ttl=0).get(SI)
    with Session(engine) as session:
        grant(
            session,
            admin_id=admin.id,  # type: ignore[arg-type]
            client_id=bank.client_id,
            dataset_id=SI,
            purpose="贷款资格核验",
            terms=validate_terms(
                hosted, modes=["records", "aggregate"], fields=None, k=2, duration_days=30
            ),
            note="test",
        )
    return {"client_id": bank.client_id, "client_secret": bank.client_secret}


# --- metadata and algorithms --------------------------------------------------------------


def test_metadata_passes_authlibs_validator(live: LiveServer):
    meta = httpx.get(f"{live.url}/.well-known/oauth-authorization-server").json()
    AuthorizationServerMetadata(meta).validate()  # raises on any missing or bad member
    assert meta["issuer"] == live.url
    assert "none" in meta["token_endpoint_auth_methods_supported"]
    assert "none" not in meta["introspection_endpoint_auth_methods_supported"]
    assert meta["code_challenge_methods_supported"] == ["S256"]
    assert meta["scopes_supported"] == ["data:read"]
    assert httpx.get(f"{live.url}/.well-known/openid-configuration").status_code == 404


KEYS = {
    "RS256": lambda: RSAKey.generate_key(2048, {"kid": "k-rs256"}, private=True),
    "PS256": lambda: RSAKey.generate_key(2048, {"kid": "k-ps256"}, private=True),
    "ES256": lambda: ECKey.generate_key("P-256", {"kid": "k-es256"}, private=True),
    "EdDSA": lambda: OKPKey.generate_key("Ed25519", {"kid": "k-eddsa"}, private=True),
    "Ed25519": lambda: OKPKey.generate_key("Ed25519", {"kid": "k-ed25519"}, private=True),
}


def test_every_advertised_assertion_algorithm_works_with_authlibs_client(
    engine: Engine, live: LiveServer
):
    meta = httpx.get(f"{live.url}/.well-known/oauth-authorization-server").json()
    advertised = meta["token_endpoint_auth_signing_alg_values_supported"]
    assert {"ES256", "PS256", "EdDSA"} <= set(advertised)
    assert set(advertised) == set(KEYS)  # nothing advertised that is not tested here
    keys = {alg: make() for alg, make in KEYS.items()}
    reg = developer_with_app(
        engine, jwks={"keys": [k.as_dict(private=False) for k in keys.values()]}
    )
    token_url = meta["token_endpoint"]
    for alg in advertised:
        auth = PrivateKeyJWT(token_url, alg=alg, headers={"kid": keys[alg].kid})
        # for the other endpoints the assertion's audience is the URL posted to (the default)
        elsewhere = PrivateKeyJWT(alg=alg, headers={"kid": keys[alg].kid})
        with OAuth2Client(
            reg.client_id,
            keys[alg],
            token_endpoint_auth_method=auth,
            revocation_endpoint_auth_method=elsewhere,
        ) as client:
            token = client.fetch_token(token_url, grant_type="client_credentials")
            assert claims_of(token["access_token"])[1]["client_id"] == reg.client_id, alg
            assert token["scope"] == "data:read"
            # the revocation endpoint takes the same method (its metadata says so)
            revoked = client.revoke_token(
                meta["revocation_endpoint"], token["access_token"], token_type_hint="access_token"
            )
        assert revoked.status_code == 200, (alg, revoked.text)
        assertion = elsewhere.sign(client, meta["introspection_endpoint"])
        introspected = httpx.post(
            meta["introspection_endpoint"],
            data={
                "token": token["access_token"],
                "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                "client_assertion": assertion,
            },
        )
        assert introspected.status_code == 200 and introspected.json() == {"active": False}, alg


def test_an_assertion_with_an_algorithm_not_listed_is_refused(engine: Engine, live: LiveServer):
    key = RSAKey.generate_key(2048, {"kid": "k-rs384"}, private=True)
    reg = developer_with_app(engine, jwks={"keys": [key.as_dict(private=False)]})
    token_url = f"{live.url}/oauth/token"
    auth = PrivateKeyJWT(token_url, alg="RS384", headers={"kid": "k-rs384"})
    with (
        OAuth2Client(reg.client_id, key, token_endpoint_auth_method=auth) as client,
        pytest.raises(OAuthError) as refused,
    ):
        client.fetch_token(token_url, grant_type="client_credentials")
    assert refused.value.error == "invalid_client"


# --- scopes ------------------------------------------------------------------------------


def _token(live: LiveServer, catalog: dict, scope: str | None) -> httpx.Response:
    data = {"grant_type": "client_credentials"}
    if scope is not None:
        data["scope"] = scope
    return httpx.post(
        f"{live.url}/oauth/token",
        auth=(catalog["client_id"], catalog["client_secret"]),
        data=data,
    )


def _issued(engine: Engine) -> int:
    with engine.connect() as conn:
        return conn.execute(
            sa.text(
                "SELECT count(*) FROM audit_events WHERE action = 'token.issue' "
                "AND outcome = 'allowed'"
            )
        ).scalar_one()


@pytest.mark.parametrize(
    "scope",
    [
        "openid profile",
        "openid",
        "data:write",
        "dataset:no-such-dataset",
        "dataset:social-insurance:export",
        "dataset:social-insurance:self",  # a person's consent, never client credentials
        "data:read " + "x" * 10_000,
    ],
)
def test_unknown_scopes_are_invalid_scope_and_nothing_is_issued(
    engine: Engine, live: LiveServer, catalog: dict, scope: str
):
    before = _issued(engine)
    answer = _token(live, catalog, scope)
    assert answer.status_code == 400, answer.text
    body = answer.json()
    assert body["error"] == "invalid_scope"
    assert "access_token" not in body
    assert body["detail"] and "scope" in body["detail"]
    assert body["error_description"].isascii()
    assert len(answer.content) < 1500  # the 10 kB scope is not echoed back
    assert _issued(engine) == before


def test_the_granted_scope_is_always_in_the_answer(live: LiveServer, catalog: dict):
    assert _token(live, catalog, None).json()["scope"] == "data:read"
    assert _token(live, catalog, "").json()["scope"] == "data:read"
    asked = f"dataset:{SI}:aggregate dataset:{AIR} dataset:{SI}:aggregate"
    answer = _token(live, catalog, asked).json()
    assert answer["scope"] == f"dataset:{SI}:aggregate dataset:{AIR}"
    assert claims_of(answer["access_token"])[1]["scope"] == answer["scope"]


def test_scopes_are_enforced_on_the_data_routes(live: LiveServer, catalog: dict):
    def bearer(scope: str | None) -> dict[str, str]:
        return {"Authorization": f"Bearer {_token(live, catalog, scope).json()['access_token']}"}

    base = f"{live.url}/api/v1/datasets"
    everything = bearer("data:read")
    assert httpx.get(f"{base}/{SI}/records", headers=everything).status_code == 200
    assert httpx.get(f"{base}/{AIR}/records", headers=everything).status_code == 200

    aggregate_only = bearer(f"dataset:{SI}:aggregate")
    refused = httpx.get(f"{base}/{SI}/records", headers=aggregate_only)
    assert refused.status_code == 403 and refused.json()["code"] == "insufficient_scope"
    challenge = refused.headers["www-authenticate"]
    assert 'error="insufficient_scope"' in challenge and f"dataset:{SI}:records" in challenge
    assert httpx.get(f"{base}/{SI}/export", headers=aggregate_only).status_code == 403
    assert httpx.get(f"{base}/{SI}/records/1", headers=aggregate_only).status_code == 403
    counted = httpx.get(
        f"{base}/{SI}/aggregate", params={"group_by": "district"}, headers=aggregate_only
    )
    assert counted.status_code == 200, counted.text
    policy = httpx.get(f"{base}/{SI}/policy", headers=aggregate_only).json()
    assert list(policy["modes"]) == ["aggregate"]
    # another dataset is not covered, open data included
    assert httpx.get(f"{base}/{AIR}/records", headers=aggregate_only).status_code == 403

    one_dataset = bearer(f"dataset:{SI}")
    assert httpx.get(f"{base}/{SI}/records", headers=one_dataset).status_code == 200
    assert httpx.get(f"{base}/{AIR}/records", headers=one_dataset).status_code == 403
    # the catalog itself is not data: any token lists it
    assert httpx.get(base, headers=aggregate_only).status_code == 200


def test_openid_profile_never_reads_conditional_records(live: LiveServer, catalog: dict):
    answer = _token(live, catalog, "openid profile")
    assert answer.json()["error"] == "invalid_scope"
    client = OAuth2Client(
        catalog["client_id"],
        catalog["client_secret"],
        redirect_uri=REDIRECT,
        code_challenge_method="S256",
    )
    url, _ = client.create_authorization_url(
        f"{live.url}/oauth/authorize", code_verifier="o" * 64, scope="openid profile"
    )
    page = httpx.get(url)
    assert page.status_code == 400 and "invalid_scope" in page.text
    huge, _ = client.create_authorization_url(
        f"{live.url}/oauth/authorize", code_verifier="o" * 64, scope="x" * 10_000
    )
    refused = httpx.get(huge)
    assert refused.status_code == 400 and "过长" in refused.text and len(refused.text) < 3000


# --- purpose only where personal data is asked for ----------------------------------------


def _consent(live: LiveServer, url: str, decision: str = "approve") -> httpx.Response:
    with httpx.Client(timeout=30) as http:
        data = consent_form(http, url)
        data.update(username="zhangsan", password=PASSWORD, decision=decision)
        return http.post(f"{live.url}/oauth/authorize", data=data)


def test_purpose_is_required_only_for_a_persons_own_rows(
    engine: Engine, live: LiveServer, catalog: dict
):
    client = OAuth2Client(
        catalog["client_id"],
        catalog["client_secret"],
        redirect_uri=REDIRECT,
        code_challenge_method="S256",
    )
    authorize = f"{live.url}/oauth/authorize"
    personal, _ = client.create_authorization_url(
        authorize, code_verifier="p" * 64, scope=f"dataset:{SI}:self"
    )
    missing = httpx.get(personal)
    assert missing.status_code == 400 and "purpose" in missing.text

    open_data, _ = client.create_authorization_url(
        authorize, code_verifier="q" * 64, scope=f"dataset:{AIR}:records"
    )
    page = httpx.get(open_data)
    assert page.status_code == 200 and "使用目的" not in page.text and "空气质量读数" in page.text
    location = _consent(live, open_data).headers["location"]
    token = client.fetch_token(
        f"{live.url}/oauth/token", authorization_response=location, code_verifier="q" * 64
    )
    assert token["scope"] == f"dataset:{AIR}:records"
    auth = {"Authorization": f"Bearer {token['access_token']}"}
    base = f"{live.url}/api/v1/datasets"
    assert httpx.get(f"{base}/{AIR}/records", headers=auth).status_code == 200
    assert httpx.get(f"{base}/{SI}/records", headers=auth).status_code == 403

    conditional, _ = client.create_authorization_url(
        authorize, code_verifier="r" * 64, scope=f"dataset:{SI}"
    )
    refused = httpx.get(conditional)
    assert refused.status_code == 400 and "invalid_scope" in refused.text
    data = {k: v[0] for k, v in parse_qs(urlsplit(conditional).query).items()}
    with httpx.Client(timeout=30) as http:
        # a forged request with a genuine form token: the scope is still checked on POST
        token = consent_form(http, open_data)["csrf_token"]
        signed = {"username": "zhangsan", "password": PASSWORD, "decision": "approve"}
        posted = http.post(
            f"{live.url}/oauth/authorize", data={**data, **signed, "csrf_token": token}
        )
    assert posted.status_code == 400  # refused, and nothing recorded
    with engine.connect() as conn:
        consents = conn.execute(sa.text("SELECT dataset_id, purpose FROM consents")).all()
    assert [tuple(c) for c in consents] == [("", "")]  # the open-data one only


# --- public clients ------------------------------------------------------------------------


def _public_app(live: LiveServer, developer: str = "zhangsan", **extra: object) -> httpx.Response:
    login = httpx.post(
        f"{live.url}/auth/login", json={"username": developer, "password": PASSWORD}
    ).json()
    return httpx.post(
        f"{live.url}/api/v1/apps",
        headers={"Authorization": f"Bearer {login['access_token']}"},
        json={"name": "手机应用", "public": True, "redirect_uris": [REDIRECT], **extra},
    )


def test_a_public_client_uses_pkce_and_no_secret(engine: Engine, live: LiveServer, catalog: dict):
    created = _public_app(live)
    assert created.status_code == 201, created.text
    app = created.json()
    assert app["client_secret"] is None and app["client_type"] == "public"
    assert app["token_endpoint_auth_methods"] == ["none"]
    client_id = app["client_id"]
    token_url = f"{live.url}/oauth/token"

    client = OAuth2Client(
        client_id,
        token_endpoint_auth_method="none",
        redirect_uri=REDIRECT,
        code_challenge_method="S256",
    )
    url, _ = client.create_authorization_url(
        f"{live.url}/oauth/authorize",
        code_verifier="m" * 64,
        scope=f"dataset:{SI}:self",
        purpose="手机端查询本人社保",
    )
    location = _consent(live, url).headers["location"]
    token = client.fetch_token(token_url, authorization_response=location, code_verifier="m" * 64)
    assert token["scope"] == f"dataset:{SI}:self" and token["refresh_token"]
    mine = httpx.get(
        f"{live.url}/api/v1/datasets/{SI}/records",
        headers={"Authorization": f"Bearer {token['access_token']}"},
    )
    assert mine.status_code == 200 and [r["record_id"] for r in mine.json()["data"]] == [1]

    # its refresh tokens live one day, not thirty
    with Session(engine) as session:
        row = session.exec(select(RefreshToken).where(RefreshToken.client_id == client_id)).one()
    hours = (row.expires_at - row.created_at).total_seconds() / 3600
    assert 23 < hours <= 24.01

    # refresh with the client_id alone works — for this client only
    refreshed = client.refresh_token(token_url, refresh_token=token["refresh_token"])
    assert refreshed["scope"] == f"dataset:{SI}:self"
    other = _public_app(live).json()["client_id"]
    stolen = httpx.post(
        token_url,
        data={
            "grant_type": "refresh_token",
            "refresh_token": refreshed["refresh_token"],
            "client_id": other,
        },
    )
    assert stolen.status_code == 400 and stolen.json()["error"] == "invalid_grant"
    by_confidential = httpx.post(
        token_url,
        auth=(catalog["client_id"], catalog["client_secret"]),
        data={"grant_type": "refresh_token", "refresh_token": refreshed["refresh_token"]},
    )
    assert by_confidential.json()["error"] == "invalid_grant"

    # no token of its own: a public client cannot authenticate for client_credentials
    own = httpx.post(token_url, data={"grant_type": "client_credentials", "client_id": client_id})
    assert own.status_code in (400, 401) and own.json()["error"] in (
        "unauthorized_client",
        "invalid_client",
    )


def test_a_public_client_that_sends_a_secret_is_refused(live: LiveServer, catalog: dict):
    client_id = _public_app(live).json()["client_id"]
    token_url = f"{live.url}/oauth/token"
    base = {"grant_type": "refresh_token", "refresh_token": "whatever", "client_id": client_id}
    for attempt in (
        httpx.post(token_url, data={**base, "client_secret": "guess"}),
        httpx.post(token_url, data=base, auth=(client_id, "guess")),
        httpx.post(token_url, data={**base, "client_assertion": "a.b.c"}),
    ):
        assert attempt.status_code in (400, 401), attempt.text
        assert attempt.json()["error"] == "invalid_client"
        assert "public client" in attempt.json()["error_description"]


def test_a_public_client_never_gets_plain_pkce(live: LiveServer, catalog: dict):
    client_id = _public_app(live).json()["client_id"]
    params = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": REDIRECT,
        "scope": f"dataset:{SI}:self",
        "purpose": "手机端查询本人社保",
        "code_challenge": "c" * 43,
    }
    plain = httpx.get(
        f"{live.url}/oauth/authorize", params={**params, "code_challenge_method": "plain"}
    )
    assert plain.status_code == 400 and "S256" in plain.text
    none = httpx.get(f"{live.url}/oauth/authorize", params={**params, "code_challenge": ""})
    assert none.status_code == 400


def test_registering_a_public_client_checks_its_terms(engine: Engine, live: LiveServer, catalog):
    no_redirect = _public_app(live, redirect_uris=[])
    assert no_redirect.status_code == 400 and no_redirect.json()["parameter"] == "redirect_uris"
    key = ECKey.generate_key("P-256", private=True)
    with_keys = _public_app(live, jwks={"keys": [key.as_dict(private=False)]})
    assert with_keys.status_code == 400
    with engine.connect() as conn:
        count = conn.execute(sa.text("SELECT count(*) FROM apps WHERE name = '手机应用'"))
        assert count.scalar_one() == 0  # nothing was registered
    app = _public_app(live).json()
    login = httpx.post(
        f"{live.url}/auth/login", json={"username": "zhangsan", "password": PASSWORD}
    ).json()
    rotate = httpx.post(
        f"{live.url}/api/v1/apps/{app['client_id']}/rotate-secret",
        headers={"Authorization": f"Bearer {login['access_token']}"},
    )
    assert rotate.status_code == 400


# --- the issuer follows --port ------------------------------------------------------------


@pytest.mark.slow
def test_the_issuer_follows_the_port_unless_set(tmp_path: Path):
    gateway = GatewayProcess(tmp_path)
    del gateway.env["OPENGATE_ISSUER"]
    gateway.cli("migrate")
    try:
        gateway.serve(workers=1)
        meta = httpx.get(f"{gateway.url}/.well-known/oauth-authorization-server").json()
        AuthorizationServerMetadata(meta).validate()
        assert meta["issuer"] == gateway.url  # the port served, not 8000
        assert meta["token_endpoint"] == f"{gateway.url}/oauth/token"
        # A host-side token names that issuer when asked to; the default one is refused there.
        gateway.cli("users", "create", "ops", "--role", "data_admin")
        for option, status in (["--issuer", gateway.url], 200), ([], 401):
            token = gateway.cli("users", "token", "ops", *option).strip()
            me = httpx.get(f"{gateway.url}/api/v1/me", headers={"Authorization": f"Bearer {token}"})
            assert me.status_code == status, me.text
    finally:
        log = gateway.stop()
    assert f"issuer {gateway.url}" in log

    chosen = GatewayProcess(tmp_path / "chosen", OPENGATE_ISSUER="https://data.example.gov.cn")
    (tmp_path / "chosen").mkdir()
    chosen.cli("migrate")
    try:
        chosen.serve(workers=1)
        meta = httpx.get(f"{chosen.url}/.well-known/oauth-authorization-server").json()
        assert meta["issuer"] == "https://data.example.gov.cn"
    finally:
        chosen.stop()


def test_the_cli_registers_a_public_client(tmp_path: Path):
    import json

    from tests.gateway.test_cli import assert_one_line_error, run

    assert run(["migrate"], tmp_path).returncode == 0
    assert run(["users", "create", "alice", "--role", "developer"], tmp_path).returncode == 0
    public = ["--public", "--json", "--redirect-uri", REDIRECT]
    made = run(["apps", "create", "--owner", "alice", "--name", "手机", *public], tmp_path)
    assert made.returncode == 0, made.stderr
    credentials = json.loads(made.stdout)
    assert credentials["client_id"].startswith("og_") and credentials["client_secret"] is None
    # a public client only does authorization_code: no redirect URI, nothing registered
    assert_one_line_error(
        run(["apps", "create", "--owner", "alice", "--name", "x", "--public"], tmp_path), "回调地址"
    )
