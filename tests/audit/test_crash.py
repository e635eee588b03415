"""`kill -9` of a gateway worker under load loses no acknowledged event: every request a
client got a 200 for is in the audit log afterwards, and the chain verifies.

A real `opengate serve --workers 2` on PostgreSQL; eight client threads read records
with their own request ids, recording every 200. One worker is killed mid-load, the load
goes on against the survivor (and uvicorn's replacement), then the server stops.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from audit.verify import verify
from catalog.importer import import_package
from gateway.database import create_engine
from gateway.keys import installation_keys
from gateway.migrate import upgrade
from gateway.settings import Settings
from tests.conftest import GatewayProcess, _reset_postgres
from tests.packages import station_rows, write_package

CLIENTS = 8


def children(pid: int) -> list[int]:
    """The processes whose parent is `pid` (the server's workers), from /proc."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:  # gone meanwhile
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            found.append(int(entry.name))
    return found


def workers_of(server: GatewayProcess, count: int) -> list[int]:
    """The worker processes serving requests (uvicorn's supervisor also starts a
    resource tracker: the workers are the children that answer with their own pid)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        candidates = [
            pid
            for pid in children(server.process.pid)  # type: ignore[attr-defined]
            if "multiprocessing.resource_tracker" not in Path(f"/proc/{pid}/cmdline").read_text()
        ]
        if len(candidates) >= count:
            return candidates
        time.sleep(0.2)
    raise AssertionError(f"fewer than {count} workers")


@pytest.mark.postgres
def test_kill_9_of_a_worker_loses_no_acknowledged_event(
    pg_database: str, tmp_path: Path, packages: Path
) -> None:
    _reset_postgres(pg_database)
    engine = create_engine(pg_database)
    upgrade(engine)
    import_package(engine, write_package(packages, rows=station_rows(300)))
    server = GatewayProcess(tmp_path, OPENGATE_DATABASE_URL=pg_database).serve(workers=2)
    acknowledged: list[str] = []
    failures: list[str] = []
    stop = threading.Event()
    lock = threading.Lock()

    def load(client_number: int) -> None:
        sent = 0
        with httpx.Client(base_url=server.url, timeout=10) as client:
            while not stop.is_set():
                sent += 1
                request_id = f"crash-{client_number}-{sent}"
                try:
                    answer = client.get(
                        "/api/v1/datasets/air-readings/records",
                        params={"limit": 10 + sent % 7},
                        headers={"X-Request-Id": request_id},
                    )
                except httpx.TransportError as exc:  # the killed worker's connections
                    with lock:
                        failures.append(type(exc).__name__)
                    continue
                if answer.status_code == 200:
                    assert answer.headers["x-request-id"] == request_id
                    with lock:
                        acknowledged.append(request_id)

    try:
        victim = workers_of(server, 2)[0]
        threads = [threading.Thread(target=load, args=(n,)) for n in range(CLIENTS)]
        for t in threads:
            t.start()
        time.sleep(3)
        before_kill = len(acknowledged)
        os.kill(victim, signal.SIGKILL)
        time.sleep(4)  # the load goes on
        stop.set()
        for t in threads:
            t.join(30)
    finally:
        stop.set()
        log = server.stop()

    assert before_kill > 20, (before_kill, log[-2000:])
    assert len(acknowledged) > before_kill, "nothing was served after the kill"
    with engine.connect() as conn:
        stored = {
            r.request_id
            for r in conn.execute(
                sa.text("SELECT request_id FROM audit_events WHERE request_id LIKE 'crash-%'")
            )
        }
    missing = set(acknowledged) - stored
    assert not missing, f"{len(missing)} acknowledged requests have no event: {sorted(missing)[:5]}"
    keys = installation_keys(
        Settings(database_url=pg_database, data_dir=tmp_path / "var"), engine, create=False
    )
    report = verify(engine, keys.audit_signer.verify_keys)
    assert report.ok, report
    assert report.events >= len(acknowledged)
    engine.dispose()
