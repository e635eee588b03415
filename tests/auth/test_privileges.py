"""Privileges checked against the truth (issue 12 finding 8): a token issued before its
account was disabled or given another role, or before its app was disabled or got a new
secret, stops on the next request — through the admin API (sysadmin) and the CLI. The
multi-host version of this is tests/auth/test_multi_host_privileges.py."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session
from typer.testing import CliRunner

from gateway.cli import app as cli
from gateway.settings import Settings
from tests.auth.helpers import PASSWORD, audit_events, developer_with_app, user
from tests.conftest import TestClient
from tests.packages import import_conditional

FIELDS = [
    {"name": "record_id", "type": "integer", "level": 1},
    {"name": "monthly_base", "type": "integer", "level": 2},
]


def bearer(client: TestClient, username: str) -> dict[str, str]:
    token = client.post("/auth/login", json={"username": username, "password": PASSWORD}).json()[
        "access_token"
    ]
    return {"Authorization": f"Bearer {token}"}


def app_token(client: TestClient, client_id: str, secret: str) -> dict[str, str]:
    answer = client.post(
        "/oauth/token", auth=(client_id, secret), data={"grant_type": "client_credentials"}
    )
    assert answer.status_code == 200, answer.text
    return {"Authorization": f"Bearer {answer.json()['access_token']}"}


@pytest.fixture
def granted(engine: Engine, packages: Path) -> dict[str, str]:
    """A developer's app with an active grant on a conditional dataset."""
    from catalog.hosted import HostedCatalog
    from policies.grants import grant, validate_terms

    import_conditional(engine, packages, fields=FIELDS, rows=[[1, 8000], [2, 9000]])
    reg = developer_with_app(engine, "bank-dev")
    admin = user(engine, "grantor", "data_admin")
    hosted = HostedCatalog(engine, ttl=0).get("social-insurance")
    terms = validate_terms(hosted, modes=["records"], fields=None, quotas={}, duration_days=30)
    with Session(engine) as session:
        grant(
            session,
            admin_id=admin.id,
            client_id=reg.client_id,
            dataset_id=hosted.id,
            purpose="授信评估",
            terms=terms,
            note="test",
        )
    return {"client_id": reg.client_id, "client_secret": reg.client_secret}


RECORDS = "/api/v1/datasets/social-insurance/records"


def test_a_demoted_or_disabled_admin_token_stops_at_once(client: TestClient, engine: Engine):
    user(engine, "root", "sysadmin")
    user(engine, "reviewer", "data_admin")
    user(engine, "other-reviewer", "data_admin")
    root, old = bearer(client, "root"), bearer(client, "reviewer")
    assert client.get("/api/v1/admin/grants", headers=old).status_code == 200
    demoted = client.post(
        "/api/v1/admin/users/reviewer/role", json={"role": "developer"}, headers=root
    )
    assert demoted.status_code == 200 and demoted.json()["role"] == "developer"
    grant = {"client_id": "og_x", "dataset_id": "x", "purpose": "直接授权", "modes": ["records"]}
    refused = client.post("/api/v1/admin/grants", json=grant, headers=old)
    assert refused.status_code == 401 and "角色已变更" in refused.json()["detail"]
    # signing in again gives a token of the new role, which is no data_admin's
    fresh = bearer(client, "reviewer")
    assert client.post("/api/v1/admin/grants", json=grant, headers=fresh).status_code == 403

    other = bearer(client, "other-reviewer")
    disabled = client.post("/api/v1/admin/users/other-reviewer/disable", headers=root)
    assert disabled.status_code == 200
    stopped = client.get("/api/v1/admin/grants", headers=other)
    assert stopped.status_code == 401 and "已停用" in stopped.json()["detail"]
    again = client.post("/auth/login", json={"username": "other-reviewer", "password": PASSWORD})
    assert again.status_code == 401
    events = audit_events(engine, "user.set_role") + audit_events(engine, "user.disable")
    assert [e["actor"] for e in events] == ["user:root", "user:root"]
    assert events[0]["detail"] == {"from": "data_admin", "to": "developer"}


def test_a_disabled_app_stops_reading_conditional_data(
    client: TestClient, engine: Engine, granted: dict[str, str]
):
    user(engine, "root", "sysadmin")
    auth = app_token(client, granted["client_id"], granted["client_secret"])
    assert client.get(RECORDS, headers=auth).status_code == 200
    answer = client.post(
        f"/api/v1/admin/apps/{granted['client_id']}/disable", headers=bearer(client, "root")
    )
    assert answer.status_code == 200 and answer.json()["is_active"] is False
    refused = client.get(RECORDS, headers=auth)
    assert refused.status_code == 401 and "应用已停用" in refused.json()["detail"]
    no_token = client.post(
        "/oauth/token",
        auth=(granted["client_id"], granted["client_secret"]),
        data={"grant_type": "client_credentials"},
    )
    assert no_token.status_code in (400, 401) and no_token.json()["error"] == "invalid_client"


def test_rotating_a_secret_ends_the_tokens_of_the_old_one(
    client: TestClient, engine: Engine, granted: dict[str, str]
):
    old = app_token(client, granted["client_id"], granted["client_secret"])
    rotated = client.post(
        f"/api/v1/apps/{granted['client_id']}/rotate-secret", headers=bearer(client, "bank-dev")
    ).json()
    refused = client.get(RECORDS, headers=old)
    assert refused.status_code == 401 and "密钥已更换" in refused.json()["detail"]
    introspected = client.post(
        "/oauth/introspect",
        auth=(granted["client_id"], rotated["client_secret"]),
        data={"token": old["Authorization"][7:]},
    ).json()
    assert introspected == {"active": False}
    new = app_token(client, granted["client_id"], rotated["client_secret"])
    assert client.get(RECORDS, headers=new).status_code == 200


def test_admin_changes_refuse_bad_input(client: TestClient, engine: Engine):
    user(engine, "root", "sysadmin")
    user(engine, "someone", "developer")
    root = bearer(client, "root")
    unknown = client.post("/api/v1/admin/users/nobody/disable", headers=root)
    assert unknown.status_code == 404
    bad_role = client.post(
        "/api/v1/admin/users/someone/role", json={"role": "superuser"}, headers=root
    )
    assert bad_role.status_code == 400 and bad_role.json()["code"] == "invalid_parameter"
    myself = client.post("/api/v1/admin/users/root/disable", headers=root)
    assert myself.status_code == 400 and "当前登录" in myself.json()["detail"]
    assert client.post("/api/v1/admin/apps/og_none/disable", headers=root).status_code == 404
    assert client.get("/api/v1/me", headers=root).status_code == 200  # nothing changed
    assert client.get("/api/v1/me", headers=bearer(client, "someone")).json()["role"] == "developer"
    outcomes = [e["outcome"] for e in audit_events(engine, "user.disable")]
    assert outcomes == ["error", "error"]


def run(settings: Settings, *args: str, stdin: str = "") -> tuple[int, str]:
    env = {
        "OPENGATE_DATABASE_URL": settings.database_url,
        "OPENGATE_DATA_DIR": str(settings.data_dir),
    }
    result = CliRunner().invoke(cli, list(args), input=stdin, env=env)
    return result.exit_code, result.output


def test_the_cli_disables_demotes_and_disables_apps(
    client: TestClient, engine: Engine, settings: Settings, granted: dict[str, str]
):
    user(engine, "reviewer", "data_admin")
    user(engine, "leaver", "developer")
    admin, leaver = bearer(client, "reviewer"), bearer(client, "leaver")
    app = app_token(client, granted["client_id"], granted["client_secret"])
    assert run(settings, "users", "set-role", "reviewer", "auditor")[0] == 0
    assert run(settings, "users", "disable", "leaver")[0] == 0
    assert run(settings, "apps", "disable", granted["client_id"])[0] == 0
    time.sleep(1.2)  # no Redis here: the worker's mirror reads the table every second
    assert client.get("/api/v1/admin/grants", headers=admin).status_code == 401
    assert client.get("/api/v1/me", headers=leaver).status_code == 401
    assert client.get(RECORDS, headers=app).status_code == 401
    code, output = run(settings, "users", "set-role", "reviewer", "superuser")
    assert code == 1 and "未知角色" in output and "Traceback" not in output
    assert run(settings, "users", "disable", "nobody")[0] == 1
    assert run(settings, "apps", "disable", "og_none")[0] == 1
    actions = [e["actor"].startswith("cli:") for e in audit_events(engine, "app.disable")]
    assert actions == [True]


def test_the_cli_enables_again_without_reviving_old_tokens(
    client: TestClient, engine: Engine, settings: Settings, granted: dict[str, str]
):
    """`users enable` / `apps enable` undo a disable: the account signs in and the app
    gets tokens with its secret again, audited; a token issued before the disable stays
    ended (it belonged to the account as it was)."""
    user(engine, "returner", "developer")
    old_user = bearer(client, "returner")
    old_app = app_token(client, granted["client_id"], granted["client_secret"])
    assert run(settings, "users", "disable", "returner")[0] == 0
    assert run(settings, "apps", "disable", granted["client_id"])[0] == 0
    time.sleep(1.2)  # no Redis here: the worker's mirror reads the table every second
    assert (
        client.post("/auth/login", json={"username": "returner", "password": PASSWORD}).status_code
        == 401
    )
    code, output = run(settings, "users", "enable", "returner")
    assert (code, output.strip()) == (0, "enabled returner")
    assert run(settings, "apps", "enable", granted["client_id"])[0] == 0
    time.sleep(1.2)
    assert client.get("/api/v1/me", headers=bearer(client, "returner")).status_code == 200
    new_app = app_token(client, granted["client_id"], granted["client_secret"])
    assert client.get(RECORDS, headers=new_app).status_code == 200
    stale_user = client.get("/api/v1/me", headers=old_user)
    assert stale_user.status_code == 401 and "重新登录" in stale_user.json()["detail"]
    assert client.get(RECORDS, headers=old_app).status_code == 401
    for action in ("user.enable", "app.enable"):
        [event] = audit_events(engine, action)
        assert event["actor"].startswith("cli:") and event["outcome"] == "allowed"
    # bad input: a clear one-line refusal, nothing changed
    code, output = run(settings, "users", "enable", "nobody")
    assert code == 1 and "nobody" in output and "Traceback" not in output
    assert run(settings, "apps", "enable", "og_none")[0] == 1
    assert len(audit_events(engine, "user.enable")) == 1
