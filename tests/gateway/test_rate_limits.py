"""Rate limits: IETF headers, 429 with Retry-After, keys per address and per app, strict
sign-in limits, trusted proxies, Redis shared between app instances, Redis failure."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from catalog.importer import import_package
from gateway.app import create_app
from gateway.client_ip import ClientAddress, parse_networks
from gateway.settings import Settings
from tests.auth.helpers import developer_with_app
from tests.conftest import TestClient
from tests.packages import import_conditional, write_package

URL = "/api/v1/datasets/air-readings/records?limit=1"


def limited(settings: Settings, **rates: str) -> Settings:
    return settings.model_copy(update=rates)


@pytest.fixture
def open_data(engine: Engine, packages: Path) -> None:
    import_package(engine, write_package(packages))


def test_anonymous_limit_headers_and_refusal(engine: Engine, settings: Settings, open_data: None):
    with TestClient(create_app(limited(settings, rate_anon="5/minute"), engine=engine)) as client:
        for remaining in (4, 3, 2, 1, 0):
            response = client.get(URL)
            assert response.status_code == 200
            assert response.headers["ratelimit-policy"] == '"anon";q=5;w=60'
            assert response.headers["ratelimit"].startswith(f'"anon";r={remaining};t=')
        refused = client.get(URL)
        assert refused.status_code == 429
        assert refused.headers["content-type"] == "application/problem+json"
        assert refused.json()["code"] == "rate_limited" and refused.json()["limit"] == "anon"
        assert 1 <= int(refused.headers["retry-after"]) <= 60
        # probes and docs are never limited
        for path in ("/healthz", "/readyz", "/docs", "/openapi.json"):
            assert client.get(path).status_code == 200
            assert "ratelimit" not in client.get(path).headers


def test_apps_are_limited_by_client_id(engine: Engine, settings: Settings, open_data: None):
    reg = developer_with_app(engine)
    app = create_app(limited(settings, rate_app="3/minute", rate_anon="100/minute"), engine=engine)
    with TestClient(app) as client:
        token = client.post(
            "/oauth/token",
            auth=(reg.client_id, reg.client_secret),
            data={"grant_type": "client_credentials"},
        ).json()["access_token"]
        auth = {"Authorization": f"Bearer {token}"}
        statuses = [client.get(URL, headers=auth).status_code for _ in range(4)]
        assert statuses == [200, 200, 200, 429]
        assert client.get(URL).status_code == 200  # the address's own budget is separate
        assert client.get(URL, headers=auth).headers["ratelimit-policy"] == '"app";q=3;w=60'


def test_sign_in_has_its_own_strict_limit(engine: Engine, settings: Settings):
    with TestClient(create_app(limited(settings, rate_login="2/minute"), engine=engine)) as client:
        body = {"username": "nobody", "password": "whatever-pass"}
        statuses = [client.post("/auth/login", json=body).status_code for _ in range(3)]
        assert statuses == [401, 401, 429]


def scope(peer: str, *forwarded: str) -> dict:
    return {
        "client": (peer, 1234),
        "headers": [(b"x-forwarded-for", f.encode()) for f in forwarded],
    }


def test_client_address_believes_only_trusted_proxies():
    untrusted = ClientAddress("")
    assert untrusted(scope("203.0.113.9", "1.2.3.4")) == "203.0.113.9"
    behind_nginx = ClientAddress("10.0.0.0/8, 127.0.0.1")
    assert behind_nginx(scope("10.0.0.5", "198.51.100.7")) == "198.51.100.7"
    # a client cannot choose its address: the right-most untrusted hop wins
    assert behind_nginx(scope("10.0.0.5", "1.1.1.1, 198.51.100.7")) == "198.51.100.7"
    assert behind_nginx(scope("10.0.0.5", "198.51.100.7, 10.0.0.9")) == "198.51.100.7"
    assert behind_nginx(scope("203.0.113.9", "1.1.1.1")) == "203.0.113.9"
    assert behind_nginx(scope("10.0.0.5", "not-an-ip")) == "10.0.0.5"
    with pytest.raises(ValueError, match="TRUSTED_PROXIES"):
        parse_networks("10.0.0.0/8, banana")


def test_limits_are_shared_through_redis(
    engine: Engine, settings: Settings, open_data: None, redis_url: str
):
    import redis

    redis.Redis.from_url(redis_url).flushdb()  # counters of earlier tests share these keys
    shared = limited(settings, rate_anon="4/minute", redis_url=redis_url)
    with (
        TestClient(create_app(shared, engine=engine)) as one,
        TestClient(create_app(shared, engine=engine)) as two,
    ):
        statuses = [c.get(URL).status_code for c in (one, two, one, two, one, two)]
    assert statuses.count(200) == 4 and statuses[-2:] == [429, 429]


def test_redis_down_serves_open_data_and_closes_conditional(
    engine: Engine, settings: Settings, packages: Path, open_data: None
):
    import_conditional(
        engine,
        packages,
        fields=[
            {"name": "record_id", "type": "integer", "level": 1},
            {"name": "name", "type": "string", "level": 3, "pii": "name"},
        ],
        rows=[[1, "张三"]],
    )
    down = limited(settings, redis_url="redis://127.0.0.1:1/0")
    with TestClient(create_app(down, engine=engine)) as client:
        assert client.get(URL).status_code == 200  # per-worker counters stand in
        closed = client.get("/api/v1/datasets/social-insurance/records")
        assert closed.status_code == 503 and closed.json()["code"] == "unavailable"
        assert client.get("/api/v1/datasets").status_code == 200
