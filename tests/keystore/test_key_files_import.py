"""Upgrading an installation of the release before the key ring (issue 13): its database
(schema 0005_derive) and its data directory of key files, written here exactly as that
release wrote them (auth/keys.py: `keys/keys.json` + `keys/<kid>.pem`; auth/secrets.py and
policies/transforms.py: 32 raw bytes in `identity.key`, `pseudonym.key`,
`audit-digest.key`, `cursor.key`; audit/signing.py: `audit-signing.key`, Ed25519 PKCS8
PEM). The first start with a master key imports them: tokens issued before still verify,
pseudonyms and identity digests are unchanged, the audit chain's checkpoints still verify."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import sys
import time
from functools import partial
from pathlib import Path

import sqlalchemy as sa
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from joserfc.jwk import ECKey
from sqlmodel import Session

from audit.checkpoints import checkpoint_now
from audit.signing import Signer
from audit.writer import append
from auth.identity import identity_of, link_identity
from auth.keys import SigningKey
from auth.revocations import Revocations
from auth.secrets import identity_hmac
from auth.tokens import TokenIssuer
from gateway.app import create_app
from gateway.database import create_engine
from gateway.keys import installation_keys
from gateway.migrate import upgrade
from gateway.settings import Settings
from policies.pseudonyms import derive_app_key, pseudonym
from tests.audit.helpers import event
from tests.auth.helpers import PASSWORD, developer_with_app, user
from tests.conftest import UNLIMITED, TestClient
from tests.gateway.test_classified_access import PERSON_ID, SI_FIELDS, si_rows
from tests.packages import import_conditional

MASTER_KEY = base64.b64encode(os.urandom(32)).decode()
PKCS8 = (serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8)


class OldTokenKey:
    """What TokenIssuer asked the old KeyRing for."""

    def __init__(self, kid: str, pem: bytes) -> None:
        key = ECKey.import_key(pem, {"kid": kid, "use": "sig", "alg": "ES256"})
        self.key = SigningKey(kid, time.time(), None, key)

    def signing_key(self) -> SigningKey:
        return self.key


def old_token_key(directory: Path) -> tuple[str, bytes]:
    private = ec.generate_private_key(ec.SECP256R1())
    der = private.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    kid = hashlib.sha256(der).hexdigest()[:16]
    pem = private.private_bytes(*PKCS8, serialization.NoEncryption())
    (directory / f"{kid}.pem").write_bytes(pem)
    return kid, pem


def old_data_dir(data_dir: Path) -> dict:
    """Every key file of the old release; the first token key rotated out an hour ago."""
    keys_dir = data_dir / "keys"
    keys_dir.mkdir(parents=True)
    (retired_kid, retired_pem), (active_kid, active_pem) = (
        old_token_key(keys_dir),
        old_token_key(keys_dir),
    )
    now = time.time()
    (keys_dir / "keys.json").write_text(
        json.dumps(
            [
                {"kid": retired_kid, "created_at": now - 7200, "retired_at": now - 3600},
                {"kid": active_kid, "created_at": now - 3600, "retired_at": None},
            ],
            indent=2,
        )
    )
    secrets = {name: os.urandom(32) for name in ("identity", "pseudonym", "audit-digest", "cursor")}
    for name, key in secrets.items():
        (data_dir / f"{name}.key").write_bytes(key)
    audit = Ed25519PrivateKey.generate()
    (data_dir / "audit-signing.key").write_bytes(
        audit.private_bytes(*PKCS8, serialization.NoEncryption())
    )
    for path in data_dir.rglob("*"):
        if path.is_file():
            path.chmod(0o600)
    return {
        "retired": (retired_kid, retired_pem),
        "active": (active_kid, active_pem),
        "audit": Signer(audit),
        **secrets,
    }


def cli(settings: Settings, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "OPENGATE_DATABASE_URL": settings.database_url,
        "OPENGATE_DATA_DIR": str(settings.data_dir),
        "OPENGATE_MASTER_KEY": MASTER_KEY,
    }
    return subprocess.run(
        [sys.executable, "-m", "gateway.cli", *args],
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_first_start_imports_the_key_files(database_url: str, tmp_path: Path) -> None:
    data_dir = tmp_path / "var"
    old = old_data_dir(data_dir)
    files_before = {p: p.read_bytes() for p in data_dir.rglob("*") if p.is_file()}
    settings = Settings(
        database_url=database_url,
        data_dir=data_dir,
        master_key=MASTER_KEY,
        catalog_cache_seconds=0,
        **UNLIMITED,
    )

    # The installation as the old release left it.
    engine = create_engine(settings.sqlalchemy_url)
    upgrade(engine, "0005_derive")
    # Today's importer writes `datasets.kind` (migration 0014); the old release's did not:
    # the column stands in for the import and goes again, leaving 0005's schema.
    with engine.begin() as conn:
        conn.exec_driver_sql("ALTER TABLE datasets ADD COLUMN kind VARCHAR(16) DEFAULT 'table'")
    import_conditional(
        engine,
        tmp_path / "pkgs",
        fields=SI_FIELDS,
        rows=si_rows(),
        subject_hmac=partial(identity_hmac, old["identity"]),
    )
    with engine.begin() as conn:
        conn.exec_driver_sql("ALTER TABLE datasets DROP COLUMN kind")
    reg = developer_with_app(engine, "bank")
    user(engine, "admin1", "data_admin")
    citizen = user(engine, "citizen", "developer")
    with Session(engine) as session:
        link_identity(
            session,
            user=session.get(type(citizen), citizen.id),
            identity=identity_of(old["identity"], PERSON_ID),
            proof="operator:old",
            revocations=Revocations(engine),
        )
    tokens = {
        state: TokenIssuer(OldTokenKey(*old[state]), settings.issuer).issue(
            subject="user:bank", client_id=None, scope="", extra={"uid": 1, "role": "developer"}
        )[0]
        for state in ("retired", "active")
    }
    append(engine, [event(action="user.create", actor=f"cli:{i}") for i in range(20)])
    old_checkpoint = checkpoint_now(engine, old["audit"], kind="manual")
    assert old_checkpoint is not None

    # The new release: `opengate migrate` with a master key, the first start.
    migrated = cli(settings, "migrate")
    assert migrated.returncode == 0, migrated.stderr
    assert "imported 7 key(s)" in migrated.stderr, migrated.stderr
    assert not (data_dir / "master.key").exists()  # the given master key, not a new one
    keys = installation_keys(settings, engine, create=False)
    assert (keys.identity, keys.pseudonym) == (old["identity"], old["pseudonym"])
    assert (keys.audit_digest, keys.cursor) == (old["audit-digest"], old["cursor"])
    assert keys.audit_signer.key_id == old["audit"].key_id
    again = cli(settings, "migrate")
    assert again.returncode == 0 and "imported" not in again.stderr

    with TestClient(create_app(settings, engine=engine)) as client:
        # Tokens signed before the upgrade, by the active key and by the rotated one.
        for state, token in tokens.items():
            me = client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})
            assert me.status_code == 200, (state, me.text)
        published = {k["kid"] for k in client.get("/.well-known/jwks.json").json()["keys"]}
        assert published == {old["retired"][0], old["active"][0]}
        # New tokens are signed by the imported active key.
        login = client.post("/auth/login", json={"username": "admin1", "password": PASSWORD})
        admin = {"Authorization": f"Bearer {login.json()['access_token']}"}
        header = json.loads(
            base64.urlsafe_b64decode(login.json()["access_token"].split(".")[0] + "==")
        )
        assert header["kid"] == old["active"][0]
        # The app's pseudonyms are the ones the old release gave it.
        granted = client.post(
            "/api/v1/admin/grants",
            headers=admin,
            json={
                "client_id": reg.client_id,
                "dataset_id": "social-insurance",
                "purpose": "个人贷款授信评估",
                "modes": ["records"],
            },
        )
        assert granted.status_code == 201, granted.text
        app_token = client.post(
            "/oauth/token",
            auth=(reg.client_id, reg.client_secret),
            data={"grant_type": "client_credentials"},
        ).json()["access_token"]
        rows = client.get(
            "/api/v1/datasets/social-insurance/records",
            params={"limit": 1},
            headers={"Authorization": f"Bearer {app_token}"},
        ).json()["data"]
        app_key = derive_app_key(old["pseudonym"], reg.client_id)
        assert rows[0]["id_number"] == pseudonym(PERSON_ID, app_key, "id_number")

    # The identity digest on the account and on the data rows is unchanged: an operator's
    # new verification of the same person finds the identity already there.
    verified = cli(
        settings, "users", "verify-identity", "citizen", "--id-number-stdin", stdin=PERSON_ID
    )
    assert verified.returncode == 0 and "already verified" in verified.stdout, verified.stderr
    with engine.connect() as conn:
        subject = conn.execute(
            sa.text("SELECT _subject_hmac FROM data_social_insurance_v1 WHERE record_id = 1")
        ).scalar()
    assert subject == identity_of(keys.identity, PERSON_ID)

    # The chain: the old checkpoint, the new host's shutdown one and a manual one verify.
    assert cli(settings, "audit", "checkpoint").returncode == 0
    report = cli(settings, "audit", "verify", "--json")
    assert report.returncode == 0, report.stderr
    assert json.loads(report.stdout)["checkpoints"] >= 2
    with engine.connect() as conn:
        key_ids = set(conn.execute(sa.text("SELECT key_id FROM audit_checkpoints")).scalars())
    assert key_ids == {old["audit"].key_id}
    # The files were read, never changed or removed.
    assert {p: p.read_bytes() for p in data_dir.rglob("*") if p.is_file()} == files_before
    engine.dispose()
