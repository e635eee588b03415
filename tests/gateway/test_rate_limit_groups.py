"""Route-group limits (data, auth, admin) on top of the caller's own limit, all-or-nothing
counting, the off switch, and the Redis windows being limits' own — on the in-process
counters and on the real Redis."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest
from fastapi.routing import APIRoute
from sqlalchemy.engine import Engine

from auth.principal import Principal
from catalog.importer import import_package
from gateway.app import create_app
from gateway.ratelimit import RateLimits, is_page
from gateway.ratelimit import route_group as groups
from gateway.settings import Settings
from tests.auth.helpers import PASSWORD, developer_with_app
from tests.conftest import TestClient
from tests.gateway.test_route_table import walk
from tests.packages import import_conditional, write_package
from tests.portal.web import web_login

RECORDS = "/api/v1/datasets/air-readings/records?limit=1"


@pytest.fixture
def open_data(engine: Engine, packages: Path) -> None:
    import_package(engine, write_package(packages))


@pytest.fixture(params=["memory", "redis"])
def backend(request: pytest.FixtureRequest, settings: Settings) -> Settings:
    """The settings, counting in this process or in the real Redis (flushed)."""
    if request.param == "memory":
        return settings
    import redis

    url = request.getfixturevalue("redis_url")
    redis.Redis.from_url(url).flushdb()
    return settings.model_copy(update={"redis_url": url})


def test_every_route_is_in_its_group(engine: Engine, settings: Settings):
    """Data by the routes' mark, the rest by path; checked here against the routers' own
    tags, so a new route in an existing router lands in the right group or this test says
    which."""
    app = create_app(settings, engine=engine)
    marks = app.state.route_marks

    def route_group(path: str) -> str | None:
        return groups(path, data=marks.dataset_of(path) is not None)

    seen = set()
    for route in walk(app.router.routes):
        if not isinstance(route, APIRoute):
            continue
        path = re.sub(r"\{[^}]+\}", "x", route.path)
        tags = set(route.tags)
        if tags & {"data"}:
            expected = "data"
        elif tags & {"grants", "audit", "administration"}:
            expected = "admin"
        elif path.startswith(("/auth/", "/oauth/")):
            expected = "auth"
        elif path.startswith("/api/v1/") and (
            tags & {"accounts"} or path.startswith("/api/v1/me/")
        ):
            expected = "admin"  # the signed-in account, its apps and its own 纠错
        else:
            expected = None  # catalog, probes, well-known documents
        assert route_group(path) == expected, (route.path, sorted(tags))
        seen.add(expected)
    assert seen == {"data", "auth", "admin", None}
    # the administration routes named in the contract
    for path in (
        "/api/v1/admin/applications",
        "/api/v1/admin/grants/3/revoke",
        "/api/v1/applications",
        "/api/v1/apps/abc/rotate-secret",
        "/api/v1/me",
        "/api/v1/me/consents",
        "/api/v1/audit/events",
    ):
        assert route_group(path) == "admin", path
    assert route_group("/api/v1/datasets/air-readings/records/17") == "data"
    assert route_group("/api/v1/datasets/air-readings") is None
    assert route_group("/api/v1/datasets") is None
    assert route_group("/api/v1/appstore") is None


def principal(kind: str, subject: str, client_id: str | None) -> Principal:
    return Principal(kind, subject, None, client_id, None, frozenset(), "t", None, 0)


def test_plan_names_the_windows_a_request_must_fit_in():
    limits = RateLimits(
        anon="60/minute",
        app="1200/minute",
        login="10/minute",
        token="60/minute",
        data="30/minute",
        auth="120/minute",
        admin="300/minute",
    )

    def plan(path: str, who: Principal | None = None) -> list[tuple[str, str]]:
        # the data mark and the strict marks, as the app's routes carry them
        data = "/records" in path or "/export" in path
        strict = {"/auth/login": "login", "/oauth/token": "token"}.get(path)
        group = groups(path, data=data)
        return [(c.rule.name, c.key) for c in limits.plan(who, "203.0.113.9", group, strict)]

    anon, data = "LIMITER/anon/203.0.113.9/60/1/minute", "LIMITER/data/203.0.113.9/30/1/minute"
    assert plan("/api/v1/datasets/x/records") == [("anon", anon), ("data", data)]
    assert plan("/api/v1/datasets") == [("anon", anon)]
    # a group limit no lower than the caller's own, same window, could never refuse first
    assert plan("/auth/register") == [("anon", anon)]
    assert plan("/auth/login") == [
        ("anon", anon),
        ("login", "LIMITER/login/203.0.113.9/10/1/minute"),
    ]
    app = principal("app", "client-1", "client-1")
    assert plan("/api/v1/datasets/x/export", app) == [
        ("app", "LIMITER/app/client-1/1200/1/minute"),
        ("data", "LIMITER/data/client-1/30/1/minute"),
    ]
    user = principal("user", "dev1", None)
    assert plan("/api/v1/admin/grants", user) == [
        ("app", "LIMITER/app/user:dev1/1200/1/minute"),
        ("admin", "LIMITER/admin/user:dev1/300/1/minute"),
    ]
    # the sign-in limit is per address, whoever signs in
    assert plan("/oauth/token", app)[-1] == ("token", "LIMITER/token/203.0.113.9/60/1/minute")


def test_group_limits_come_from_the_environment(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("OPENGATE_RATE_DATA", "7/second")
    monkeypatch.setenv("OPENGATE_RATE_AUTH", "8/minute")
    monkeypatch.setenv("OPENGATE_RATE_ADMIN", "9/hour")
    monkeypatch.setenv("OPENGATE_RATE_LIMITS_ENABLED", "false")
    limits = RateLimits.from_settings(Settings())
    policies = {name: rule.policy for name, rule in limits.rules.items()}
    assert policies["data"] == '"data";q=7;w=1'
    assert policies["auth"] == '"auth";q=8;w=60'
    assert policies["admin"] == '"admin";q=9;w=3600'
    assert limits.enabled is False
    for name in ("DATA", "AUTH", "ADMIN", "LIMITS_ENABLED"):
        monkeypatch.delenv(f"OPENGATE_RATE_{name}")
    defaults = RateLimits.from_settings(Settings(_env_file=None))
    assert defaults.enabled is True
    assert [defaults.rules[n].policy for n in ("data", "auth", "admin")] == [
        '"data";q=1200;w=60',
        '"auth";q=120;w=60',
        '"admin";q=300;w=60',
    ]


def test_data_group_limit(engine: Engine, backend: Settings, open_data: None):
    settings = backend.model_copy(update={"rate_anon": "100/minute", "rate_data": "3/minute"})
    with TestClient(create_app(settings, engine=engine)) as client:
        data_paths = (
            RECORDS,
            "/api/v1/datasets/air-readings/aggregate?group_by=district",
            "/api/v1/datasets/air-readings/records/1",
        )
        for remaining, path in zip((2, 1, 0), data_paths, strict=True):
            response = client.get(path)
            assert response.status_code == 200, response.text
            # the window closest to running out is the one reported
            assert response.headers["ratelimit-policy"] == '"data";q=3;w=60'
            assert response.headers["ratelimit"].startswith(f'"data";r={remaining};t=')
        refused = client.get("/api/v1/datasets/air-readings/export?format=csv")
        assert refused.status_code == 429
        assert refused.json()["code"] == "rate_limited" and refused.json()["limit"] == "data"
        assert refused.headers["ratelimit-policy"] == '"data";q=3;w=60'
        assert 1 <= int(refused.headers["retry-after"]) <= 60
        # the catalog is not in the data group; the refusal took nothing from the address
        catalog = client.get("/api/v1/datasets")
        assert catalog.status_code == 200
        assert catalog.headers["ratelimit"].startswith('"anon";r=96;t=')


def test_admin_group_limit(engine: Engine, backend: Settings, open_data: None):
    developer_with_app(engine)
    settings = backend.model_copy(update={"rate_app": "100/minute", "rate_admin": "2/minute"})
    with TestClient(create_app(settings, engine=engine)) as client:
        login = client.post("/auth/login", json={"username": "dev1", "password": PASSWORD})
        auth = {"Authorization": f"Bearer {login.json()['access_token']}"}
        statuses = [client.get("/api/v1/apps", headers=auth).status_code for _ in range(3)]
        assert statuses == [200, 200, 429]
        refused = client.get("/api/v1/me", headers=auth)
        assert refused.status_code == 429 and refused.json()["limit"] == "admin"
        # the same user reading data is outside the admin group
        assert client.get(RECORDS, headers=auth).status_code == 200
        # and the admin budget is per caller: another address, anonymous, is not refused
        assert client.get("/api/v1/me").status_code == 401


def test_auth_group_limit(engine: Engine, backend: Settings):
    settings = backend.model_copy(update={"rate_anon": "100/minute", "rate_auth": "2/minute"})
    with TestClient(create_app(settings, engine=engine)) as client:
        statuses = [client.post("/oauth/introspect", data={}).status_code for _ in range(2)]
        assert 429 not in statuses
        refused = client.post("/auth/register", json={})
        assert refused.status_code == 429 and refused.json()["limit"] == "auth"
        assert client.get("/api/v1/datasets").status_code == 200


def test_limits_can_be_turned_off(engine: Engine, settings: Settings, packages: Path):
    import_package(engine, write_package(packages))
    import_conditional(
        engine, packages, fields=[{"name": "record_id", "type": "integer", "level": 1}], rows=[[1]]
    )
    off = settings.model_copy(
        update={
            "rate_limits_enabled": False,
            "rate_anon": "1/minute",
            "rate_data": "1/minute",
            "redis_url": "redis://127.0.0.1:1/0",  # never asked
        }
    )
    with TestClient(create_app(off, engine=engine)) as client:
        for _ in range(5):
            response = client.get(RECORDS)
            assert response.status_code == 200
            assert "ratelimit" not in response.headers
            assert "ratelimit-policy" not in response.headers
        # no limiter, so no Redis to fail closed on: the grant check answers as usual
        conditional = client.get("/api/v1/datasets/social-insurance/records")
        assert conditional.status_code != 503
        assert conditional.json()["code"] != "unavailable"


def test_redis_windows_are_limits_own(
    engine: Engine, settings: Settings, open_data: None, redis_url: str
):
    """One round trip per request, on limits' key and list layout: limits' own moving
    window reads the same counts as the gateway's headers say."""
    import redis
    from limits import parse
    from limits.aio.storage import RedisStorage
    from limits.aio.strategies import MovingWindowRateLimiter

    redis.Redis.from_url(redis_url).flushdb()
    shared = settings.model_copy(
        update={"redis_url": redis_url, "rate_anon": "50/minute", "rate_data": "20/minute"}
    )
    with TestClient(create_app(shared, engine=engine)) as client:
        for _ in range(7):
            last = client.get(RECORDS)
        client.get("/api/v1/datasets")
    assert last.headers["ratelimit"].startswith('"data";r=13;')

    async def stats() -> tuple[int, int]:
        limiter = MovingWindowRateLimiter(
            RedisStorage("async+" + redis_url, implementation="redispy")
        )
        anon = await limiter.get_window_stats(parse("50/minute"), "anon", "testclient")
        data = await limiter.get_window_stats(parse("20/minute"), "data", "testclient")
        return anon.remaining, data.remaining

    assert asyncio.run(stats()) == (50 - 8, 20 - 7)


def test_pages_count_in_their_callers_web_window(engine: Engine, backend: Settings):
    """A web page counts in the `web` window of the signed-in account, or of the address
    when anonymous; over it, a Chinese HTML page answers 429. Static files count nowhere,
    and the page window is not the API's."""
    developer_with_app(engine)
    settings = backend.model_copy(update={"rate_anon": "100/minute", "rate_web": "4/minute"})
    with TestClient(create_app(settings, engine=engine)) as client:
        web_login(client, "dev1")  # two page requests of the (anonymous) address
        session = client.cookies["og_session"]
        # Signed in: the account's own window, whatever the address has spent.
        pages = ("/", "/console", "/datasets", "/cockpit")
        for remaining, url in zip((3, 2, 1, 0), pages, strict=True):
            page = client.get(url)
            assert page.status_code == 200, (url, page.text[:200])
            assert page.headers["ratelimit-policy"] == '"web";q=4;w=60'
            assert page.headers["ratelimit"].startswith(f'"web";r={remaining};t=')
        refused = client.get("/console/apps")
        assert refused.status_code == 429
        assert refused.headers["content-type"].startswith("text/html")
        assert '<html lang="zh-CN">' in refused.text and "访问过于频繁" in refused.text
        assert "每 60 秒最多打开 4 个页面" in refused.text
        assert 1 <= int(refused.headers["retry-after"]) <= 60
        assert refused.headers["ratelimit-policy"] == '"web";q=4;w=60'
        # the §10 headers on the refusal page too
        assert refused.headers["x-frame-options"] == "DENY"
        assert "content-security-policy" in refused.headers
        # Static files are no page: never refused, never counted, no limit headers.
        for _ in range(6):
            asset = client.get("/static/portal/portal.css")
            assert asset.status_code == 200 and "ratelimit-policy" not in asset.headers
        # The API is counted in its own windows: the pages' refusal took nothing from it.
        assert client.get("/api/v1/datasets").status_code == 200

        # Anonymous, from the same address: the address's window (two spent on sign-in).
        client.cookies.clear()
        for remaining in (1, 0):
            page = client.get("/datasets")
            assert page.status_code == 200
            assert page.headers["ratelimit"].startswith(f'"web";r={remaining};t=')
        assert client.get("/").status_code == 429
        assert client.get("/static/portal/portal.css").status_code == 200
        # and the account is still over its own
        client.cookies.set("og_session", session)
        assert client.get("/").status_code == 429


def test_pages_are_counted_in_the_web_window_only():
    """Which paths are pages: the portal's, not the API, static files, probes or machine
    documents; the web form's sign-in also counts in the strict login window."""
    limits = RateLimits(
        anon="60/minute", app="1200/minute", login="10/minute", token="60/minute", web="5/minute"
    )
    for path in (
        "/",
        "/datasets/x",
        "/console/apps",
        "/admin",
        "/audit/verify",
        "/me/consents",
        "/login",
        "/no-such-page",
    ):
        assert is_page(path), path
    for path in (
        "/api/v1/datasets",
        "/oauth/authorize",
        "/auth/login",
        "/static/portal/a.css",
        "/docs",
        "/docs-assets/x.js",
        "/docs/init.js",
        "/redoc",
        "/redoc-assets/y.js",
        "/healthz",
        "/readyz",
        "/openapi.json",
        "/.well-known/jwks.json",
        "/favicon.ico",
    ):
        assert not is_page(path), path
    assert [(c.rule.name, c.key) for c in limits.page_plan(None, "203.0.113.9")] == [
        ("web", "LIMITER/web/203.0.113.9/5/1/minute")
    ]
    assert [(c.rule.name, c.key) for c in limits.page_plan("user:7", "203.0.113.9", "login")] == [
        ("web", "LIMITER/web/user:7/5/1/minute"),
        ("login", "LIMITER/login/203.0.113.9/10/1/minute"),
    ]
    assert RateLimits.from_settings(Settings(_env_file=None)).rules["web"].policy == (
        '"web";q=300;w=60'
    )
