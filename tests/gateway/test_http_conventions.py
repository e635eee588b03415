"""Conventions every response keeps: problem+json errors, X-Request-Id, probes, docs."""

from __future__ import annotations

import re

import pytest
import sqlalchemy as sa
from fastapi import APIRouter
from sqlalchemy.engine import Engine

from gateway.app import create_app
from gateway.settings import Settings
from tests.conftest import TestClient


def test_request_id_is_generated_or_echoed(client: TestClient):
    generated = client.get("/healthz").headers["x-request-id"]
    assert re.fullmatch(r"[0-9a-f]{32}", generated)
    assert (
        client.get("/healthz", headers={"X-Request-Id": "abc-123"}).headers["x-request-id"]
        == "abc-123"
    )
    insane = client.get("/healthz", headers={"X-Request-Id": "<script>" + "x" * 300})
    assert re.fullmatch(r"[0-9a-f]{32}", insane.headers["x-request-id"])


def test_problem_document_shape(client: TestClient):
    response = client.get("/api/v1/nowhere", headers={"X-Request-Id": "rid-1"})
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json() == {
        "type": "/problems/not_found",
        "title": "资源不存在",
        "status": 404,
        "detail": "请求的资源不存在",
        "code": "not_found",
        "request_id": "rid-1",
    }
    response = client.post("/api/v1/datasets")
    assert response.status_code == 405 and response.json()["code"] == "method_not_allowed"


def test_unhandled_error_has_no_traceback(
    engine: Engine, settings: Settings, caplog: pytest.LogCaptureFixture
):
    app = create_app(settings, engine=engine)
    boom = APIRouter()

    @boom.get("/boom")
    def explode() -> None:
        raise RuntimeError("secret internals: password=hunter2")

    app.include_router(boom)
    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.get("/boom", headers={"X-Request-Id": "rid-500"})
    assert response.status_code == 500
    assert response.headers["x-request-id"] == "rid-500"
    body = response.json()
    assert body["code"] == "internal_error" and body["request_id"] == "rid-500"
    assert "Traceback" not in response.text and "hunter2" not in response.text
    assert "rid-500" in caplog.text  # the operator can find it


def test_probes(client: TestClient):
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").json()["status"] == "ready"


@pytest.mark.postgres
def test_readyz_is_503_when_the_database_is_gone(pg_database: str, tmp_path):
    """A worker reads its keys from the database as it starts (the key ring); the database
    then goes away under it."""
    import uuid

    from gateway.database import create_engine
    from gateway.migrate import upgrade
    from tests.conftest import PG_URL

    admin = sa.create_engine(
        Settings(database_url=PG_URL).sqlalchemy_url, isolation_level="AUTOCOMMIT"
    )
    name = f"opengate_gone_{uuid.uuid4().hex[:12]}"
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = sa.engine.make_url(pg_database).set(database=name).render_as_string(hide_password=False)
    engine = create_engine(url)
    upgrade(engine)
    settings = Settings(database_url=url, data_dir=tmp_path)
    try:
        with TestClient(create_app(settings, engine=engine)) as client:
            assert client.get("/readyz").status_code == 200
            with admin.connect() as conn:
                conn.execute(sa.text(f'DROP DATABASE "{name}" WITH (FORCE)'))
            response = client.get("/readyz")
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
    assert response.status_code == 503 and response.json()["code"] == "unavailable"


def test_docs_are_served_without_any_cdn(client: TestClient):
    html = client.get("/docs").text
    assert "swagger-ui-bundle.js" in html
    assert not re.search(r"(src|href)=\"https?://", html), "docs must not load from a CDN"
    for asset in re.findall(r"(?:src|href)=\"(/docs-assets/[^\"]+)\"", html):
        assert client.get(asset).status_code == 200
    spec = client.get("/openapi.json").json()
    assert "/api/v1/datasets/{dataset_id}/records" in spec["paths"]


def test_database_errors_never_carry_bound_values(engine: Engine):
    # A database error is logged with its message; a bound identity number must not be in it.
    with pytest.raises(sa.exc.DBAPIError) as info, engine.connect() as conn:
        conn.execute(
            sa.text("SELECT * FROM no_such_table WHERE x = :v"), {"v": "370202199001011237"}
        )
    assert "370202199001011237" not in str(info.value)


def test_readyz_checks_redis_when_configured(engine: Engine, settings: Settings):
    down = settings.model_copy(update={"redis_url": "redis://127.0.0.1:1/0"})
    with TestClient(create_app(down, engine=engine)) as client:
        response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["component"] == "redis"


def test_readyz_with_a_real_redis(engine: Engine, settings: Settings, redis_url: str):
    up = settings.model_copy(update={"redis_url": redis_url})
    with TestClient(create_app(up, engine=engine)) as client:
        assert client.get("/readyz").json() == {"status": "ready", "database": "ok", "redis": "ok"}
