"""Sealing, reading, creating and rotating the keys of the ring.

Each key's material is sealed with AES-256-GCM under a key derived from the master key
(HKDF-SHA256), a fresh 96-bit nonce per row, and the row's purpose, key id and algorithm as
associated data: a sealed value copied onto another row does not open there. The `ring` row
seals a known check value: a host with another master key is told so before it reads or
writes anything else.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import sqlalchemy as sa
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session, select

from keystore.errors import KeyRingError
from keystore.master import ENV, ENV_FILE, MasterKey
from keystore.models import KeyRingEntry

RING = "ring"
TOKEN_SIGNING = "token-signing"  # noqa: S105 (a purpose, not a secret)
AUDIT_SIGNING = "audit-signing"
PSEUDONYM = "pseudonym"
IDENTITY_HMAC = "identity-hmac"
AUDIT_DIGEST = "audit-digest"
CURSOR = "cursor"
# Every purpose and its algorithm. Only the signing keys rotate: a new identity-HMAC or
# pseudonym key would change every stored digest and every pseudonym already handed out.
ALGORITHMS = {
    TOKEN_SIGNING: "ES256",
    AUDIT_SIGNING: "Ed25519",
    PSEUDONYM: "HKDF-SHA256",
    IDENTITY_HMAC: "HMAC-SHA256",
    AUDIT_DIGEST: "HMAC-SHA256",
    CURSOR: "AES-SIV",
}
ROTATABLE = (TOKEN_SIGNING, AUDIT_SIGNING)
_CHECK = b"opengate key ring v1"
_SET_KEY = f"set {ENV} (or {ENV_FILE}) to the installation's master key"

log = logging.getLogger("opengate.keys")


@dataclass(frozen=True)
class RingKey:
    purpose: str
    kid: str
    alg: str
    state: str
    created_at: float
    retired_at: float | None
    material: bytes = field(repr=False)
    public: str | None = None


@dataclass(frozen=True)
class Material:
    """A key to store: generated here or imported from a key file of the data directory."""

    purpose: str
    material: bytes = field(repr=False)
    kid: str | None = None  # derived from the public key of a signing key
    state: str = "active"
    created_at: float | None = None
    retired_at: float | None = None


def _public_of(purpose: str, material: bytes) -> tuple[str, str | None]:
    """(kid, public PEM) of a key: signing keys are named by their public key as before
    (token `kid`, audit `key_id`), secrets by a random id."""
    if purpose not in (TOKEN_SIGNING, AUDIT_SIGNING):
        return secrets.token_hex(8), None
    private = serialization.load_pem_private_key(material, password=None)
    public = private.public_key()
    pem = public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()
    if purpose == TOKEN_SIGNING:
        if not isinstance(private, ec.EllipticCurvePrivateKey):
            raise KeyRingError("a token signing key is not a P-256 key")
        der = public.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return hashlib.sha256(der).hexdigest()[:16], pem
    if not isinstance(private, Ed25519PrivateKey):
        raise KeyRingError("the audit signing key is not an Ed25519 key")
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16], pem


def generate(purpose: str) -> Material:
    pkcs8 = (serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8)
    if purpose == TOKEN_SIGNING:
        pem = ec.generate_private_key(ec.SECP256R1()).private_bytes(
            *pkcs8, serialization.NoEncryption()
        )
        return Material(purpose, pem)
    if purpose == AUDIT_SIGNING:
        pem = Ed25519PrivateKey.generate().private_bytes(*pkcs8, serialization.NoEncryption())
        return Material(purpose, pem)
    return Material(purpose, secrets.token_bytes(32))


def has_ring(session: Session) -> bool:
    """Whether the database has a ring (under whichever master key)."""
    found = session.exec(select(KeyRingEntry.id).where(KeyRingEntry.purpose == RING)).first()
    session.rollback()
    return found is not None


class SealedRing:
    """The ring as one master key sees it."""

    def __init__(self, master: MasterKey) -> None:
        self.master = master
        sealing = HKDF(
            algorithm=SHA256(), length=32, salt=None, info=b"opengate key ring v1: AES-256-GCM"
        ).derive(master.key)
        self._aead = AESGCM(sealing)

    @staticmethod
    def _aad(purpose: str, kid: str, alg: str) -> bytes:
        return b"\0".join((_CHECK, purpose.encode(), kid.encode(), alg.encode()))

    def _open(self, row: KeyRingEntry) -> bytes:
        if row.master_kid != self.master.kid:
            raise KeyRingError(
                f"the key ring in the database is sealed with master key {row.master_kid}, "
                f"not with {self.master.kid} from {self.master.source}: {_SET_KEY}"
            )
        try:
            return self._aead.decrypt(
                row.nonce, row.sealed, self._aad(row.purpose, row.kid, row.alg)
            )
        except InvalidTag:
            raise KeyRingError(
                f"the key ring in the database does not open with the master key from "
                f"{self.master.source} (key {row.purpose}/{row.kid}): {_SET_KEY}"
            ) from None

    def _row(self, item: Material, kid: str, public: str | None) -> dict[str, object]:
        alg = "AES-256-GCM" if item.purpose == RING else ALGORITHMS[item.purpose]
        nonce = secrets.token_bytes(12)
        return {
            "purpose": item.purpose,
            "kid": kid,
            "alg": alg,
            "state": item.state,
            "created_at": item.created_at if item.created_at is not None else time.time(),
            "retired_at": item.retired_at,
            "public": public,
            "master_kid": self.master.kid,
            "nonce": nonce,
            "sealed": self._aead.encrypt(nonce, item.material, self._aad(item.purpose, kid, alg)),
        }

    def _insert(self, session: Session, item: Material) -> bool:
        """Insert unless a row with the same purpose and kid, or another active key of
        the purpose, is there (the unique indexes decide, across hosts)."""
        if item.purpose == RING:
            kid, public = self.master.kid, None
        else:
            kid, public = _public_of(item.purpose, item.material)
            kid = item.kid or kid
        values = self._row(item, kid, public)
        dialect = session.get_bind().dialect.name
        insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        table = KeyRingEntry.__table__
        statement = insert(table).values(**values).on_conflict_do_nothing().returning(table.c.id)  # type: ignore[attr-defined]
        return session.execute(statement).first() is not None

    # --- reading -------------------------------------------------------------------------

    def check(self, session: Session) -> bool:
        """True when the ring exists and this master key opens it; KeyRingError when it
        exists under another master key."""
        row = session.exec(
            select(KeyRingEntry).where(KeyRingEntry.purpose == RING, KeyRingEntry.state == "active")
        ).first()
        if row is None:
            return False
        if self._open(row) != _CHECK:
            raise KeyRingError(f"the key ring's check value is wrong: {_SET_KEY}")
        return True

    def keys(self, session: Session, purpose: str) -> list[RingKey]:
        """Every key of a purpose, oldest first, the active one last."""
        rows = session.exec(
            select(KeyRingEntry)
            .where(KeyRingEntry.purpose == purpose)
            .order_by(KeyRingEntry.state.desc(), KeyRingEntry.created_at, KeyRingEntry.id)  # type: ignore[attr-defined]
        ).all()
        return [self.unseal(row) for row in rows]

    def unseal(self, row: KeyRingEntry) -> RingKey:
        return RingKey(
            row.purpose,
            row.kid,
            row.alg,
            row.state,
            row.created_at,
            row.retired_at,
            self._open(row),
            row.public,
        )

    def active(self, session: Session, purpose: str) -> RingKey:
        keys = self.keys(session, purpose)
        if not keys or keys[-1].state != "active":
            raise KeyRingError(f"the key ring has no {purpose} key: run `opengate migrate`")
        return keys[-1]

    # --- creating and rotating -----------------------------------------------------------

    def ensure(
        self,
        session: Session,
        *,
        create: bool,
        populated: bool,
        legacy: Sequence[Material] = (),
        legacy_source: str = "",
    ) -> None:
        """Make sure the ring exists and opens with this master key.

        Without a ring: refused unless `create`; refused too when the database already holds
        an installation's data (`populated`) and no key files of it were found to import,
        since new keys would break its tokens, pseudonyms, identity digests and checkpoints.
        Two hosts doing this at once create one ring: the `ring` row is inserted first, the
        second insert waits for the first transaction and then does nothing.
        """
        exists = self.check(session)
        session.rollback()  # SQLite: the write below must begin its own transaction
        if not exists:
            if not create:
                raise KeyRingError(
                    "the database has no key ring: run `opengate migrate` "
                    "(with the installation's OPENGATE_MASTER_KEY) first"
                )
            if populated and not legacy:
                raise KeyRingError(
                    "the database holds an installation's data but no key ring, and there are "
                    f"no key files to import in {legacy_source}: set OPENGATE_DATA_DIR to the "
                    "data directory of the host that made it (its keys are imported once)"
                )
            if self._create(session, legacy):
                if legacy:
                    log.warning(
                        "imported %d key(s) from %s into the key ring; the files are no longer "
                        "read, remove them once every host runs this version",
                        len(legacy),
                        legacy_source,
                    )
                return
            self.check(session)  # another host made it meanwhile: under this master key?
            session.rollback()
        missing = [p for p in ALGORITHMS if not self._has_active(session, p)]
        session.rollback()
        if missing and not create:
            raise KeyRingError(
                f"the key ring has no {', '.join(missing)} key: run `opengate migrate`"
            )
        for purpose in missing:  # purposes added by a later version
            self._insert(session, generate(purpose))
        session.commit()

    def _create(self, session: Session, legacy: Iterable[Material]) -> bool:
        try:
            if not self._insert(session, Material(RING, _CHECK)):
                session.rollback()
                return False
            imported = set()
            for item in legacy:
                self._insert(session, item)
                if item.state == "active":
                    imported.add(item.purpose)
            for purpose in ALGORITHMS:
                if purpose not in imported:
                    self._insert(session, generate(purpose))
            session.commit()
        except BaseException:
            session.rollback()
            raise
        return True

    def _has_active(self, session: Session, purpose: str) -> bool:
        return (
            session.exec(
                select(KeyRingEntry.id).where(
                    KeyRingEntry.purpose == purpose, KeyRingEntry.state == "active"
                )
            ).first()
            is not None
        )

    def rotate(self, session: Session, purpose: str) -> RingKey:
        """A new active key; the old one is kept, retired, for verification."""
        if purpose not in ROTATABLE:
            raise KeyRingError(f"{purpose} keys do not rotate (stored digests depend on them)")
        if not self.check(session):
            raise KeyRingError("the database has no key ring: run `opengate migrate` first")
        session.rollback()  # SQLite: the update must begin its own transaction
        now = time.time()
        session.execute(
            sa.update(KeyRingEntry.__table__)
            .where(KeyRingEntry.purpose == purpose, KeyRingEntry.state == "active")
            .values(state="retired", retired_at=now)
        )
        item = generate(purpose)
        if not self._insert(session, item):
            session.rollback()
            raise KeyRingError(f"another {purpose} key was made at the same moment; try again")
        session.commit()
        return self.active(session, purpose)
