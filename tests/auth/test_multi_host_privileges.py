"""Privileges checked against the truth on every host: two `opengate serve` processes (two
hosts of one installation) on one PostgreSQL and one Redis. A token issued by one host
stops on the very next request to the other once the CLI (or the API of the first host)
disables or demotes its account, disables its app or rotates the app's secret."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from tests.conftest import GatewayProcess


def _reset(url: str) -> None:
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("DROP SCHEMA public CASCADE"))
        conn.execute(sa.text("CREATE SCHEMA public"))
    engine.dispose()


@pytest.mark.slow
@pytest.mark.postgres
def test_changes_reach_every_host_on_the_next_request(
    tmp_path: Path, pg_database: str, redis_url: str
):
    _reset(pg_database)
    database = pg_database.replace("postgresql+psycopg://", "postgresql://")
    env = {"OPENGATE_REDIS_URL": redis_url, "OPENGATE_DATABASE_URL": database}
    a = GatewayProcess(tmp_path, **env)
    b = GatewayProcess(tmp_path, **env, OPENGATE_ISSUER=a.url)  # one installation, one issuer
    b.log_path = tmp_path / "serve-b.log"
    a.cli("migrate")
    for name, role in (("reviewer", "data_admin"), ("leaver", "developer"), ("dev", "developer")):
        a.cli("users", "create", name, "--role", role)
    first = json.loads(a.cli("apps", "create", "--owner", "dev", "--name", "a", "--json"))
    second = json.loads(a.cli("apps", "create", "--owner", "dev", "--name", "b", "--json"))

    def bearer(username: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {a.cli('users', 'token', username).strip()}"}

    def app_token(creds: dict[str, str]) -> dict[str, str]:
        answer = httpx.post(
            f"{a.url}/oauth/token",
            auth=(creds["client_id"], creds["client_secret"]),
            data={"grant_type": "client_credentials"},
        )
        return {"Authorization": f"Bearer {answer.json()['access_token']}"}

    try:
        a.serve(workers=1)
        b.serve(workers=1)
        reviewer, leaver, dev = bearer("reviewer"), bearer("leaver"), bearer("dev")
        first_app, second_app = app_token(first), app_token(second)

        def status(host: GatewayProcess, path: str, auth: dict[str, str]) -> int:
            return httpx.get(f"{host.url}{path}", headers=auth, timeout=10).status_code

        for host in (a, b):
            assert status(host, "/api/v1/admin/grants", reviewer) == 200
            assert status(host, "/api/v1/me", leaver) == 200
            assert status(host, "/api/v1/datasets", first_app) == 200
            assert status(host, "/api/v1/datasets", second_app) == 200

        a.cli("users", "set-role", "reviewer", "developer")
        a.cli("users", "disable", "leaver")
        a.cli("apps", "disable", first["client_id"])
        rotated = httpx.post(
            f"{a.url}/api/v1/apps/{second['client_id']}/rotate-secret", headers=dev
        )
        assert rotated.status_code == 200
        # the very next request, on either host: no waiting for a poll
        assert status(b, "/api/v1/datasets", second_app) == 401
        for host in (b, a):
            assert status(host, "/api/v1/admin/grants", reviewer) == 401
            assert status(host, "/api/v1/me", leaver) == 401
            assert status(host, "/api/v1/datasets", first_app) == 401
            assert status(host, "/api/v1/datasets", second_app) == 401
        new = app_token({**second, "client_secret": rotated.json()["client_secret"]})
        assert status(b, "/api/v1/datasets", new) == 200
    finally:
        a.stop()
        b.stop()
