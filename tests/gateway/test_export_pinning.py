"""Exports that cannot pin the database (issue 12, finding 2).

An export reads keyset chunks, each on a connection returned to the pool before the chunk
is sent; a client that reads nothing for `export_send_timeout` seconds is dropped and what
it held is freed; a caller has at most `exports_per_caller` exports under way at once.
The bar at scale (200 never-read exports against a real `opengate serve` on PostgreSQL)
is `test_never_read_exports_do_not_pin_postgres` at the end (slow).
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from catalog.importer import import_package
from gateway.settings import Settings
from tests.conftest import LiveServer, free_port
from tests.packages import write_package

URL = "/api/v1/datasets/wide/export"
# Wide rows: a never-read export must outgrow what the kernel buffers for a socket
# (about 3 MB on loopback, whatever the client's receive buffer) before the server has
# to wait for the client.
WIDE_FIELDS = [
    {"name": "row_id", "type": "integer", "title": "编号", "level": 1},
    {"name": "station", "type": "string", "title": "站点", "level": 1},
    {"name": "note", "type": "string", "title": "说明", "level": 1},
]
NOTE = "空气质量监测说明" * 125  # 1000 characters, 3000 bytes


def wide_rows(count: int) -> list[list[object]]:
    return [[i, f"站点{i % 7}", NOTE] for i in range(1, count + 1)]


def serve(engine: Engine, settings: Settings, **changes: object) -> LiveServer:
    from gateway.app import create_app

    port = free_port()
    changed = settings.model_copy(update={"issuer": f"http://127.0.0.1:{port}", **changes})
    return LiveServer(create_app(changed, engine=engine), port)


def never_reading(port: int, path: str, *headers: str) -> socket.socket:
    """A request whose answer is never read (a small receive window, nothing taken)."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    head = "".join(f"{h}\r\n" for h in headers)
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{head}\r\n".encode())
    return sock


def drain(sock: socket.socket, timeout: float) -> tuple[bytes, bool]:
    """Everything the server sent, and whether it closed the connection within `timeout`."""
    sock.settimeout(timeout)
    received = bytearray()
    try:
        while chunk := sock.recv(1 << 20):
            received += chunk
    except TimeoutError:
        return bytes(received), False
    finally:
        sock.close()
    return bytes(received), True


def idle_in_transaction(engine: Engine) -> int:
    with engine.connect() as conn:
        return conn.execute(
            sa.text(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND state LIKE 'idle in transaction%'"
            )
        ).scalar_one()


@pytest.fixture
def wide(engine: Engine, packages: Path) -> int:
    rows = 2000  # 6 MB of CSV
    import_package(
        engine, write_package(packages, name="wide", fields=WIDE_FIELDS, rows=wide_rows(rows))
    )
    return rows


def test_a_client_that_stops_reading_is_dropped_and_holds_nothing(
    engine: Engine, settings: Settings, wide: int
) -> None:
    with serve(engine, settings, export_send_timeout=1.0, export_chunk_rows=200) as live:
        port = int(live.url.rsplit(":", 1)[1])
        stalled = never_reading(port, f"{URL}?format=csv", "X-Request-Id: stalled-export-1")
        time.sleep(0.5)  # it has sent what the socket buffers hold and waits on the client
        if engine.dialect.name == "postgresql":
            assert idle_in_transaction(engine) == 0  # no transaction held across the wait
        # meanwhile the rest of the gateway answers at once
        began = time.monotonic()
        answer = httpx.get(f"{live.url}/api/v1/datasets/wide/records", params={"limit": 5})
        assert answer.status_code == 200 and time.monotonic() - began < 1.0
        received, closed = drain_after(stalled, wait=2.5)
        assert closed, "the server kept the connection of a client that read nothing"
        assert received.count(b"\r\n") < wide + 1  # it was cut short, not completed
        # the completion event says so
        with engine.connect() as conn:
            detail = conn.execute(
                sa.text(
                    "SELECT detail FROM audit_events WHERE request_id = 'stalled-export-1' "
                    "AND action = 'data.export.completed'"
                )
            ).scalar_one()
        detail = orjson.loads(detail) if isinstance(detail, str | bytes) else detail
        assert detail["complete"] is False and detail["stopped"] == "client_not_reading"
        # and its slot is free again: two whole exports in a row for the same address
        for _ in range(2):
            whole = httpx.get(f"{live.url}{URL}", params={"format": "jsonl"}, timeout=30)
            assert whole.status_code == 200 and len(whole.content.splitlines()) == wide


def drain_after(sock: socket.socket, *, wait: float) -> tuple[bytes, bool]:
    time.sleep(wait)  # past the send deadline, still not reading
    return drain(sock, timeout=5.0)


def test_exports_per_caller_are_limited(
    engine: Engine, settings: Settings, packages: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import policies.access as door  # the enforcement door streams the export

    import_package(engine, write_package(packages))
    gate = threading.Event()
    real = door.stream_rows

    def held(*args: object, **kwargs: object) -> Iterator[list[object]]:
        gate.wait(20)  # an export under way: its first chunk has not been read yet
        yield from real(*args, **kwargs)

    monkeypatch.setattr(door, "stream_rows", held)
    export = "/api/v1/datasets/air-readings/export"
    # (held exports block a thread each: more than SQLite's one sync thread)
    with serve(engine, settings, exports_per_caller=2, sync_threads=8) as live:
        answers: list[httpx.Response] = []

        def run() -> None:
            answers.append(httpx.get(f"{live.url}{export}", params={"format": "jsonl"}, timeout=30))

        threads = [threading.Thread(target=run) for _ in range(2)]
        for thread in threads:
            thread.start()
        time.sleep(0.5)
        third = httpx.get(
            f"{live.url}{export}", params={"format": "jsonl"}, headers={"X-Request-Id": "third-1"}
        )
        assert third.status_code == 429, third.text
        assert third.headers["retry-after"]
        problem = third.json()
        assert problem["code"] == "rate_limited" and "导出" in problem["detail"]
        gate.set()
        for thread in threads:
            thread.join(30)
        assert [a.status_code for a in answers] == [200, 200]
        assert all(len(a.content.splitlines()) == 250 for a in answers)
        # the refusal is audited, and the slots are free again
        with engine.connect() as conn:
            status = conn.execute(
                sa.text("SELECT status FROM audit_events WHERE request_id = 'third-1'")
            ).scalar_one()
        assert status == 429
        again = httpx.get(f"{live.url}{export}", params={"format": "jsonl"}, timeout=30)
        assert again.status_code == 200 and len(again.content.splitlines()) == 250


def test_export_chunks_neither_skip_nor_repeat(
    engine: Engine, packages: Path, settings: Settings
) -> None:
    """Keyset chunks in any order, nulls included, add up to the rows of one query."""
    from fastapi.testclient import TestClient

    from gateway.app import create_app

    import_package(engine, write_package(packages))
    small = settings.model_copy(update={"export_chunk_rows": 7})
    with TestClient(create_app(small, engine=engine)) as chunked:
        for order in ("", "aqi", "-aqi,district", "district,-pm25"):
            params = {"format": "jsonl", "order_by": order} if order else {"format": "jsonl"}
            exported = chunked.get("/api/v1/datasets/air-readings/export", params=params)
            assert exported.status_code == 200
            ids = [orjson.loads(line)["reading_id"] for line in exported.content.splitlines()]
            paged = chunked.get(
                "/api/v1/datasets/air-readings/records",
                params={"limit": 1000, **({"order_by": order} if order else {})},
            ).json()["data"]
            assert ids == [r["reading_id"] for r in paged]
            assert sorted(ids) == list(range(1, 251))


@pytest.mark.slow
@pytest.mark.postgres
def test_never_read_exports_do_not_pin_postgres(pg_database: str) -> None:
    """200 exports nobody reads, on a real `opengate serve --workers 2` (the per-caller
    limit raised: 200 callers at once): the catalog and records keep answering 200 while
    they are stalled and after they were dropped, and no session is left `idle in
    transaction` longer than the send deadline. Latency: `python -m bench.export_pinning`."""
    from bench import export_pinning

    engine = sa.create_engine(pg_database)
    with engine.begin() as conn:
        conn.execute(sa.text("DROP SCHEMA public CASCADE"))
        conn.execute(sa.text("CREATE SCHEMA public"))
    engine.dispose()
    url = pg_database.replace("postgresql+psycopg://", "postgresql://", 1)
    send_timeout = 5.0
    figures = export_pinning.run(url, exports=200, send_timeout=send_timeout)
    summary = figures.summary()
    assert set(figures.statuses["during"]) == {200}, summary
    assert set(figures.statuses["after"]) == {200}, summary
    assert figures.exports_started == 200, summary  # all under way, none refused
    assert figures.exports_closed == 200, summary  # every stalled client dropped
    assert figures.idle_samples > 0
    assert figures.oldest_idle_in_transaction < send_timeout, summary
