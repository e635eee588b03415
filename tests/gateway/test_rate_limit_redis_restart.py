"""Redis stops and starts under two running gateways (issue 5, a real redis-server).

Down: no 500, no crash, conditional data refused with 503 `unavailable`, open data and the
catalog served (each worker counting on its own). Back: the limits are shared again — one
request to each gateway lands in the same Redis window — within 5 s of Redis answering.
The 5 s is the recovery deadline the issue sets, checked as a functional timeout."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis

from gateway.database import create_engine
from tests.conftest import REQUIRE_REDIS, GatewayProcess, free_port
from tests.packages import import_conditional, write_package

RECOVERY_DEADLINE = 5.0
OPEN = "/api/v1/datasets/air-readings/records?limit=1"
CONDITIONAL = "/api/v1/datasets/social-insurance/records?limit=1"


class RedisServer:
    """A private redis-server on its own port, stopped with SIGKILL (a crash, not a
    goodbye) and started again on the same port, empty."""

    def __init__(self, tmp_path: Path) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.dir = tmp_path
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> float:
        """Start; the moment it answered PING."""
        command = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1"]
        command += ["--save", "", "--appendonly", "no", "--daemonize", "no"]
        with (self.dir / "redis.log").open("ab") as log:
            self.process = subprocess.Popen(
                command, cwd=self.dir, stdout=log, stderr=subprocess.STDOUT
            )
        client = redis.Redis(port=self.port, socket_connect_timeout=0.2)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                return time.monotonic()
            except redis.ConnectionError:
                assert self.process.poll() is None, (self.dir / "redis.log").read_text()
                assert time.monotonic() < deadline, "redis-server did not start"
                time.sleep(0.02)

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)

    def entries(self) -> int:
        """Requests counted in the rate-limit windows now."""
        client = redis.Redis(port=self.port)
        return sum(client.llen(key) for key in client.scan_iter("LIMITS:*"))


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    if shutil.which("redis-server") is None:
        message = "redis-server is not installed (apt-get install redis-server)"
        if REQUIRE_REDIS:
            pytest.fail(message)
        pytest.skip(message)
    server = RedisServer(tmp_path)
    server.start()
    yield server
    server.kill()


def gateway(folder: Path, redis_url: str) -> GatewayProcess:
    folder.mkdir()
    process = GatewayProcess(
        folder, OPENGATE_REDIS_URL=redis_url, OPENGATE_RATE_ANON="10000/minute"
    )
    process.cli("migrate")
    process.cli("datasets", "import", str(write_package(folder / "pkgs")))
    engine = create_engine(process.env["OPENGATE_DATABASE_URL"])
    import_conditional(
        engine,
        folder / "pkgs",
        fields=[
            {"name": "record_id", "type": "integer", "level": 1},
            {"name": "name", "type": "string", "level": 3, "pii": "name"},
        ],
        rows=[[1, "张三"]],
    )
    engine.dispose()
    return process.serve(workers=1)


def remaining(response: httpx.Response) -> int:
    assert response.status_code == 200, response.text
    return int(response.headers["ratelimit"].split(";r=")[1].split(";")[0])


def shared(a: httpx.Client, b: httpx.Client, server: RedisServer) -> bool:
    """One request to each gateway: both counted in Redis, in the same window."""
    before = server.entries()
    first, second = remaining(a.get(OPEN)), remaining(b.get(OPEN))
    return server.entries() - before == 2 and second == first - 1


@pytest.mark.slow
def test_redis_stop_and_start(tmp_path: Path, redis_server: RedisServer):
    hosts = [gateway(tmp_path / name, redis_server.url) for name in ("host-a", "host-b")]
    statuses: list[int] = []
    try:
        with (
            httpx.Client(base_url=hosts[0].url, timeout=10) as a,
            httpx.Client(base_url=hosts[1].url, timeout=10) as b,
        ):
            assert shared(a, b, redis_server)
            up = a.get(CONDITIONAL)
            assert up.status_code in (401, 403), up.text  # the grant check, not the limiter

            redis_server.kill()
            for _ in range(10):
                for client in (a, b):
                    open_data = client.get(OPEN)
                    closed = client.get(CONDITIONAL)
                    catalog = client.get("/api/v1/datasets")
                    statuses += [open_data.status_code, closed.status_code, catalog.status_code]
                    assert open_data.status_code == 200, open_data.text
                    assert "ratelimit" in open_data.headers  # counted, by this worker alone
                    assert catalog.status_code == 200
                    assert closed.status_code == 503, closed.text
                    assert closed.headers["content-type"] == "application/problem+json"
                    assert closed.json()["code"] == "unavailable"
                    assert closed.headers["retry-after"] == "1"
            assert a.get("/readyz").status_code == 503  # the probe tells the balancer

            answering = redis_server.start()
            deadline = answering + RECOVERY_DEADLINE
            while not shared(a, b, redis_server):
                assert time.monotonic() < deadline, "limits not shared again within 5 s"
                time.sleep(0.05)
            recovered = time.monotonic() - answering
            print(f"limits shared again {recovered:.2f} s after Redis answered")
            assert a.get(CONDITIONAL).status_code in (401, 403)
            assert b.get(CONDITIONAL).status_code in (401, 403)
        for host in hosts:
            assert host.process.poll() is None, "a gateway exited"  # type: ignore[attr-defined]
    finally:
        logs = [host.stop() for host in hosts]
    assert 500 not in statuses
    for log in logs:
        assert "Redis unavailable for rate limits" in log
        assert "Redis is back; rate limits are shared again" in log
    for host in hosts:  # every refusal is in that host's audit log
        engine = create_engine(host.env["OPENGATE_DATABASE_URL"])
        with engine.connect() as conn:
            refused = conn.exec_driver_sql(
                "SELECT count(*) FROM audit_events WHERE action = 'data.refused' "
                "AND status = 503 AND resource LIKE '%social-insurance%'"
            ).scalar_one()
        engine.dispose()
        assert refused == 10
        assert "Traceback" not in log
