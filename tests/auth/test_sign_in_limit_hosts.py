"""The one sign-in limiter holds across hosts: two `opengate serve` processes of one
installation sharing Redis count sign-ins from one address in one window
(OPENGATE_RATE_LOGIN). The counters live under a key prefix of this test's own, and only
those keys are removed afterwards."""

from __future__ import annotations

import uuid
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from gateway.app import create_app
from gateway.settings import Settings
from tests.conftest import GatewayProcess, TestClient


def _reset(url: str) -> None:
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("DROP SCHEMA public CASCADE"))
        conn.execute(sa.text("CREATE SCHEMA public"))
    engine.dispose()


@pytest.mark.slow
@pytest.mark.parametrize(
    "backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def test_sign_in_limit_holds_across_two_hosts(
    tmp_path: Path, redis_url: str, backend: str, request: pytest.FixtureRequest
):
    import redis

    prefix = f"test-signin-{uuid.uuid4().hex[:12]}"
    env = {
        "OPENGATE_REDIS_URL": redis_url,
        "OPENGATE_RATE_LOGIN": "4/minute",
        "OPENGATE_RATE_LIMIT_PREFIX": prefix,
    }
    if backend == "postgres":
        database = request.getfixturevalue("pg_database")
        _reset(database)
        env["OPENGATE_DATABASE_URL"] = database.replace("postgresql+psycopg://", "postgresql://")
    a = GatewayProcess(tmp_path, **env)
    b = GatewayProcess(tmp_path, **env, OPENGATE_ISSUER=a.url)  # one installation
    b.log_path = tmp_path / "serve-b.log"
    a.cli("migrate")
    shared = redis.Redis.from_url(redis_url)
    try:
        a.serve(workers=1)
        b.serve(workers=1)
        answers = []
        for i, host in enumerate((a, b, a, b, a, b)):
            guess = {"username": f"guess{i}", "password": "not-the-password"}
            answers.append(httpx.post(f"{host.url}/auth/login", json=guess, timeout=10))
        assert [r.status_code for r in answers] == [401, 401, 401, 401, 429, 429]
        for refused in answers[4:]:
            assert refused.json()["code"] == "rate_limited" and refused.json()["limit"] == "login"
            assert refused.headers["ratelimit-policy"] == '"login";q=4;w=60'
        # the counts are in Redis, under this test's prefix
        assert any(b"/login/" in key for key in shared.scan_iter(f"{prefix}:*"))
    finally:
        a.stop()
        b.stop()
        for key in shared.scan_iter(f"{prefix}:*"):
            shared.delete(key)


def test_without_redis_each_process_counts_its_own(engine: Engine, settings: Settings):
    """In-process counters otherwise: what the test above would see without Redis."""
    own = settings.model_copy(update={"rate_login": "2/minute", "redis_url": None})
    guess = {"username": "guess", "password": "not-the-password"}
    with (
        TestClient(create_app(own, engine=engine)) as one,
        TestClient(create_app(own, engine=engine)) as two,
    ):
        statuses = [c.post("/auth/login", json=guess).status_code for c in (one, two, one, two)]
        assert statuses == [401, 401, 401, 401]
        assert one.post("/auth/login", json=guess).status_code == 429


@pytest.mark.parametrize("prefix", ["", "has space", "a:b", "x" * 65, "前缀"])
def test_a_bad_key_prefix_is_a_settings_error(prefix: str):
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="rate_limit_prefix"):
        Settings(rate_limit_prefix=prefix, _env_file=None)
