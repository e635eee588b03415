"""A real `opengate serve` process with several workers, spoken to over TCP."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.packages import write_package


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_serve_with_two_workers(tmp_path: Path):
    env = {
        **os.environ,
        "OPENGATE_DATABASE_URL": f"sqlite:///{tmp_path}/serve.db",
        "OPENGATE_DATA_DIR": str(tmp_path / "var"),
    }
    cli = [sys.executable, "-m", "gateway.cli"]
    subprocess.run([*cli, "migrate"], env=env, check=True, capture_output=True, timeout=60)
    package = write_package(tmp_path / "pkgs")
    subprocess.run(
        [*cli, "datasets", "import", str(package)],
        env=env,
        check=True,
        capture_output=True,
        timeout=60,
    )
    port = free_port()
    server = subprocess.Popen(
        [*cli, "serve", "--port", str(port), "--workers", "2"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "server did not become ready"
            assert server.poll() is None, server.stderr.read().decode() if server.stderr else ""
            time.sleep(0.2)
        with httpx.Client(base_url=base, timeout=10) as client:
            for _ in range(20):
                response = client.get("/api/v1/datasets/air-readings/records", params={"limit": 5})
                assert response.status_code == 200
                assert len(response.json()["data"]) == 5
                assert response.headers["x-request-id"]
            assert "server" not in response.headers
            bad = client.get("/api/v1/datasets/air-readings/records", params={"limit": 0})
            assert bad.status_code == 400
            assert bad.headers["content-type"] == "application/problem+json"
    finally:
        server.terminate()
        server.wait(timeout=30)
