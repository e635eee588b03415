"""Pseudonyms (contract §3): `p_` + 16 hex characters of HMAC-SHA256 under the app's key.

`pseudonym` is the reference; `pseudonym_of` is what a request uses, with the key schedule done
once (natively where built, see policies/_native.py)."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from typing import Any

from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from policies import _native
from policies.masks import text_of

_digest = hmac.digest


def pseudonym(v: Any, key: bytes, pii: str) -> str | None:
    if v is None:
        return None
    s = v if type(v) is str else text_of(v)
    return "p_" + _digest(key, f"{pii}:{s}".encode(), "sha256")[:8].hex()


def derive_app_key(master: bytes, client_id: str) -> bytes:
    """The pseudonym key of one app: apps cannot join their pseudonyms with each other's."""
    hkdf = HKDF(
        algorithm=SHA256(),
        length=32,
        salt=None,
        info=b"opengate pseudonym v1:" + client_id.encode("utf-8"),
    )
    return hkdf.derive(master)


# HMAC (RFC 2104) key pads, as byte translation tables.
_IPAD = bytes(x ^ 0x36 for x in range(256))
_OPAD = bytes(x ^ 0x5C for x in range(256))

# CPython's own SHA-256: its states copy with a memcpy, OpenSSL 3's through a provider. For a
# pseudonym that is ~10.8k instead of ~13.4k instructions a value (callgrind), ~13 % faster.
try:
    from _sha256 import sha256 as _sha256_state  # Python 3.11
except ImportError:  # pragma: no cover - other Pythons, or builds without it
    try:
        from _sha2 import sha256 as _sha256_state  # 3.12+
    except ImportError:
        _sha256_state = hashlib.sha256


# With the extension (policies/_native.py): the same HMAC, a whole column per call, ~0.13 µs a
# value with the CPU's SHA instructions and ~0.6 µs without, against ~1.1-1.6 µs for the
# closure below, which gives the same output where it is not built.
def pseudonym_of(key: bytes, pii: str) -> Callable[[Any], Any]:
    """`pseudonym` with the key schedule done once.

    Same output as `pseudonym` (the tests hold them together). With the extension built the
    result is its `Pseudonymizer`: callable on one value, plus a `column` method that
    `map_columns` uses for a whole column. Without it, a Python closure about 2x faster than
    `pseudonym`: with OpenSSL 3, every `hmac.digest` call pays for fetching the algorithm and
    keying both pads, which costs more than hashing a short value. Here the inner state (key
    pad and the `pii:` prefix already absorbed) and the outer state are built once; each call
    copies them.
    """
    prefix = f"{pii}:".encode()
    hmac_key = key
    if len(key) > 64:  # SHA-256's block size; longer keys are hashed first, as HMAC does
        key = hashlib.sha256(key).digest()
    padded = key.ljust(64, b"\0")
    inner = _sha256_state(padded.translate(_IPAD) + prefix)
    outer = _sha256_state(padded.translate(_OPAD))
    apply = _pseudonym_closure(inner, outer)
    native = _native.pseudonyms
    if native is None:
        return apply
    # `apply` is the extension's fallback for values that are not exact str (ints, dates,
    # str subclasses), so the rules of `text_of` stay in one place.
    return native.make(hmac_key, prefix, apply)


def _pseudonym_closure(inner: Any, outer: Any) -> Callable[[Any], Any]:
    inner_copy, outer_copy = inner.copy, outer.copy  # copies only read the shared states

    def apply(v: Any) -> str | None:
        if v is None:
            return None
        h = inner_copy()
        h.update((v if type(v) is str else text_of(v)).encode())
        o = outer_copy()
        o.update(h.digest())
        return "p_" + o.hexdigest()[:16]

    return apply
