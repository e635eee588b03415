"""An app and its bearer token for a benchmark's gateway: a developer account and an app
made with the CLI, a token from the running server's token endpoint."""

from __future__ import annotations

import json
import os
import subprocess

import httpx

from bench.common import PYTHON

CLI = [PYTHON, "-m", "gateway.cli"]


def create_app_credentials(env: dict[str, str]) -> dict[str, str]:
    """Run before `serve`: client_id and client_secret of a new app (owner `bench`)."""
    run_env = {**os.environ, **env}
    # The installation's keys first (what `serve` would make on its first start).
    subprocess.run(
        [PYTHON, "-c", "from gateway.app import create_app; create_app()"],
        env=run_env,
        check=True,
        capture_output=True,
    )
    subprocess.run(
        [*CLI, "users", "create", "bench", "--role", "developer"],
        env=run_env,
        check=True,
        capture_output=True,
    )
    created = subprocess.run(
        [*CLI, "apps", "create", "--owner", "bench", "--name", "bench", "--json"],
        env=run_env,
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(created.stdout)


def bearer_header(base: str, credentials: dict[str, str]) -> dict[str, str]:
    token = httpx.post(
        f"{base}/oauth/token",
        auth=(credentials["client_id"], credentials["client_secret"]),
        data={"grant_type": "client_credentials"},
    ).json()["access_token"]
    return {"Authorization": f"Bearer {token}"}
