"""Honest failure (issue 12, finding 12): a locked or unavailable database is 503
`unavailable` with `Retry-After`, never 500; a request that ends in an unhandled 500
writes its audit event with that status; an event stored after its client got a 503 reads
503; a failure that repeats is logged once per kind and interval.

The PostgreSQL outage under load is tests/gateway/test_pg_outage.py; never-read exports
are tests/gateway/test_export_pinning.py.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from fastapi import APIRouter, Request
from sqlalchemy.engine import Engine

from audit.events import audited
from catalog.importer import import_package
from gateway.app import create_app
from gateway.database import create_engine
from gateway.logging_config import RepeatFilter
from gateway.migrate import upgrade
from gateway.settings import Settings
from tests.auth.helpers import PASSWORD, developer_with_app, user
from tests.conftest import GatewayProcess, TestClient
from tests.packages import station_rows, write_package


def stored(engine: Engine, request_id: str) -> list[dict]:
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT action, status, outcome, detail FROM audit_events "
                "WHERE request_id = :r ORDER BY seq"
            ),
            {"r": request_id},
        ).all()
    return [
        {
            "action": r.action,
            "status": r.status,
            "outcome": r.outcome,
            "detail": json.loads(r.detail) if isinstance(r.detail, str) else r.detail,
        }
        for r in rows
    ]


class FirstFailure(logging.Handler):
    """Set when the gateway logs its first warning or error: the moment the request under
    test has failed (and its answer is being decided)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.seen = threading.Event()
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())
        self.seen.set()


@pytest.fixture
def failures() -> Iterator[FirstFailure]:
    handler = FirstFailure()
    logger = logging.getLogger("opengate")
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)


def hold_write_lock(path: str, until: threading.Event) -> threading.Thread:
    """Another process's writer, as SQLite sees it: the write lock, held until `until`."""
    taken = threading.Event()

    def hold() -> None:
        conn = sqlite3.connect(path, isolation_level=None)
        conn.execute("BEGIN IMMEDIATE")
        taken.set()
        until.wait(30)
        conn.execute("ROLLBACK")
        conn.close()

    thread = threading.Thread(target=hold, daemon=True)
    thread.start()
    assert taken.wait(10)
    return thread


@pytest.fixture
def sqlite_app(tmp_path: Path) -> Iterator[tuple[TestClient, Engine, str]]:
    """The app on SQLite with a short busy timeout (the wait for another writer's lock)."""
    path = str(tmp_path / "locked.db")
    engine = create_engine(f"sqlite:///{path}", busy_timeout=0.3)
    upgrade(engine)
    from tests.conftest import UNLIMITED

    settings = Settings(
        database_url=f"sqlite:///{path}",
        data_dir=tmp_path / "var",
        catalog_cache_seconds=0,
        **UNLIMITED,
    )
    with TestClient(create_app(settings, engine=engine)) as client:
        yield client, engine, path
    engine.dispose()


def _register(client: TestClient, _world: dict) -> httpx.Response:
    body = {"username": "newdev", "password": PASSWORD, "email": "n@example.cn"}
    return client.post("/auth/register", json=body, headers={"X-Request-Id": "locked-1"})


def _login(client: TestClient, _world: dict) -> httpx.Response:
    body = {"username": "admin1", "password": PASSWORD}
    return client.post("/auth/login", json=body, headers={"X-Request-Id": "locked-1"})


def _reject(client: TestClient, world: dict) -> httpx.Response:
    return client.post(
        f"/api/v1/admin/applications/{world['application']}/reject",
        json={"reason": "用途说明不充分"},
        headers={**world["admin"], "X-Request-Id": "locked-1"},
    )


@pytest.mark.parametrize(
    ("call", "success"),
    [(_register, 201), (_login, 200), (_reject, 200)],
    ids=["register", "login", "reject"],
)
def test_a_locked_sqlite_database_is_503_with_retry_after(
    sqlite_app: tuple[TestClient, Engine, str],
    packages: Path,
    failures: FirstFailure,
    call: Callable[[TestClient, dict], httpx.Response],
    success: int,
) -> None:
    client, engine, path = sqlite_app
    import_package(engine, write_package(packages, open_type="conditional"))
    reg = developer_with_app(engine, "bank")
    user(engine, "admin1", "data_admin")

    def login(name: str) -> dict[str, str]:
        token = client.post("/auth/login", json={"username": name, "password": PASSWORD})
        return {"Authorization": f"Bearer {token.json()['access_token']}"}

    world = {"admin": login("admin1")}
    applied = client.post(
        "/api/v1/applications",
        headers=login("bank"),
        json={
            "client_id": reg.client_id,
            "dataset_id": "air-readings",
            "purpose": "空气质量研究",
            "modes": ["records"],
            "duration_days": 30,
        },
    )
    assert applied.status_code == 201, applied.text
    world["application"] = applied.json()["id"]
    failures.seen.clear()

    # Another writer holds the lock until the route under test has failed on it; the
    # audit event of the answer is then stored.
    released = failures.seen
    holder = hold_write_lock(path, released)
    answer = call(client, world)
    holder.join(10)
    assert answer.status_code == 503, answer.text
    assert answer.headers["retry-after"].isdigit()
    problem = answer.json()
    assert problem["code"] == "unavailable" and "稍后重试" in problem["detail"]
    assert any("database failure (sqlite_" in m for m in failures.messages), failures.messages
    [event] = stored(engine, "locked-1")
    assert (event["status"], event["outcome"]) == (503, "error")
    assert event["detail"]["error"] == "unavailable"
    # nothing was half done: the same request now succeeds
    again = call(client, world)
    assert again.status_code == success, again.text


def test_concurrent_writes_on_sqlite_are_never_500(tmp_path: Path) -> None:
    """Registrations and failed sign-ins (each records the failure) at once on `serve
    --workers 2` (SQLite, one file): each waits for the write lock; none fails as
    `database is locked`."""
    gateway = GatewayProcess(tmp_path)
    gateway.cli("migrate")
    try:
        gateway.serve(workers=2)
        url = gateway.url
        sign_in = {"username": "dev00", "password": "not the password"}
        bodies = [
            {"username": f"dev{i:02d}", "password": PASSWORD, "email": f"d{i}@example.cn"}
            for i in range(24)
        ]

        def register(body: dict) -> int:
            return httpx.post(f"{url}/auth/register", json=body, timeout=60).status_code

        def sign_in_once(_: int) -> int:
            return httpx.post(f"{url}/auth/login", json=sign_in, timeout=60).status_code

        with ThreadPoolExecutor(12) as pool:
            registered = list(pool.map(register, bodies))
            signed = list(pool.map(sign_in_once, range(12)))
        assert registered == [201] * len(bodies), registered
        assert set(signed) <= {401, 429}, signed  # wrong password, or slowed down
    finally:
        log = gateway.stop()
    assert "database is locked" not in log, log[-3000:]


def test_a_500_is_audited_with_its_status(engine: Engine, settings: Settings) -> None:
    app = create_app(settings, engine=engine)
    boom = APIRouter()

    @boom.post("/api/v1/boom")
    @audited("test.boom")
    def explode(request: Request) -> None:
        raise RuntimeError("a bug")

    app.include_router(boom)
    with TestClient(app, raise_server_exceptions=False) as client:
        answer = client.post("/api/v1/boom", headers={"X-Request-Id": "boom-1"})
    assert answer.status_code == 500 and answer.json()["code"] == "internal_error"
    [event] = stored(engine, "boom-1")
    assert event["action"] == "test.boom"
    assert (event["status"], event["outcome"]) == (500, "error")
    assert event["detail"]["error"] == "internal_error"


def test_an_event_stored_late_reads_the_503_its_client_got(
    engine: Engine, settings: Settings, packages: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the audit table locked the records request answers 503 (fail closed) after the
    store timeout; once the lock is gone the writer stores the event — as that 503, not
    as the `200 allowed` the route had produced."""
    import gateway.audit_trail as audit_trail

    import_package(engine, write_package(packages, rows=station_rows(20)))
    monkeypatch.setattr(audit_trail, "STORE_TIMEOUT", 0.5)
    release = threading.Event()
    if engine.dialect.name == "sqlite":
        holder = hold_write_lock(engine.url.database, release)  # type: ignore[arg-type]
    else:
        holder = _lock_audit_head(engine, release)
    with TestClient(create_app(settings, engine=engine)) as client:
        try:
            answer = client.get(
                "/api/v1/datasets/air-readings/records", headers={"X-Request-Id": "late-1"}
            )
        finally:
            release.set()
            holder.join(10)
        assert answer.status_code == 503, answer.text
        assert answer.headers["retry-after"].isdigit()
        assert "data" not in answer.json()
        deadline = time.monotonic() + 20
        while not stored(engine, "late-1") and time.monotonic() < deadline:
            time.sleep(0.1)
    [event] = stored(engine, "late-1")
    assert (event["status"], event["outcome"]) == (503, "error")
    assert event["detail"]["error"] == "unavailable"


def _lock_audit_head(engine: Engine, until: threading.Event) -> threading.Thread:
    taken = threading.Event()

    def hold() -> None:
        with engine.connect() as conn:
            conn.exec_driver_sql("BEGIN")
            conn.exec_driver_sql("SELECT seq FROM audit_head WHERE id = 1 FOR UPDATE")
            taken.set()
            until.wait(30)
            conn.exec_driver_sql("ROLLBACK")

    thread = threading.Thread(target=hold, daemon=True)
    thread.start()
    assert taken.wait(10)
    return thread


def test_a_failure_that_repeats_is_logged_once_per_interval() -> None:
    """Through the filter `opengate serve` logs with: one line per kind and interval, for
    every logger that reports the kind, then one saying how many were held back."""
    repeats = RepeatFilter(interval=0.3)
    lines: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(record.getMessage())

    handler = Collect()
    handler.addFilter(repeats)
    for name in ("opengate", "opengate.audit"):
        logging.getLogger(name).addHandler(handler)
    try:
        for _ in range(50):
            logging.getLogger("opengate").warning(
                "database failure (%s)", "sqlite_busy", extra={"repeat_key": "database:503"}
            )
            logging.getLogger("opengate.audit").error(
                "audit: could not store", extra={"repeat_key": "audit:unavailable"}
            )
        assert lines == ["database failure (sqlite_busy)", "audit: could not store"]
        time.sleep(0.35)
        logging.getLogger("opengate").warning(
            "database failure (%s)", "sqlite_busy", extra={"repeat_key": "database:503"}
        )
        assert lines[-1] == "database failure (sqlite_busy) (49 more like this in the last 0 s)"
    finally:
        for name in ("opengate", "opengate.audit"):
            logging.getLogger(name).removeHandler(handler)
