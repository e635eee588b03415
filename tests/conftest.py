"""Shared fixtures: a real database per test (SQLite file, or a fresh schema on a real
PostgreSQL server), the app on top of it, and dataset packages written on the fly.

PostgreSQL tests run when OPENGATE_TEST_POSTGRES_URL (default
postgresql://postgres@127.0.0.1:5432/postgres) answers. Locally they skip with a message
if it does not; with OPENGATE_REQUIRE_POSTGRES=1 (as `.ci/run` sets) they fail instead.
"""

from __future__ import annotations

import os
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path

import argon2
import pytest
import sqlalchemy as sa
from argon2 import PasswordHasher
from sqlalchemy.engine import Engine

import auth.secrets as _secrets
from gateway.database import create_engine
from gateway.migrate import upgrade
from gateway.settings import Settings
from tests.packages import write_package

# Tests create and sign in thousands of accounts: Argon2id at RFC 9106's cost (64 MiB, t=3)
# took a third of the suite. In this process only; the `opengate serve` processes the tests
# start, and tests/auth/test_password_cost.py, keep the real parameters.
_secrets._hasher = PasswordHasher.from_parameters(argon2.profiles.CHEAPEST)
_secrets._DUMMY_HASH = _secrets._hasher.hash("unknown account")

warnings.filterwarnings("ignore", message=".*httpx2.*")
from fastapi.testclient import TestClient  # noqa: E402

PG_URL = os.environ.get(
    "OPENGATE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
REQUIRE_PG = os.environ.get("OPENGATE_REQUIRE_POSTGRES") == "1"
REDIS_URL = os.environ.get("OPENGATE_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
REQUIRE_REDIS = os.environ.get("OPENGATE_REQUIRE_REDIS") == "1"

BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
# Most tests are not about rate limits; the ones that are set their own.
UNLIMITED = {
    "rate_anon": "1000000/minute",
    "rate_app": "1000000/minute",
    "rate_login": "1000000/minute",
    "rate_token": "1000000/minute",
    "rate_data": "1000000/minute",
    "rate_auth": "1000000/minute",
    "rate_admin": "1000000/minute",
    "rate_web": "1000000/minute",
}


def _sqlalchemy_url(url: str) -> str:
    return Settings(database_url=url).sqlalchemy_url


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """A throw-away database on the real PostgreSQL server, for this test session."""
    admin = sa.create_engine(_sqlalchemy_url(PG_URL), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except sa.exc.OperationalError as exc:
        message = (
            f"PostgreSQL is not reachable at {PG_URL} ({str(exc.orig).strip()[:80]}). "
            "Start it, or point OPENGATE_TEST_POSTGRES_URL at a server, to run these tests."
        )
        if REQUIRE_PG:
            pytest.fail(message)
        pytest.skip(message)
    name = f"opengate_test_{uuid.uuid4().hex[:12]}"
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    base = sa.engine.make_url(_sqlalchemy_url(PG_URL))
    yield base.set(database=name).render_as_string(hide_password=False)
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(scope="session")
def redis_url() -> str:
    """The real Redis server (database 15, flushed), or a skip saying how to get one."""
    import redis

    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1)
    try:
        client.ping()
    except redis.RedisError as exc:
        message = (
            f"Redis is not reachable at {REDIS_URL} ({exc}). Start it, or point "
            "OPENGATE_TEST_REDIS_URL at a server, to run these tests."
        )
        if REQUIRE_REDIS:
            pytest.fail(message)
        pytest.skip(message)
    client.flushdb()
    return REDIS_URL


def _reset_postgres(url: str) -> None:
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("DROP SCHEMA public CASCADE"))
        conn.execute(sa.text("CREATE SCHEMA public"))
    engine.dispose()


@pytest.fixture
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    backend = getattr(request, "param", "sqlite")
    if backend == "sqlite":
        return f"sqlite:///{tmp_path}/opengate.db"
    url = request.getfixturevalue("pg_database")
    _reset_postgres(url)
    return url


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One SQLite file migrated to head for the whole session; each test copies it (the
    migrations themselves are tested on empty databases in tests/test_migrations.py)."""
    path = tmp_path_factory.mktemp("template") / "migrated.db"
    engine = create_engine(f"sqlite:///{path}")
    upgrade(engine)
    engine.dispose()  # the last connection's close checkpoints the WAL into the file
    assert not path.with_name(path.name + "-wal").exists(), "the template kept a WAL file"
    return path


@pytest.fixture(scope="session")
def pg_schema(pg_database: str) -> str:
    """The migrated schema as SQL (`pg_dump` of a database migrated once); each test's
    emptied database runs it, in a fifth of the time of running the migrations."""
    import shutil
    import subprocess

    url = sa.engine.make_url(pg_database)
    name = f"{url.database}_tpl"
    admin = sa.create_engine(_sqlalchemy_url(PG_URL), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    template = url.set(database=name)
    engine = create_engine(template.render_as_string(hide_password=False))
    upgrade(engine)
    engine.dispose()
    pg_dump = shutil.which("pg_dump")
    assert pg_dump, "pg_dump (Debian's postgresql-client) is needed by the PostgreSQL tests"
    dump = subprocess.run(
        [pg_dump, "--inserts", "--no-owner", "--no-privileges", "-h", template.host or "",
         "-p", str(template.port or 5432), "-U", template.username or "postgres", name],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()
    # psql meta-commands (`\restrict`) are not SQL
    return "\n".join(line for line in dump.splitlines() if not line.startswith("\\"))


def _migrated(request: pytest.FixtureRequest, database_url: str) -> None:
    """Make the test's emptied database a migrated one, from the session's template."""
    url = sa.engine.make_url(database_url)
    if url.get_backend_name() == "sqlite":
        import shutil

        shutil.copyfile(request.getfixturevalue("sqlite_template"), url.database)
        return
    schema = request.getfixturevalue("pg_schema")
    engine = sa.create_engine(_sqlalchemy_url(database_url))
    raw = engine.raw_connection()  # psycopg itself: no parameter parsing of the dump's text
    try:
        raw.driver_connection.execute(schema)
        raw.commit()
    finally:
        raw.close()
        engine.dispose()


@pytest.fixture
def engine(
    request: pytest.FixtureRequest, database_url: str, settings: Settings
) -> Iterator[Engine]:
    """A migrated database with its key ring, as `opengate migrate` leaves it."""
    from gateway.keys import open_ring

    _migrated(request, database_url)
    engine = create_engine(database_url)
    open_ring(settings, engine, create=True)
    yield engine
    engine.dispose()


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return Settings(
        database_url=database_url, data_dir=tmp_path / "var", catalog_cache_seconds=0, **UNLIMITED
    )


@pytest.fixture
def client(engine: Engine, settings: Settings) -> Iterator[TestClient]:
    from gateway.app import create_app

    with TestClient(create_app(settings, engine=engine)) as client:
        yield client


@pytest.fixture
def packages(tmp_path: Path) -> Path:
    folder = tmp_path / "packages"
    folder.mkdir()
    return folder


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    # Every test that touches the database runs on SQLite and on PostgreSQL.
    if "database_url" in metafunc.fixturenames and "backend" not in metafunc.fixturenames:
        metafunc.parametrize("database_url", BACKENDS, indirect=True)


__all__ = ["TestClient", "write_package"]


class LiveServer:
    """The app served by uvicorn on a real socket, in a thread of the test process."""

    def __init__(self, app: object, port: int) -> None:
        import threading

        import uvicorn

        self.url = f"http://127.0.0.1:{port}"
        config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> LiveServer:
        import time

        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            assert time.monotonic() < deadline, "server did not start"
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def live(engine: Engine, settings: Settings) -> Iterator[LiveServer]:
    """The gateway on a real port, its issuer set to that address."""
    from gateway.app import create_app

    port = free_port()
    live_settings = settings.model_copy(update={"issuer": f"http://127.0.0.1:{port}"})
    with LiveServer(create_app(live_settings, engine=engine), port) as server:
        server.app = server.server.config.app  # type: ignore[attr-defined]
        yield server


class GatewayProcess:
    """`opengate` as a user runs it: CLI commands and a real `serve` with workers."""

    def __init__(self, tmp_path: Path, **env: str) -> None:
        import os
        import sys

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.command = [sys.executable, "-m", "gateway.cli"]
        self.env = {
            **os.environ,
            "OPENGATE_DATABASE_URL": f"sqlite:///{tmp_path}/gateway.db",
            "OPENGATE_DATA_DIR": str(tmp_path / "var"),
            "OPENGATE_ISSUER": self.url,
            **{f"OPENGATE_{k.upper()}": v for k, v in UNLIMITED.items()},
            **env,
        }
        self.process: object = None
        self.log_path = tmp_path / "serve.log"

    def cli(self, *args: str) -> str:
        import subprocess

        return subprocess.run(
            [*self.command, *args],
            env=self.env,
            check=True,
            capture_output=True,
            text=True,
            timeout=120,
        ).stdout

    def serve(self, workers: int = 2) -> GatewayProcess:
        import subprocess
        import time

        import httpx

        # A file, not a pipe: an unread pipe fills up and stalls the server.
        with self.log_path.open("wb") as log:
            self.process = process = subprocess.Popen(
                [*self.command, "serve", "--port", str(self.port), "--workers", str(workers)],
                env=self.env,
                stdout=subprocess.DEVNULL,
                stderr=log,
            )
        deadline = time.monotonic() + 90  # a loaded CI machine starts workers slowly
        while True:
            try:
                if httpx.get(f"{self.url}/readyz", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "server did not become ready"
            assert process.poll() is None, self.log_path.read_text()
            time.sleep(0.2)

    def stop(self) -> str:
        """Stop the server; its log."""
        if self.process is not None:
            self.process.terminate()  # type: ignore[attr-defined]
            self.process.wait(timeout=30)  # type: ignore[attr-defined]
        return self.log_path.read_text() if self.log_path.exists() else ""
