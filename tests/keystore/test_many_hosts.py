"""Two hosts of one installation (contract §9): two real `opengate serve` processes on one
PostgreSQL and one Redis, each with its OWN data directory and the same master key. They
start at once on an empty database and make one key ring; a token from one is accepted by
the other; one app sees the same pseudonyms and follows the same cursors on both; a
revocation on one is seen by the other on the next request; the checkpoints both sign
verify with one public key, through the CLI and through `/api/v1/audit/verify`."""

from __future__ import annotations

import base64
import json
import os
import threading
from pathlib import Path

import httpx
import pytest
import redis
import sqlalchemy as sa

from tests.conftest import GatewayProcess, _reset_postgres
from tests.gateway.test_classified_access import PERSON_ID, SI_FIELDS, si_rows
from tests.packages import write_package

MASTER_KEY = base64.b64encode(os.urandom(32)).decode()


def host(folder: Path, **env: str) -> GatewayProcess:
    folder.mkdir(parents=True)
    process = GatewayProcess(folder, **env)
    assert process.env["OPENGATE_DATA_DIR"] == str(folder / "var")  # a data dir of its own
    return process


def at_once(*calls: object) -> None:
    """Run the calls in threads released together; re-raise the first failure."""
    barrier = threading.Barrier(len(calls))
    failures: list[BaseException] = []

    def run(call: object) -> None:
        barrier.wait()
        try:
            call()  # type: ignore[operator]
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=run, args=(c,)) for c in calls]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if failures:
        raise failures[0]


def password_of(output: str) -> str:
    return next(line.split(": ", 1)[1] for line in output.splitlines() if "password:" in line)


@pytest.mark.slow
@pytest.mark.postgres
def test_two_hosts_are_one_installation(tmp_path: Path, pg_database: str, redis_url: str):
    _reset_postgres(pg_database)
    # Account state other tests left in the shared Redis names their user ids, which this
    # fresh database gives out again.
    redis.Redis.from_url(redis_url).flushdb()
    database = pg_database.replace("postgresql+psycopg://", "postgresql://")
    env = {
        "OPENGATE_DATABASE_URL": database,
        "OPENGATE_REDIS_URL": redis_url,
        "OPENGATE_MASTER_KEY": MASTER_KEY,
    }
    a = host(tmp_path / "a", **env)
    b = host(tmp_path / "b", **env, OPENGATE_ISSUER=a.url)  # one installation, one issuer
    b.env["OPENGATE_ISSUER"] = a.env["OPENGATE_ISSUER"]

    # Both hosts' first start, at once, on an empty database: one schema, one ring.
    at_once(lambda: a.cli("migrate"), lambda: b.cli("migrate"))
    engine = sa.create_engine(pg_database)
    with engine.connect() as conn:
        ring = conn.execute(sa.text("SELECT purpose, count(*) FROM key_ring GROUP BY purpose"))
        assert dict(ring.all()) == {
            "ring": 1,
            "token-signing": 1,
            "audit-signing": 1,
            "pseudonym": 1,
            "identity-hmac": 1,
            "audit-digest": 1,
            "cursor": 1,
        }
    for h in (a, b):  # no key file in either data dir: the master key came from the env
        assert not (Path(h.env["OPENGATE_DATA_DIR"]) / "master.key").exists()

    passwords = {
        name: password_of(a.cli("users", "create", name, "--role", role))
        for name, role in (("admin", "data_admin"), ("dev", "developer"), ("aud", "auditor"))
    }
    creds = json.loads(a.cli("apps", "create", "--owner", "dev", "--name", "bank", "--json"))
    package = write_package(
        tmp_path / "pkgs",
        name="social-insurance",
        open_type="conditional",
        fields=SI_FIELDS,
        rows=si_rows(),
    )
    b.cli("datasets", "import", str(package))  # host B's CLI: the identity key of the ring

    try:
        at_once(lambda: a.serve(workers=1), lambda: b.serve(workers=1))

        def login(h: GatewayProcess, name: str) -> dict[str, str]:
            answer = httpx.post(
                f"{h.url}/auth/login", json={"username": name, "password": passwords[name]}
            )
            assert answer.status_code == 200, answer.text
            return {"Authorization": f"Bearer {answer.json()['access_token']}"}

        # A token from A works on B (and one from B on A).
        admin = login(a, "admin")
        granted = httpx.post(
            f"{b.url}/api/v1/admin/grants",
            headers=admin,
            json={
                "client_id": creds["client_id"],
                "dataset_id": "social-insurance",
                "purpose": "个人贷款授信评估",
                "modes": ["records"],
            },
        )
        assert granted.status_code == 201, granted.text
        assert httpx.get(f"{a.url}/api/v1/me", headers=login(b, "dev")).status_code == 200

        token = httpx.post(
            f"{a.url}/oauth/token",
            auth=(creds["client_id"], creds["client_secret"]),
            data={"grant_type": "client_credentials"},
        ).json()["access_token"]
        app = {"Authorization": f"Bearer {token}"}
        url = "/api/v1/datasets/social-insurance/records?limit=10"
        pages = [httpx.get(f"{h.url}{url}", headers=app) for h in (a, b)]
        assert [p.status_code for p in pages] == [200, 200], pages[1].text
        on_a, on_b = (p.json()["data"] for p in pages)
        assert on_a == on_b  # the same pseudonyms for the same app on both hosts
        assert on_a[0]["id_number"].startswith("p_")
        assert PERSON_ID not in pages[0].text
        # A cursor sealed by A opens on B.
        following = httpx.get(f"{b.url}{pages[0].links['next']['url']}", headers=app)
        assert following.status_code == 200, following.text
        assert following.json()["data"][0]["record_id"] == on_a[-1]["record_id"] + 1

        # A revocation on A: refused by B on the very next request.
        revoked = httpx.post(
            f"{a.url}/oauth/revoke",
            auth=(creds["client_id"], creds["client_secret"]),
            data={"token": token},
        )
        assert revoked.status_code == 200, revoked.text
        assert httpx.get(f"{b.url}{url}", headers=app).status_code == 401
        assert httpx.get(f"{a.url}{url}", headers=app).status_code == 401

        # Checkpoints from both hosts verify with one key: A signs on shutdown, B goes on.
        a.stop()
        auditor = login(b, "aud")
        report = httpx.get(f"{b.url}/api/v1/audit/verify", headers=auditor).json()
        assert report["ok"] is True and report["checkpoints"] >= 1, report
        published = httpx.get(f"{b.url}/api/v1/audit/public-key", headers=auditor).text
    finally:
        a.stop()
        b.stop()
    with engine.connect() as conn:
        kinds = conn.execute(sa.text("SELECT kind, key_id FROM audit_checkpoints")).all()
    assert [k for k, _ in kinds].count("shutdown") >= 2, kinds  # one from each host
    assert len({key for _, key in kinds}) == 1
    verified = json.loads(a.cli("audit", "verify", "--json"))
    assert verified["ok"] is True and verified["checkpoints"] == len(kinds), verified
    assert a.cli("audit", "public-key") == b.cli("audit", "public-key") == published
    engine.dispose()
