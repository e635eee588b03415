"""A real `opengate serve` process with several workers, spoken to over TCP."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.conftest import GatewayProcess
from tests.packages import write_package


@pytest.mark.slow
def test_serve_with_two_workers(tmp_path: Path):
    gateway = GatewayProcess(tmp_path)
    gateway.cli("migrate")
    gateway.cli("datasets", "import", str(write_package(tmp_path / "pkgs")))
    try:
        gateway.serve(workers=2)
        with httpx.Client(base_url=gateway.url, timeout=10) as client:
            for _ in range(20):
                response = client.get("/api/v1/datasets/air-readings/records", params={"limit": 5})
                assert response.status_code == 200
                assert len(response.json()["data"]) == 5
                assert response.headers["x-request-id"]
            assert "server" not in response.headers
            bad = client.get("/api/v1/datasets/air-readings/records", params={"limit": 0})
            assert bad.status_code == 400
            assert bad.headers["content-type"] == "application/problem+json"
            client.get(
                "/api/v1/datasets/air-readings/records", params={"station": "SECRET-VALUE-42"}
            )
            client.get("/api/v1/datasets/air-readings/records/SECRET-KEY-43")
    finally:
        log = gateway.stop()
    # the gateway's access log: one line per request, parameter names but never values
    assert '"GET /api/v1/datasets/air-readings/records ?limit" 200' in log
    assert '"GET /api/v1/datasets/air-readings/records/{key}" 404' in log
    assert "SECRET-VALUE-42" not in log and "SECRET-KEY-43" not in log
