"""The token signing keys: ES256 (P-256) keys in `OPENGATE_DATA_DIR/keys`, the newest signs,
every key not yet retired past the longest token lifetime is published in the JWKS.

ES256 rather than Ed25519: every JOSE library and API gateway verifies it, and it verified
faster here (docs/decisions/0002-oauth-tokens.md).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from joserfc.jwk import ECKey, KeySet

MAX_TOKEN_LIFETIME = 24 * 3600  # `opengate users token --ttl` is capped here
RELOAD_EVERY = 5.0  # seconds; another process may have rotated the keys


@dataclass(frozen=True)
class SigningKey:
    kid: str
    created_at: float
    retired_at: float | None
    key: ECKey


class KeyRing:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._lock = threading.Lock()
        self._loaded_at = 0.0
        self._stamp: float | None = None
        self._keys: list[SigningKey] = []
        self._reload(force=True)

    @property
    def _index(self) -> Path:
        return self.directory / "keys.json"

    def _read_index(self) -> list[dict]:
        if not self._index.exists():
            return []
        return json.loads(self._index.read_text())

    def _reload(self, *, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._loaded_at < RELOAD_EVERY:
            return
        with self._lock:
            self._loaded_at = now
            if not self._index.exists():
                self._create_first()
            stamp = self._index.stat().st_mtime
            if stamp == self._stamp and not force:
                return
            keys = []
            for entry in self._read_index():
                pem = (self.directory / f"{entry['kid']}.pem").read_bytes()
                key = ECKey.import_key(pem, {"kid": entry["kid"], "use": "sig", "alg": "ES256"})
                keys.append(
                    SigningKey(entry["kid"], entry["created_at"], entry.get("retired_at"), key)
                )
            self._keys = keys
            self._stamp = stamp

    def _create_first(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        # Workers of one host may start together: one creates the key, the others wait.
        with (self.directory / ".lock").open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not self._index.exists():
                self._write_new_key([])

    def _write_new_key(self, index: list[dict]) -> str:
        private = ec.generate_private_key(ec.SECP256R1())
        public_der = private.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        kid = hashlib.sha256(public_der).hexdigest()[:16]
        pem_path = self.directory / f"{kid}.pem"
        pem = private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        fd = os.open(pem_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(pem)
        now = time.time()
        for entry in index:
            entry.setdefault("retired_at", None)
            if entry["retired_at"] is None:
                entry["retired_at"] = now
        index.append({"kid": kid, "created_at": now, "retired_at": None})
        tmp = self._index.with_suffix(".tmp")
        tmp.write_text(json.dumps(index, indent=2))
        tmp.replace(self._index)  # atomic: readers see the old or the new list
        return kid

    def rotate(self) -> str:
        """Add a new signing key; the old ones stay published until their tokens expire."""
        with self._lock, (self.directory / ".lock").open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            now = time.time()
            index = [
                e
                for e in self._read_index()
                if e.get("retired_at") is None or now - e["retired_at"] < MAX_TOKEN_LIFETIME
            ]
            kid = self._write_new_key(index)
        self._reload(force=True)
        return kid

    def signing_key(self) -> SigningKey:
        self._reload()
        return self._keys[-1]

    def verification_keys(self) -> KeySet:
        self._reload()
        return KeySet([k.key for k in self._keys])

    def find(self, kid: str) -> ECKey | None:
        self._reload()
        for k in self._keys:
            if k.kid == kid:
                return k.key
        self._reload(force=True)  # a key rotated in by another process moments ago
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
