"""Fail closed: when the audit store refuses writes, data endpoints answer 503
`unavailable` and send no data; when it takes writes again, the next request is served
and its event stored — without a restart."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from audit.writer import AuditWriter
from catalog.importer import import_package
from tests.audit.helpers import event
from tests.conftest import TestClient
from tests.packages import DISTRICTS, station_rows, write_package

REFUSE = {
    "postgresql": [
        "CREATE FUNCTION audit_store_down() RETURNS trigger AS $$ "
        "BEGIN RAISE EXCEPTION 'audit store down'; END $$ LANGUAGE plpgsql",
        "CREATE TRIGGER audit_store_down BEFORE INSERT ON audit_events "
        "FOR EACH ROW EXECUTE FUNCTION audit_store_down()",
    ],
    "sqlite": [
        "CREATE TRIGGER audit_store_down BEFORE INSERT ON audit_events "
        "BEGIN SELECT RAISE(ABORT, 'audit store down'); END"
    ],
}
ACCEPT = {
    "postgresql": [
        "DROP TRIGGER audit_store_down ON audit_events",
        "DROP FUNCTION audit_store_down",
    ],
    "sqlite": ["DROP TRIGGER audit_store_down"],
}
BASE = "/api/v1/datasets/air-readings"
DATA_REQUESTS = [
    (f"{BASE}/records", {"limit": 5}),
    (f"{BASE}/records", {"limit": 5, "format": "csv"}),
    (f"{BASE}/records", {"limit": 5, "format": "jsonl"}),
    (f"{BASE}/records/3", {}),
    (f"{BASE}/export", {"format": "csv"}),
    (f"{BASE}/records", {"district": "市南区"}),
]


def _run(engine: Engine, statements: dict[str, list[str]]) -> None:
    with engine.begin() as conn:
        for statement in statements[conn.dialect.name]:
            conn.exec_driver_sql(statement)


def _stored(engine: Engine, request_id: str) -> list[str]:
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text("SELECT action FROM audit_events WHERE request_id = :r"), {"r": request_id}
        )
        return [r.action for r in rows]


def test_data_endpoints_fail_closed_and_recover(
    client: TestClient, engine: Engine, packages: Path
) -> None:
    import_package(engine, write_package(packages, rows=station_rows(40)))
    served = client.get(f"{BASE}/records", params={"limit": 5})
    assert served.status_code == 200 and len(served.json()["data"]) == 5

    _run(engine, REFUSE)
    for path, params in DATA_REQUESTS:
        answer = client.get(path, params=params)
        assert answer.status_code == 503, (path, params, answer.text)
        assert answer.headers["content-type"].startswith("application/problem+json")
        problem = answer.json()
        assert problem["code"] == "unavailable", problem
        assert "data" not in problem
        body = answer.content.decode() + json.dumps(problem, ensure_ascii=False)
        assert not any(d in body for d in DISTRICTS), body  # not a row leaked
        assert _stored(engine, answer.headers["x-request-id"]) == []

    _run(engine, ACCEPT)  # the store is back: nothing else is done
    for path, params in DATA_REQUESTS:
        answer = client.get(path, params=params)
        assert answer.status_code == 200, (path, params, answer.text)
        assert _stored(engine, answer.headers["x-request-id"]), (path, params)


def test_an_event_the_database_refuses_fails_alone(engine: Engine) -> None:
    """A value the database will not take (too long for its column on PostgreSQL, a NUL)
    must not take down the batch it was committed with."""
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite takes any length and NUL")
    writer = AuditWriter(engine, None)
    poison = event(resource="x" * 300)
    nul = event(purpose="a\x00b")
    gate = threading.Event()
    # Hold the writer on the first commit so the rest arrives as one batch.
    real_append = writer._append

    def held(events: list, granted: Any = None) -> list[int]:
        gate.wait(10)
        return real_append(events, granted)

    writer._append = held  # type: ignore[method-assign]
    futures = [writer.submit(event(request_id=f"ok-{i}")) for i in range(5)]
    futures += [writer.submit(poison), writer.submit(nul)]
    futures += [writer.submit(event(request_id=f"ok-{i}")) for i in range(5, 10)]
    gate.set()
    outcomes = []
    for future in futures:
        try:
            outcomes.append(future.result(30))
        except Exception as exc:
            outcomes.append(type(exc).__name__)
    writer.close()
    good = [o for o in outcomes if isinstance(o, int)]
    assert len(good) == 10 and sorted(good) == list(range(1, 11)), outcomes
    assert isinstance(outcomes[5], str) and isinstance(outcomes[6], str), outcomes
