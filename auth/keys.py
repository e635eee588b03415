"""The token signing keys: ES256 (P-256) keys in the installation's key ring (`keystore`,
in the database, so every host signs and verifies with the same ones). The active key
signs; every key not yet retired past the longest token lifetime is published in the JWKS.

ES256 rather than Ed25519: every JOSE library and API gateway verifies it, and it verified
faster here (docs/decisions/0002-oauth-tokens.md).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

from joserfc.jwk import ECKey
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session

from keystore.ring import TOKEN_SIGNING, SealedRing

MAX_TOKEN_LIFETIME = 24 * 3600  # `opengate users token --ttl` is capped here
RELOAD_EVERY = 5.0  # seconds; another host may have rotated the keys
FORCED_RELOAD_EVERY = 1.0  # an unknown kid re-reads the ring, at most this often

log = logging.getLogger("opengate.keys")


@dataclass(frozen=True)
class SigningKey:
    kid: str
    created_at: float
    retired_at: float | None
    key: ECKey


class KeyRing:
    def __init__(self, engine: Engine, ring: SealedRing) -> None:
        self.engine = engine
        self.ring = ring
        self._lock = threading.Lock()
        self._loaded_at = 0.0
        self._forced_at = 0.0
        self._keys: list[SigningKey] = []
        self._imported: dict[str, ECKey] = {}
        self._reload(force=True)

    def _reload(self, *, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._loaded_at < RELOAD_EVERY:
            return
        with self._lock:
            self._loaded_at = now
            try:
                with Session(self.engine) as session:
                    stored = self.ring.keys(session, TOKEN_SIGNING)
            except SQLAlchemyError:
                if not self._keys:
                    raise
                log.warning("cannot re-read the token signing keys; keeping the ones loaded")
                return
            keys = []
            for k in stored:
                key = self._imported.get(k.kid)
                if key is None:
                    key = ECKey.import_key(k.material, {"kid": k.kid, "use": "sig", "alg": "ES256"})
                    self._imported[k.kid] = key
                keys.append(SigningKey(k.kid, k.created_at, k.retired_at, key))
            self._keys = keys

    def rotate(self) -> str:
        """Add a new signing key; the old ones stay published until their tokens expire."""
        with Session(self.engine) as session:
            kid = self.ring.rotate(session, TOKEN_SIGNING).kid
        self._reload(force=True)
        return kid

    def signing_key(self) -> SigningKey:
        self._reload()
        return self._keys[-1]

    def find(self, kid: str) -> ECKey | None:
        self._reload()
        for k in self._keys:
            if k.kid == kid:
                return k.key
        now = time.monotonic()
        if now - self._forced_at >= FORCED_RELOAD_EVERY:  # rotated by another host just now?
            self._forced_at = now
            self._reload(force=True)
        return next((k.key for k in self._keys if k.kid == kid), None)

    def jwks(self) -> dict:
        self._reload()
        now = time.time()
        return {
            "keys": [
                k.key.as_dict(private=False)
                for k in self._keys
                if k.retired_at is None or now - k.retired_at < MAX_TOKEN_LIFETIME
            ]
        }
