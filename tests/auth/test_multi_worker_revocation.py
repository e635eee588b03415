"""Revocation reaches every worker on the next request: `opengate serve --workers 2` on one
Redis, a token revoked through one worker, refused by all of them at once."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from tests.conftest import GatewayProcess


@pytest.mark.slow
def test_revoked_token_fails_on_every_worker(tmp_path: Path, redis_url: str):
    gateway = GatewayProcess(tmp_path, OPENGATE_REDIS_URL=redis_url)
    gateway.cli("migrate")
    gateway.cli("users", "create", "worker", "--role", "developer")
    creds = json.loads(gateway.cli("apps", "create", "--owner", "worker", "--name", "w", "--json"))
    try:
        base = gateway.serve(workers=2).url
        basic = (creds["client_id"], creds["client_secret"])
        token = httpx.post(
            f"{base}/oauth/token", auth=basic, data={"grant_type": "client_credentials"}
        ).json()["access_token"]
        auth = {"Authorization": f"Bearer {token}"}
        for _ in range(20):  # new connections: spread over both workers
            assert httpx.get(f"{base}/api/v1/datasets", headers=auth).status_code == 200
        revoked = httpx.post(f"{base}/oauth/revoke", auth=basic, data={"token": token})
        assert revoked.status_code == 200
        statuses = {
            httpx.get(f"{base}/api/v1/datasets", headers=auth).status_code for _ in range(40)
        }
        assert statuses == {401}
    finally:
        gateway.stop()
