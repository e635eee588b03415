"""Fetching a client's `jwks_uri` (private_key_jwt): parsed allowlist, address checks,
deadlines and a size cap; every failure is 401 `invalid_client`, never a 500 or a hang.

Real servers on 127.0.0.1 (allowlisted by IP literal, as an operator would), each bounded in
time: a good one, one dripping its body, one dripping its headers, oversized ones, and the
attacker's server that the userinfo trick pointed at.
"""

from __future__ import annotations

import http.server
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field

import pytest
import sqlalchemy as sa
from joserfc import jwt
from joserfc.jwk import ECKey
from sqlalchemy.engine import Engine
from sqlmodel import Session

from auth.models import App
from auth.outbound import Limits, OutboundPolicy, OutboundRefused, fetch
from gateway.app import create_app
from gateway.settings import Settings
from tests.auth.helpers import developer_with_app
from tests.conftest import TestClient

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
DRIP_FOR = 12.0  # a dripping server gives up after this long, whatever happens


@dataclass
class Server:
    port: int
    hits: list[str] = field(default_factory=list)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def _jwks(key: ECKey) -> bytes:
    return json.dumps({"keys": [key.as_dict(private=False)]}).encode()


@contextmanager
def serve(respond: Callable[[http.server.BaseHTTPRequestHandler], None]) -> Iterator[Server]:
    """A loopback HTTP server answering every GET with `respond`; stopped afterwards."""
    stop = threading.Event()
    server_info = Server(0)

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            server_info.hits.append(self.path)
            self.stop = stop  # type: ignore[attr-defined]
            with suppress(BrokenPipeError, ConnectionResetError):  # the gateway hung up
                respond(self)

        def log_message(self, *args: object) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    server_info.port = httpd.server_port
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield server_info
    finally:
        stop.set()
        httpd.shutdown()
        httpd.server_close()


def answer(body: bytes, status: int = 200, headers: dict[str, str] | None = None) -> Callable:
    def respond(h: http.server.BaseHTTPRequestHandler) -> None:
        h.send_response(status)
        for k, v in {"Content-Type": "application/json", **(headers or {})}.items():
            h.send_header(k, v)
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)

    return respond


def _drip(h: http.server.BaseHTTPRequestHandler, byte: bytes) -> None:
    """`byte` every 0.2 s until the gateway hangs up or DRIP_FOR has passed."""
    h.wfile.flush()
    deadline = time.monotonic() + DRIP_FOR
    while time.monotonic() < deadline and not h.stop.is_set():  # type: ignore[attr-defined]
        h.wfile.write(byte)
        h.wfile.flush()
        time.sleep(0.2)


def drip_body(h: http.server.BaseHTTPRequestHandler) -> None:
    """Headers at once, then one byte of a long body at a time (each read is quick)."""
    h.send_response(200)
    h.send_header("Content-Type", "application/json")
    h.send_header("Content-Length", "100000")
    h.end_headers()
    _drip(h, b" ")


def drip_headers(h: http.server.BaseHTTPRequestHandler) -> None:
    """The status line, then a header byte at a time: the answer never gets going."""
    h.wfile.write(b"HTTP/1.1 200 OK\r\nX-Slow: ")
    _drip(h, b"a")


def undeclared(body: bytes) -> Callable:
    """A body without Content-Length, ended by closing the connection."""

    def respond(h: http.server.BaseHTTPRequestHandler) -> None:
        h.close_connection = True
        h.wfile.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n"
        )
        for i in range(0, len(body), 4096):
            h.wfile.write(body[i : i + 4096])

    return respond


def settings_for(settings: Settings, *allowed: str, **extra: object) -> Settings:
    return settings.model_copy(
        update={
            "jwks_uri_allowlist": ",".join(allowed),
            "outbound_connect_timeout": 1.0,
            "outbound_read_timeout": 1.0,
            "outbound_total_timeout": 1.5,
            **extra,
        }
    )


def app_with_jwks_uri(engine: Engine, uri: str, username: str = "jwksdev") -> str:
    """An app whose stored jwks_uri is `uri`, written as an older gateway (or a careless
    database edit) may have left it: the fetch must hold on its own."""
    reg = developer_with_app(engine, username)
    with Session(engine) as session:
        app = session.get(App, reg.client_id)
        assert app is not None
        app.jwks_uri = uri
        session.add(app)
        session.commit()
    return reg.client_id


def assertion(client_id: str, key: ECKey) -> str:
    now = int(time.time())
    claims = {
        "iss": client_id,
        "sub": client_id,
        "aud": "http://testserver/oauth/token",
        "exp": now + 60,
        "iat": now,
        "jti": uuid.uuid4().hex,
    }
    return jwt.encode({"alg": "ES256", "kid": key.kid}, claims, key)


def token_request(client: TestClient, client_id: str, key: ECKey) -> tuple[int, dict, float]:
    started = time.monotonic()
    response = client.post(
        "/oauth/token",
        data={
            "grant_type": "client_credentials",
            "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": assertion(client_id, key),
        },
    )
    return response.status_code, response.json(), time.monotonic() - started


def gateway(engine: Engine, settings: Settings) -> TestClient:
    return TestClient(
        create_app(settings.model_copy(update={"issuer": "http://testserver"}), engine=engine)
    )


def key_pair() -> ECKey:
    return ECKey.generate_key("P-256", {"kid": uuid.uuid4().hex[:8]}, private=True)


def assert_refused(status: int, body: dict) -> None:
    assert status == 401, body
    assert body["error"] == "invalid_client"
    assert "jwks_uri" in body["error_description"]


def token_events(engine: Engine) -> list[int]:
    """Statuses of the token.issue events so far (a private_key_jwt client is noted as
    `(private_key_jwt)` until it is authenticated)."""
    with engine.connect() as conn:
        return [
            row[0]
            for row in conn.execute(
                sa.text("SELECT status FROM audit_events WHERE action = 'token.issue' ORDER BY seq")
            )
        ]


# --- the finding: userinfo ---------------------------------------------------------------


def test_userinfo_cannot_smuggle_another_port(engine: Engine, settings: Settings):
    """`http://127.0.0.1:A@127.0.0.1:B/jwks` passed the old prefix check for
    `http://127.0.0.1:A` and was fetched from B, the attacker's server."""
    key = key_pair()
    with serve(answer(b'{"keys": []}')) as allowed, serve(answer(_jwks(key))) as evil:
        uri = f"http://127.0.0.1:{allowed.port}@127.0.0.1:{evil.port}/jwks"
        live = settings_for(settings, allowed.base)
        with gateway(engine, live) as client:
            from tests.auth.helpers import PASSWORD, user

            user(engine, "regdev", "developer")
            login = client.post("/auth/login", json={"username": "regdev", "password": PASSWORD})
            auth = {"Authorization": f"Bearer {login.json()['access_token']}"}
            refused = client.post(
                "/api/v1/apps", headers=auth, json={"name": "偷梁换柱", "jwks_uri": uri}
            )
            assert refused.status_code == 400 and refused.json()["code"] == "invalid_parameter"
            assert refused.json()["parameter"] == "jwks_uri"

            client_id = app_with_jwks_uri(engine, uri)
            status, body, _ = token_request(client, client_id, key)
        assert_refused(status, body)
        assert evil.hits == [] and allowed.hits == []
        assert token_events(engine) == [401]


def test_allow_listed_uri_still_works(engine: Engine, settings: Settings):
    key = key_pair()
    with serve(answer(_jwks(key))) as keys:
        live = settings_for(settings, f"{keys.base}/keys/")
        client_id = app_with_jwks_uri(engine, f"{keys.base}/keys/app.json")
        with gateway(engine, live) as client:
            status, body, _ = token_request(client, client_id, key)
            assert status == 200, body
            status, body, _ = token_request(client, client_id, key)  # cached
            assert status == 200
        assert keys.hits == ["/keys/app.json"]


# --- deadlines and size ------------------------------------------------------------------


@pytest.mark.parametrize("respond", [drip_body, drip_headers], ids=["body", "headers"])
def test_slow_drip_cannot_hold_a_token_request(engine: Engine, settings: Settings, respond):
    """Each read is quick, so a read timeout alone never fires: the total deadline
    (1.5 s here) ends the fetch. The old code held the request for minutes, then 500."""
    key = key_pair()
    with serve(respond) as slow:
        client_id = app_with_jwks_uri(engine, f"{slow.base}/jwks")
        with gateway(engine, settings_for(settings, slow.base)) as client:
            status, body, elapsed = token_request(client, client_id, key)
        assert_refused(status, body)
        assert elapsed < 4.0, f"held {elapsed:.1f} s"
        assert slow.hits == ["/jwks"]


@pytest.mark.parametrize("declared", [True, False], ids=["content-length", "until-close"])
def test_oversized_answer_is_refused(engine: Engine, settings: Settings, declared: bool):
    """A valid JWK Set padded past the cap (64 KiB by default) is not read to the end."""
    key = key_pair()
    padded = _jwks(key)[:-1] + b" " * 300_000 + b"}"
    respond = answer(padded) if declared else undeclared(padded)
    with serve(respond) as big:
        client_id = app_with_jwks_uri(engine, f"{big.base}/jwks")
        with gateway(engine, settings_for(settings, big.base)) as client:
            status, body, elapsed = token_request(client, client_id, key)
        assert_refused(status, body)
        assert elapsed < 4.0


def test_every_other_failure_is_invalid_client(engine: Engine, settings: Settings):
    """Connection refused, not JSON, a redirect, an error status, a private key in the
    set: each 401 invalid_client (the old code answered 500 for most)."""
    key = key_pair()
    private = json.dumps({"keys": [key.as_dict(private=True)]}).encode()
    with (
        serve(answer(b"<html>nope</html>", headers={"Content-Type": "text/html"})) as html,
        serve(answer(b"", status=302, headers={"Location": "http://127.0.0.1:1/"})) as moved,
        serve(answer(b'{"error": "x"}', status=500)) as broken,
        serve(answer(private)) as leaky,
    ):
        closed = Server(1)  # nothing listens on port 1
        servers = [closed, html, moved, broken, leaky]
        live = settings_for(settings, *(s.base for s in servers))
        with gateway(engine, live) as client:
            for i, server in enumerate(servers):
                client_id = app_with_jwks_uri(engine, f"{server.base}/jwks", f"dev{i}")
                status, body, _ = token_request(client, client_id, key)
                assert_refused(status, body)
                assert token_events(engine) == [401] * (i + 1)


# --- where the host resolves to -----------------------------------------------------------


def test_a_name_resolving_to_loopback_needs_the_network_allowed(engine: Engine, settings: Settings):
    """`localhost` is a name: its loopback address is refused unless the operator allows
    that network (an entry naming the IP literal allows that address by itself)."""
    key = key_pair()
    with serve(answer(_jwks(key))) as keys:
        uri = f"http://localhost:{keys.port}/jwks"
        client_id = app_with_jwks_uri(engine, uri)
        entry = f"http://localhost:{keys.port}"
        with gateway(engine, settings_for(settings, entry)) as client:
            status, body, _ = token_request(client, client_id, key)
        assert_refused(status, body)
        assert keys.hits == []
        allowed = settings_for(settings, entry, outbound_private_networks="127.0.0.0/8,::1/128")
        with gateway(engine, allowed) as client:
            status, body, _ = token_request(client, client_id, key)
        assert status == 200, body
        assert keys.hits == ["/jwks"]


# --- the policy, URL by URL ---------------------------------------------------------------

POLICY = OutboundPolicy(
    ["http://127.0.0.1:18250", "https://keys.example.com/jwks/", "https://idp.example.com/a"]
)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:18250/jwks",
        "http://127.0.0.1:18250",
        "https://keys.example.com/jwks/app1.json",
        "https://KEYS.example.com:443/jwks/app1.json?v=2",
        "https://idp.example.com/a",
        "https://idp.example.com/a/b",
    ],
)
def test_policy_allows(url: str):
    POLICY.match(url)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:18250@127.0.0.1:18251/jwks",  # userinfo: the finding
        "http://user:pw@127.0.0.1:18250/jwks",
        "http://127.0.0.1:18251/jwks",  # other port
        "https://127.0.0.1:18250/jwks",  # other scheme
        "http://127.0.0.1/jwks",  # default port 80 is another port
        "http://127.0.0.1:18250.evil.example/jwks",
        "https://keys.example.com.evil.example/jwks/x",
        "https://keys.example.com/other",  # outside the path prefix
        "https://keys.example.com/jwks/../admin",
        "https://keys.example.com/jwks/%2e%2e/admin",
        "https://idp.example.com/ab",  # a prefix is a path, not text
        "http://127.0.0.1:18250\\@127.0.0.1:18251/jwks",
        "http://127.0.0.1:18250\t@127.0.0.1:18251/jwks",
        "http://127.0.0.1:18250/jwks#x",
        "ftp://127.0.0.1:18250/jwks",
        "file:///etc/passwd",
        "http://2130706433:18250/jwks",  # 127.0.0.1 as a number: a different host here
        "http://127.0.0.1:99999/jwks",
    ],
)
def test_policy_refuses(url: str):
    with pytest.raises(OutboundRefused):
        POLICY.match(url)


@pytest.mark.parametrize(
    "address",
    ["127.0.0.1", "10.1.2.3", "192.168.0.1", "169.254.169.254", "::1", "fc00::1", "0.0.0.0"],
)
def test_non_public_addresses_of_a_name_are_refused(address: str):
    import ipaddress

    _, entry = POLICY.match("https://keys.example.com/jwks/a.json")
    assert not POLICY.permits(ipaddress.ip_address(address), entry)
    mapped = ipaddress.ip_address(f"::ffff:{address}") if "." in address else None
    if mapped is not None:
        assert not POLICY.permits(mapped, entry)
    assert POLICY.permits(ipaddress.ip_address("93.184.216.34"), entry)


def test_bad_allowlist_entry_is_a_configuration_error():
    with pytest.raises(ValueError, match="userinfo"):
        OutboundPolicy(["http://a@127.0.0.1:1"])
    with pytest.raises(ValueError, match="userinfo"):  # pydantic's ValidationError
        Settings(jwks_uri_allowlist="http://127.0.0.1:1, http://a@127.0.0.1:1")
    with pytest.raises(ValueError, match="network"):
        Settings(outbound_private_networks="10.0.0.0/33")


def test_fetch_bounds_its_own_time():
    """The fetch itself, outside the OAuth machinery: the total deadline holds."""
    with serve(drip_body) as slow:
        started = time.monotonic()
        with pytest.raises(OutboundRefused):
            fetch(
                f"{slow.base}/jwks",
                OutboundPolicy([slow.base]),
                Limits(connect_timeout=1, read_timeout=1, total_timeout=1.0),
            )
        assert time.monotonic() - started < 3.0
