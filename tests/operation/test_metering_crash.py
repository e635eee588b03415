"""`kill -9` of a gateway worker under metered load leaves the usage ledger exactly what
the audit log says: a metered call's ledger line commits in its audit row's transaction
(the `audit_meter` trigger), so a worker killed mid-batch loses both or neither.

A real `opengate serve --workers 2` on SQLite and on PostgreSQL; a bank's app reads a
conditional dataset under a grant bound to a priced product, from six client threads. One
worker is killed with SIGKILL while they read, the load goes on against the survivor (and
uvicorn's replacement), the server is stopped and started again and serves more metered
calls; then the ledger is recomputed from the audit log.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from catalog.importer import import_package
from operation import statements
from tests.audit.test_crash import workers_of
from tests.auth.helpers import PASSWORD, developer_with_app, user
from tests.conftest import GatewayProcess
from tests.operation.test_metering_batches import bind
from tests.operation.test_operation_api import setup_operation
from tests.packages import write_package

CLIENTS = 6
WAIT = 180.0  # seconds before a condition that never comes true fails the test


def wait_for(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT
    while not condition():
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.05)


class Load:
    """Client threads reading records with the bank's token; every 200 is counted."""

    def __init__(self, url: str, token: str) -> None:
        self.url, self.token = url, token
        self.acknowledged = 0
        self.failures = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(n,)) for n in range(CLIENTS)]

    def _run(self, number: int) -> None:
        sent = 0
        headers = {"Authorization": f"Bearer {self.token}"}
        with httpx.Client(base_url=self.url, timeout=15, headers=headers) as client:
            while not self._stop.is_set():
                sent += 1
                try:
                    answer = client.get(
                        "/api/v1/datasets/credit-records/records",
                        params={"limit": 1 + (sent + number) % 9},
                    )
                except httpx.TransportError:  # the killed worker's connections
                    with self._lock:
                        self.failures += 1
                    continue
                if answer.status_code == 200:
                    with self._lock:
                        self.acknowledged += 1

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(60)


def _login(http: httpx.Client, name: str) -> dict[str, str]:
    answer = http.post("/auth/login", json={"username": name, "password": PASSWORD})
    assert answer.status_code == 200, answer.text
    return {"Authorization": f"Bearer {answer.json()['access_token']}"}


def _app_token(http: httpx.Client, client_id: str, secret: str) -> str:
    answer = http.post(
        "/oauth/token", auth=(client_id, secret), data={"grant_type": "client_credentials"}
    )
    assert answer.status_code == 200, answer.text
    return answer.json()["access_token"]


def _allowed_calls(engine: Engine, client_id: str) -> int:
    with engine.connect() as conn:
        return conn.execute(
            sa.text(
                "SELECT count(*) FROM audit_events WHERE client_id = :c "
                "AND action = 'data.records' AND outcome = 'allowed'"
            ),
            {"c": client_id},
        ).scalar_one()


def test_kill_9_under_metered_load_keeps_the_ledger_equal_to_the_audit_log(
    engine: Engine, database_url: str, tmp_path: Path, packages: Path
) -> None:
    import_package(
        engine,
        write_package(
            packages, name="credit-records", title="企业信用记录", open_type="conditional"
        ),
    )
    operator_app = developer_with_app(engine, "op-dev")
    bank = developer_with_app(engine, "bank-dev")
    user(engine, "admin1", "data_admin")
    months = {statements.current_month()}
    gateway = GatewayProcess(tmp_path, OPENGATE_DATABASE_URL=database_url).serve(workers=2)
    try:
        with httpx.Client(base_url=gateway.url, timeout=30) as http:
            world = {
                "admin": _login(http, "admin1"),
                "developer": _login(http, "bank-dev"),
                "operator_app": operator_app.client_id,
            }
            made = setup_operation(http, world)  # type: ignore[arg-type]
            bind(http, world, made, bank.client_id, "industry")
            token = _app_token(http, bank.client_id, bank.client_secret)
        victim = workers_of(gateway, 2)[0]
        with Load(gateway.url, token) as load:
            wait_for(lambda: load.acknowledged >= 40, "metered calls before the kill")
            os.kill(victim, signal.SIGKILL)
            killed_at = load.acknowledged
            wait_for(lambda: load.acknowledged >= killed_at + 40, "metered calls after the kill")
        gateway.stop()
        served_before_restart = load.acknowledged
        gateway.serve(workers=2)  # the same data directory, database and key ring
        with Load(gateway.url, token) as again:
            wait_for(lambda: again.acknowledged >= 20, "metered calls after the restart")
    finally:
        log = gateway.stop()
    months.add(statements.current_month())

    acknowledged = served_before_restart + again.acknowledged
    calls = _allowed_calls(engine, bank.client_id)
    assert calls >= acknowledged, (calls, acknowledged, log[-2000:])  # every 200 was audited
    ledger_calls = 0
    with engine.connect() as conn:
        for month in sorted(months):
            first, after = statements.month_of(month)
            ledger = statements.ledger_units(conn, first, after)
            assert ledger == statements.audit_units(conn, first, after), month
            ledger_calls += sum(u.calls for u in ledger)
    assert ledger_calls == calls
    for month in months:
        assert statements.reconcile(engine, month) == [], month
