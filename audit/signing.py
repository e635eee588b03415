"""The Ed25519 key that signs checkpoints and export manifests, kept in the installation's
key ring (`keystore`), so every host signs with the same one. The public key is published at
`GET /api/v1/audit/public-key` and by `opengate audit public-key`; the keys it replaced
(`opengate keys rotate --audit`) still verify the checkpoints they signed."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey


def key_id(public_key: Ed25519PublicKey) -> str:
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def public_pem(public_key: Ed25519PublicKey) -> str:
    return public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


def load_public_key(pem: bytes) -> Ed25519PublicKey:
    key = serialization.load_pem_public_key(pem)
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError("not an Ed25519 public key")
    return key


@dataclass(frozen=True)
class Signer:
    private_key: Ed25519PrivateKey
    # Retired keys of the ring, by key id: they verify, they no longer sign.
    previous: Mapping[str, Ed25519PublicKey] = field(default_factory=dict)

    @property
    def public_key(self) -> Ed25519PublicKey:
        return self.private_key.public_key()

    @property
    def key_id(self) -> str:
        return key_id(self.public_key)

    def sign(self, message: bytes) -> str:
        return base64.b64encode(self.private_key.sign(message)).decode()

    @property
    def verify_keys(self) -> dict[str, Ed25519PublicKey]:
        """Every public key a checkpoint of this installation may be signed with, by id."""
        return {**self.previous, self.key_id: self.public_key}

    @classmethod
    def from_pem(cls, pem: bytes, previous: Mapping[str, Ed25519PublicKey] | None = None) -> Signer:
        key = serialization.load_pem_private_key(pem, password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise ValueError("not an Ed25519 private key")
        return cls(key, dict(previous or {}))

    @classmethod
    def generate(cls) -> Signer:
        """A key of its own (tests and benchmarks that need no installation)."""
        return cls(Ed25519PrivateKey.generate())


def signature_valid(public_key: Ed25519PublicKey, signature_b64: str, message: bytes) -> bool:
    try:
        public_key.verify(base64.b64decode(signature_b64, validate=True), message)
    except (InvalidSignature, ValueError):
        return False
    return True
