"""The key files of releases before the key ring (issue 13), read once to import them:
`keys/keys.json` + `keys/<kid>.pem` (ES256 token keys), `identity.key`, `pseudonym.key`,
`audit-digest.key`, `cursor.key` (32 raw bytes each) and `audit-signing.key` (Ed25519 PEM),
all in the data directory. Nothing here writes or deletes a file."""

from __future__ import annotations

import json
from pathlib import Path

from keystore.errors import KeyRingError
from keystore.ring import (
    AUDIT_DIGEST,
    AUDIT_SIGNING,
    CURSOR,
    IDENTITY_HMAC,
    PSEUDONYM,
    TOKEN_SIGNING,
    Material,
)

SECRET_FILES = {
    IDENTITY_HMAC: "identity.key",
    PSEUDONYM: "pseudonym.key",
    AUDIT_DIGEST: "audit-digest.key",
    CURSOR: "cursor.key",
}
AUDIT_FILE = "audit-signing.key"


def read_key_files(data_dir: Path) -> list[Material]:
    """Every key file found, as ring material; a damaged file is refused by name."""
    found: list[Material] = []
    try:
        found += _token_keys(data_dir / "keys")
        for purpose, name in SECRET_FILES.items():
            path = data_dir / name
            if path.is_file():
                material = path.read_bytes()
                if len(material) != 32:
                    raise KeyRingError(f"{path} is not a 32-byte key; nothing was imported")
                found.append(Material(purpose, material))
        audit = data_dir / AUDIT_FILE
        if audit.is_file():
            found.append(Material(AUDIT_SIGNING, audit.read_bytes()))
    except OSError as exc:
        raise KeyRingError(f"cannot read the key files in {data_dir}: {exc}") from None
    return found


def _token_keys(directory: Path) -> list[Material]:
    index_path = directory / "keys.json"
    if not index_path.is_file():
        return []
    try:
        index = json.loads(index_path.read_text())
    except ValueError:
        raise KeyRingError(f"{index_path} is not JSON; nothing was imported") from None
    keys = []
    for entry in index:
        retired = entry.get("retired_at")
        keys.append(
            Material(
                TOKEN_SIGNING,
                (directory / f"{entry['kid']}.pem").read_bytes(),
                kid=entry["kid"],
                state="active" if retired is None else "retired",
                created_at=float(entry["created_at"]),
                retired_at=None if retired is None else float(retired),
            )
        )
    active = [k for k in keys if k.state == "active"]
    if len(active) > 1:  # not written by any release, but one must sign: the newest
        newest = max(active, key=lambda k: k.created_at or 0.0)
        keys = [
            k
            if k is newest or k.state != "active"
            else Material(k.purpose, k.material, k.kid, "retired", k.created_at, k.created_at)
            for k in keys
        ]
    return keys
