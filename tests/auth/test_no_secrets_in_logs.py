"""No secret, password or token ever reaches a log line."""

from __future__ import annotations

import logging

import pytest
from sqlalchemy.engine import Engine

from tests.auth.helpers import PASSWORD, developer_with_app
from tests.conftest import TestClient


def test_a_whole_session_logs_no_secret(
    client: TestClient, engine: Engine, caplog: pytest.LogCaptureFixture
):
    caplog.set_level(logging.DEBUG)
    reg = developer_with_app(engine)
    login = client.post("/auth/login", json={"username": "dev1", "password": PASSWORD}).json()
    bad = client.post("/auth/login", json={"username": "dev1", "password": "not-my-password"})
    assert bad.status_code == 401
    token = client.post(
        "/oauth/token",
        auth=(reg.client_id, reg.client_secret),
        data={"grant_type": "client_credentials"},
    ).json()["access_token"]
    client.post(
        "/oauth/token",
        auth=(reg.client_id, "wrong-secret-value"),
        data={"grant_type": "client_credentials"},
    )
    client.get("/api/v1/datasets", headers={"Authorization": f"Bearer {token}x"})
    client.post("/oauth/revoke", auth=(reg.client_id, reg.client_secret), data={"token": token})
    logged = caplog.text
    for secret in (
        PASSWORD,
        "not-my-password",
        reg.client_secret,
        "wrong-secret-value",
        token,
        token[-40:],
        login["access_token"][-40:],
    ):
        assert secret not in logged
