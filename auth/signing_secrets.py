"""Apps' signing secrets for signed calls (decision 0018): made, shown once, kept sealed,
opened by every host of the installation (they share its master key).

Sealed with AES-256-GCM under HKDF-SHA256(master key, "opengate signing secrets v1"), a
fresh nonce per secret and `client_id 0x00 kid` as associated data, as the key ring seals
its rows: a sealed value copied onto another app's row does not open there. An inactive
app has no usable secret (the same 401 as a bad signature).
"""

from __future__ import annotations

import secrets
import threading
import time

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy.engine import Engine
from sqlmodel import Session

from auth.models import App, AppSigningSecret
from kernel.clock import utcnow
from kernel.problems import not_found

INFO = b"opengate signing secrets v1"
CACHE_SECONDS = 5.0  # how long a host may still accept a replaced secret or a disabled app


def _aad(client_id: str, kid: str) -> bytes:
    return client_id.encode() + b"\0" + kid.encode()


class SigningSecrets:
    def __init__(self, engine: Engine, master_key: bytes) -> None:
        self.engine = engine
        key = HKDF(algorithm=SHA256(), length=32, salt=None, info=INFO).derive(master_key)
        self._aead = AESGCM(key)
        self._cache: dict[str, tuple[float, bytes | None]] = {}
        self._lock = threading.Lock()

    def create(self, session: Session, client_id: str) -> tuple[str, str]:
        """A new signing secret for the app (the old one stops at once): its key id and
        the secret, to be shown once. The caller signs with the secret's text as the HMAC
        key (its UTF-8 bytes), as AppKey/AppSecret schemes do."""
        app = session.get(App, client_id)
        if app is None or not app.is_active:
            raise not_found(f"应用 {client_id} 不存在或已停用")
        text = secrets.token_urlsafe(32)  # 256 random bits
        kid = secrets.token_hex(8)
        nonce = secrets.token_bytes(12)
        row = session.get(AppSigningSecret, client_id) or AppSigningSecret(
            client_id=client_id, kid=kid, nonce=nonce, sealed=b""
        )
        row.kid, row.nonce, row.created_at = kid, nonce, utcnow()
        row.sealed = self._aead.encrypt(nonce, text.encode(), _aad(client_id, kid))
        session.add(row)
        session.commit()
        with self._lock:
            self._cache.pop(client_id, None)
        return kid, text

    def cached(self, client_id: str) -> tuple[bytes | None] | None:
        """The secret as last read, if read less than CACHE_SECONDS ago (no database)."""
        hit = self._cache.get(client_id)
        return (hit[1],) if hit is not None and time.monotonic() < hit[0] else None

    def secret_for(self, client_id: str) -> bytes | None:
        """The app's HMAC key, or None: no secret, an inactive app, a row that does not
        open."""
        now = time.monotonic()
        hit = self.cached(client_id)
        if hit is not None:
            return hit[0]
        with Session(self.engine) as session:
            row = session.get(AppSigningSecret, client_id)
            app = session.get(App, client_id)
            secret = None
            if row is not None and app is not None and app.is_active:
                try:
                    secret = self._aead.decrypt(row.nonce, row.sealed, _aad(client_id, row.kid))
                except InvalidTag:
                    secret = None
        with self._lock:
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[client_id] = (now + CACHE_SECONDS, secret)
        return secret
