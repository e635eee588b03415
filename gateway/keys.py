"""The installation's keys for this process, read from the key ring in the database
(`keystore`, docs/contract-keyring.md): the master key from the settings, the ring checked
(created, or imported from the key files of earlier releases, when `create`), and every key
the routes, the audit writer and the CLI need."""

from __future__ import annotations

from dataclasses import dataclass, field

import sqlalchemy as sa
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy.engine import Engine
from sqlmodel import Session

from audit.models import AuditCheckpoint, AuditHead
from audit.signing import Signer
from auth.keys import KeyRing
from gateway.settings import Settings
from keystore.legacy import read_key_files
from keystore.master import load_master_key
from keystore.ring import (
    AUDIT_DIGEST,
    AUDIT_SIGNING,
    CURSOR,
    IDENTITY_HMAC,
    PSEUDONYM,
    SealedRing,
    has_ring,
)


@dataclass(frozen=True)
class InstallationKeys:
    ring: SealedRing
    tokens: KeyRing
    identity: bytes = field(repr=False)
    pseudonym: bytes = field(repr=False)
    audit_digest: bytes = field(repr=False)
    cursor: bytes = field(repr=False)
    audit_signer: Signer = field(repr=False)


def populated(engine: Engine) -> bool:
    """Whether the database holds an installation's data: every use of one (a request, a
    CLI command, an import) leaves audit events."""
    with engine.connect() as conn:
        seq = conn.execute(sa.select(AuditHead.seq)).scalar()  # type: ignore[call-overload]
        signed = conn.execute(sa.select(AuditCheckpoint.id).limit(1)).first()  # type: ignore[call-overload]
    return bool(seq) or signed is not None


def open_ring(settings: Settings, engine: Engine, *, create: bool) -> SealedRing:
    """The ring under this host's master key; KeyRingError (one line) when it cannot be used.

    `create` (migrate, serve, demo only): make the embedded master key and the ring when
    there are none, importing the data directory's key files."""
    secret = settings.master_key.get_secret_value() if settings.master_key else None
    with Session(engine) as session:
        # A new embedded master key only for a new ring: one in the database already was
        # sealed with another key, and making a file that cannot open it helps nobody.
        make_default = create and not has_ring(session)
        master = load_master_key(
            value=secret,
            file=settings.master_key_file,
            data_dir=settings.data_dir,
            create=make_default,
        )
        ring = SealedRing(master)
        ring.ensure(
            session,
            create=create,
            populated=create and populated(engine),
            legacy=read_key_files(settings.data_dir) if create else (),
            legacy_source=str(settings.data_dir),
        )
    return ring


def installation_keys(settings: Settings, engine: Engine, *, create: bool) -> InstallationKeys:
    ring = open_ring(settings, engine, create=create)
    with Session(engine) as session:
        secret = {
            p: ring.active(session, p).material
            for p in (IDENTITY_HMAC, PSEUDONYM, AUDIT_DIGEST, CURSOR, AUDIT_SIGNING)
        }
        retired = [k for k in ring.keys(session, AUDIT_SIGNING) if k.state != "active"]
    previous: dict[str, Ed25519PublicKey] = {}
    for k in retired:
        public = serialization.load_pem_public_key((k.public or "").encode())
        if isinstance(public, Ed25519PublicKey):
            previous[k.kid] = public
    return InstallationKeys(
        ring=ring,
        tokens=KeyRing(engine, ring),
        identity=secret[IDENTITY_HMAC],
        pseudonym=secret[PSEUDONYM],
        audit_digest=secret[AUDIT_DIGEST],
        cursor=secret[CURSOR],
        audit_signer=Signer.from_pem(secret[AUDIT_SIGNING], previous),
    )
