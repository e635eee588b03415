"""The ring itself: one ring however many hosts create it at once, sealed values bound to
their row, rotation that keeps the old verification keys."""

from __future__ import annotations

import base64
import json
import os
import threading
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session

from gateway.database import create_engine
from gateway.keys import installation_keys, open_ring
from gateway.migrate import upgrade
from gateway.settings import Settings
from keystore.errors import KeyRingError
from keystore.master import MasterKey
from keystore.ring import ALGORITHMS, PSEUDONYM, SealedRing
from tests.audit.helpers import event
from tests.gateway.test_cli import assert_one_line_error, run


def host_settings(database_url: str, folder: Path, key: str) -> Settings:
    return Settings(database_url=database_url, data_dir=folder, master_key=key)


def new_key() -> str:
    return base64.b64encode(os.urandom(32)).decode()


def migrated(database_url: str) -> Engine:
    engine = create_engine(Settings(database_url=database_url).sqlalchemy_url)
    upgrade(engine)
    return engine


def rows_by_purpose(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        found = conn.execute(sa.text("SELECT purpose, count(*) FROM key_ring GROUP BY purpose"))
        return dict(found.all())  # type: ignore[arg-type]


def start_together(count: int, make: object) -> tuple[list[object], list[BaseException]]:
    barrier = threading.Barrier(count)
    results: list[object] = []
    failures: list[BaseException] = []

    def start(i: int) -> None:
        barrier.wait()
        try:
            results.append(make(i))  # type: ignore[operator]
        except KeyRingError as exc:
            failures.append(exc)

    threads = [threading.Thread(target=start, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results, failures


def test_hosts_starting_at_once_make_one_ring(database_url: str, tmp_path: Path) -> None:
    engine = migrated(database_url)
    key = new_key()

    def start(i: int) -> bytes:
        settings = host_settings(database_url, tmp_path / f"host{i}", key)
        return installation_keys(settings, engine, create=True).pseudonym

    results, failures = start_together(6, start)
    assert not failures and len(results) == 6
    assert len(set(results)) == 1  # every host reads the same pseudonym key
    assert rows_by_purpose(engine) == {"ring": 1, **{p: 1 for p in ALGORITHMS}}
    engine.dispose()


def test_hosts_with_different_master_keys_at_once_make_one_ring_and_the_others_refuse(
    database_url: str, tmp_path: Path
) -> None:
    engine = migrated(database_url)

    def start(i: int) -> bytes:
        settings = host_settings(database_url, tmp_path / f"host{i}", new_key())
        return installation_keys(settings, engine, create=True).identity

    results, failures = start_together(4, start)
    assert len(results) == 1 and len(failures) == 3
    assert all("OPENGATE_MASTER_KEY" in str(f) for f in failures)
    assert rows_by_purpose(engine) == {"ring": 1, **{p: 1 for p in ALGORITHMS}}
    engine.dispose()


def test_a_sealed_value_does_not_open_on_another_row(database_url: str, tmp_path: Path) -> None:
    """AES-GCM's associated data binds purpose, key id and algorithm: moving the identity
    key's ciphertext onto the pseudonym row (to have the gateway pseudonymize with a key
    someone knows the other use of) is refused, not used."""
    engine = migrated(database_url)
    settings = host_settings(database_url, tmp_path, new_key())
    open_ring(settings, engine, create=True)
    with engine.begin() as conn:
        nonce, sealed = conn.execute(
            sa.text("SELECT nonce, sealed FROM key_ring WHERE purpose = 'identity-hmac'")
        ).one()
        conn.execute(
            sa.text("UPDATE key_ring SET nonce = :n, sealed = :s WHERE purpose = 'pseudonym'"),
            {"n": nonce, "s": sealed},
        )
    with pytest.raises(KeyRingError, match="does not open"):
        installation_keys(settings, engine, create=True)
    ring = SealedRing(MasterKey(base64.b64decode(settings.master_key.get_secret_value()), "t"))  # type: ignore[union-attr]
    with Session(engine) as session, pytest.raises(KeyRingError):
        ring.active(session, PSEUDONYM)
    engine.dispose()


def test_rotation_keeps_the_old_verification_keys(tmp_path: Path) -> None:
    """`opengate keys rotate`: tokens of the old key still verify and it stays in the
    JWKS; `--audit`: checkpoints signed by the old audit key still verify."""
    key = new_key()
    assert run(["migrate"], tmp_path, OPENGATE_MASTER_KEY=key).returncode == 0
    settings = host_settings(f"sqlite:///{tmp_path}/cli.db", tmp_path / "var", key)
    engine = create_engine(settings.sqlalchemy_url)
    before = installation_keys(settings, engine, create=False)
    old_kid = before.tokens.signing_key().kid
    from audit.checkpoints import checkpoint_now
    from audit.writer import append
    from auth.tokens import TokenIssuer, TokenVerifier

    old_token, _ = TokenIssuer(before.tokens, settings.issuer).issue(
        subject="app", client_id="app", scope=""
    )
    append(engine, [event() for _ in range(5)])
    checkpoint_now(engine, before.audit_signer, kind="manual")

    rotated = run(["keys", "rotate"], tmp_path, OPENGATE_MASTER_KEY=key)
    audit_rotated = run(["keys", "rotate", "--audit"], tmp_path, OPENGATE_MASTER_KEY=key)
    assert rotated.returncode == 0 and audit_rotated.returncode == 0, audit_rotated.stderr
    after = installation_keys(settings, engine, create=False)
    assert after.tokens.signing_key().kid != old_kid
    assert TokenVerifier(after.tokens, settings.issuer).verify(old_token).subject == "app"
    kids = {k["kid"] for k in after.tokens.jwks()["keys"]}
    assert kids == {old_kid, after.tokens.signing_key().kid}
    assert after.audit_signer.key_id != before.audit_signer.key_id
    append(engine, [event() for _ in range(5)])
    checkpoint_now(engine, after.audit_signer, kind="manual")
    verified = run(["audit", "verify", "--json"], tmp_path, OPENGATE_MASTER_KEY=key)
    report = json.loads(verified.stdout)
    assert report["ok"] and report["checkpoints"] == 2, report
    assert after.identity == before.identity and after.pseudonym == before.pseudonym
    engine.dispose()


def test_keys_that_must_not_rotate_are_refused(tmp_path: Path) -> None:
    key = new_key()
    assert run(["migrate"], tmp_path, OPENGATE_MASTER_KEY=key).returncode == 0
    settings = host_settings(f"sqlite:///{tmp_path}/cli.db", tmp_path / "var", key)
    engine = create_engine(settings.sqlalchemy_url)
    ring = open_ring(settings, engine, create=False)
    with Session(engine) as session, pytest.raises(KeyRingError, match="do not rotate"):
        ring.rotate(session, PSEUDONYM)
    engine.dispose()
    assert_one_line_error(
        run(["keys", "rotate"], tmp_path, OPENGATE_MASTER_KEY=new_key()), "OPENGATE_MASTER_KEY"
    )
