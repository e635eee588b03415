"""`opengate users verify-identity USERNAME --id-number-stdin`: an operator's recorded,
audited verification — the other trusted source of an identity (contract §6)."""

from __future__ import annotations

import getpass
import time

import httpx
from authlib.integrations.httpx_client import OAuth2Client
from sqlalchemy.engine import Engine

from auth.secrets import identity_hmac
from gateway.settings import Settings
from tests.auth.helpers import PASSWORD, REDIRECT, audit_events, user
from tests.auth.test_oauth_flows import PERSON_ID, authorize, person  # noqa: F401 (fixture)
from tests.auth.test_privileges import run
from tests.conftest import LiveServer
from tests.keys import keys_of

OTHER_ID = "370203198502024329"


def identity_of_account(engine: Engine, username: str) -> tuple[str | None, str | None]:
    import sqlalchemy as sa

    with engine.connect() as conn:
        return tuple(  # type: ignore[return-value]
            conn.execute(
                sa.text("SELECT identity_hmac, identity_proof FROM users WHERE username = :u"),
                {"u": username},
            ).one()
        )


def test_an_operator_verifies_an_identity(engine: Engine, settings: Settings):
    user(engine, "citizen", "developer")
    code, output = run(
        settings,
        "users",
        "verify-identity",
        "citizen",
        "--id-number-stdin",
        "--evidence",
        "居民身份证原件",
        stdin=PERSON_ID + "\n",
    )
    assert code == 0, output
    assert PERSON_ID not in output
    key = keys_of(settings, engine).identity
    proof = f"operator:{getpass.getuser()}"
    assert identity_of_account(engine, "citizen") == (identity_hmac(key, PERSON_ID), proof)
    [event] = audit_events(engine, "user.identity_verify")
    assert event["outcome"] == "allowed" and event["actor"].startswith("cli:")
    assert event["detail"]["identity"] == identity_hmac(key, PERSON_ID)
    assert event["detail"]["proof"] == proof
    assert event["detail"]["evidence"] == "居民身份证原件"
    assert PERSON_ID not in str(event)
    # the same again changes nothing and says so
    code, output = run(
        settings, "users", "verify-identity", "citizen", "--id-number-stdin", stdin=PERSON_ID
    )
    assert code == 0 and "already verified" in output


def test_bad_verifications_are_refused_audited_and_change_nothing(
    engine: Engine, settings: Settings
):
    user(engine, "owner", "developer")
    user(engine, "other", "developer")
    user(engine, "reviewer", "data_admin")
    assert (
        run(settings, "users", "verify-identity", "owner", "--id-number-stdin", stdin=PERSON_ID)[0]
        == 0
    )
    cases = [
        (["other"], "370202199001011234", "校验位不正确", "invalid_id_number"),
        (["other"], PERSON_ID, "该身份已绑定其他账号", "linked_to_other_account"),
        (["owner"], OTHER_ID, "须由管理员核验", "account_has_other_identity"),
        (["reviewer"], OTHER_ID, "not an active developer", "account"),
    ]
    for who, number, message, _reason in cases:
        code, output = run(
            settings, "users", "verify-identity", *who, "--id-number-stdin", stdin=number
        )
        assert code == 1 and message in output, output
        assert number not in output and "Traceback" not in output
        assert len(output.strip().splitlines()) == 1
    assert identity_of_account(engine, "other") == (None, None)
    assert identity_of_account(engine, "reviewer") == (None, None)
    key = keys_of(settings, engine).identity
    assert identity_of_account(engine, "owner")[0] == identity_hmac(key, PERSON_ID)
    refused = [e for e in audit_events(engine, "user.identity_verify") if e["outcome"] == "denied"]
    assert [e["detail"]["refused"] for e in refused] == [c[3] for c in cases]
    assert "370202199001011234" not in str(refused)
    no_stdin = run(settings, "users", "verify-identity", "owner")
    assert no_stdin[0] == 1 and "--id-number-stdin" in no_stdin[1]
    assert (
        run(settings, "users", "verify-identity", "nobody", "--id-number-stdin", stdin=OTHER_ID)[0]
        == 1
    )


def test_relinking_ends_every_personal_authorization(
    engine: Engine,
    settings: Settings,
    live: LiveServer,
    person: dict,  # noqa: F811
):
    """Re-linking an account to another identity must not hand its consents' tokens the
    new identity's rows: every consent ends, its tokens stop, its refresh token is spent."""
    client = OAuth2Client(
        person["client_id"],
        person["client_secret"],
        redirect_uri=REDIRECT,
        code_challenge_method="S256",
    )
    location = authorize(live, client, "t" * 64)
    token = client.fetch_token(
        f"{live.url}/oauth/token", authorization_response=location, code_verifier="t" * 64
    )
    auth = {"Authorization": f"Bearer {token['access_token']}"}
    records = f"{live.url}/api/v1/datasets/social-insurance/records"
    assert httpx.get(records, headers=auth).status_code == 200
    code, output = run(
        settings,
        "users",
        "verify-identity",
        "zhangsan",
        "--id-number-stdin",
        "--replace",
        stdin=OTHER_ID,
    )
    assert code == 0 and "1 consent(s) ended" in output, output
    time.sleep(1.2)  # no Redis here: the server's mirror reads the table every second
    assert httpx.get(records, headers=auth).status_code == 401
    refresh = httpx.post(
        f"{live.url}/oauth/token",
        auth=(person["client_id"], person["client_secret"]),
        data={"grant_type": "refresh_token", "refresh_token": token["refresh_token"]},
    )
    assert refresh.status_code == 400
    login = httpx.post(
        f"{live.url}/auth/login", json={"username": "zhangsan", "password": PASSWORD}
    ).json()
    consents = httpx.get(
        f"{live.url}/api/v1/me/consents",
        headers={"Authorization": f"Bearer {login['access_token']}"},
    ).json()["data"]
    assert all(c["withdrawn_at"] for c in consents)
    [event] = [e for e in audit_events(engine, "user.identity_verify") if e["detail"]["changed"]]
    assert event["detail"]["relinked"] is True and event["detail"]["consents_ended"] == 1
