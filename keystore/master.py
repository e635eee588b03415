"""The master key that seals the ring: `OPENGATE_MASTER_KEY` (base64 of 32 bytes),
`OPENGATE_MASTER_KEY_FILE` (a file holding that text, readable by its owner only), or —
with neither — the embedded default `master.key` in the data directory, created once."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
import secrets
import stat
import time
from dataclasses import dataclass, field
from pathlib import Path

from kernel import keyfile
from keystore.errors import KeyRingError

KEY_BYTES = 32
DEFAULT_FILE = "master.key"
ENV = "OPENGATE_MASTER_KEY"
ENV_FILE = "OPENGATE_MASTER_KEY_FILE"

log = logging.getLogger("opengate.keys")


@dataclass(frozen=True)
class MasterKey:
    key: bytes = field(repr=False)
    source: str  # where it came from, for messages: never the key itself

    @property
    def kid(self) -> str:
        """Names the master key in the ring, so a wrong one is told apart from damage."""
        return hmac.new(
            self.key, b"opengate key ring v1: master key id", hashlib.sha256
        ).hexdigest()[:16]


def decode(text: str, where: str) -> bytes:
    """Base64, standard or URL-safe, padding optional, of exactly 32 bytes."""
    cleaned = text.strip()
    padded = cleaned + "=" * (-len(cleaned) % 4)
    try:
        raw = base64.b64decode(padded.replace("-", "+").replace("_", "/"), validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != KEY_BYTES:
        raise KeyRingError(
            f"{where} is not a master key: give the base64 of 32 random bytes "
            "(e.g. `openssl rand -base64 32`)"
        )
    return raw


def encode(key: bytes) -> str:
    return base64.urlsafe_b64encode(key).decode()


def _read_file(path: Path, variable: str) -> bytes:
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise KeyRingError(f"{variable}: no master key file at {path}") from None
    except OSError as exc:
        raise KeyRingError(f"{variable}: cannot read {path}: {exc.strerror}") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise KeyRingError(
            f"the master key file {path} is open to group or others "
            f"(mode {stat.S_IMODE(mode):04o}): `chmod 600 {path}`"
        )
    try:
        text = path.read_text("ascii")
    except (OSError, UnicodeError) as exc:
        raise KeyRingError(f"{variable}: cannot read {path}: {exc}") from None
    return decode(text, f"{variable} ({path})")


def load_master_key(
    *, value: str | None, file: Path | None, data_dir: Path, create: bool
) -> MasterKey:
    """The master key from the environment, or the embedded default.

    `create`: only `migrate`, `serve` and `demo` may make the embedded default; other
    commands refuse when it is not there.
    """
    if value and file:
        raise KeyRingError(f"set {ENV} or {ENV_FILE}, not both")
    if value:
        return MasterKey(decode(value, ENV), ENV)
    if file:
        return MasterKey(_read_file(file, ENV_FILE), f"{ENV_FILE} ({file})")
    path = data_dir / DEFAULT_FILE
    if path.exists() or not create:
        if not path.exists():
            raise KeyRingError(
                f"no master key: set {ENV} (or {ENV_FILE}) to the installation's master key "
                f"(a new installation: `opengate migrate` creates {path})"
            )
        return MasterKey(_read_file(path, "the embedded master key"), str(path))
    return MasterKey(_create(path), str(path))


def _create(path: Path) -> bytes:
    """Written by the one key-file writer, which never clobbers: workers starting together
    all end up with the first one's key."""
    key = secrets.token_bytes(KEY_BYTES)
    if not keyfile.create(path, (encode(key) + "\n").encode()):
        return _read_settled(path)
    log.warning(
        "created the master key %s: back it up; every other host of this installation "
        "needs it as %s or %s",
        path,
        ENV_FILE,
        ENV,
    )
    return key


def _read_settled(path: Path) -> bytes:
    """Another process's new key; without hard links it may still be writing it."""
    for _ in range(50):
        try:
            return _read_file(path, "the embedded master key")
        except KeyRingError:
            time.sleep(0.02)
    return _read_file(path, "the embedded master key")
