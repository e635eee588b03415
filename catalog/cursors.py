"""Sealed keyset cursors: opaque to the caller, bound to one dataset version and one caller.

A cursor holds the order-key values of the last row of a page, and those may be values the
caller never receives in clear (the primary key of a dataset whose key is an identity
number, say). So the values are encrypted and authenticated with AES-SIV (RFC 5297,
`cryptography`'s `AESSIV`): deterministic authenticated encryption, so there is no nonce to
run out of or repeat however many cursors one key seals, and the same page always yields
the same cursor. The associated data binds the cursor to the dataset id, its version, the
caller and the order it was made for; a cursor from another dataset, version, app or
order, a tampered one or a hand-made one does not open, and the caller gets
`invalid_parameter` without learning why.

Sealing and opening cost a few µs each, nothing measurable on a records request
(bench/cursor_cost.py).
"""

from __future__ import annotations

import base64
import binascii

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESSIV
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

_INFO = b"opengate cursor v1"
_AESSIV_KEY_BYTES = 64  # AES-256-SIV: two 256-bit keys
# No legitimate cursor is this long (a handful of order keys); refuse before decoding.
MAX_CURSOR_CHARS = 4096


def derive_cursor_key(master: bytes) -> bytes:
    """The AES-SIV key, derived from the installation's cursor key file by HKDF."""
    return HKDF(algorithm=SHA256(), length=_AESSIV_KEY_BYTES, salt=None, info=_INFO).derive(master)


class CursorBox:
    """Seals and opens cursor payloads for one installation (one key, every worker)."""

    __slots__ = ("_siv",)

    def __init__(self, master: bytes) -> None:
        self._siv = AESSIV(derive_cursor_key(master))

    def bind(self, dataset_id: str, version: int, caller: str) -> BoundCursors:
        """The codec for one request: cursors of this dataset version and this caller."""
        context = (_INFO, dataset_id.encode(), str(version).encode(), caller.encode())
        return BoundCursors(self._siv, context)


class BoundCursors:
    """Cursors bound to one (dataset, version, caller); the order signature is bound per
    cursor. `open` returns None for anything that is not a cursor this binding sealed."""

    __slots__ = ("_context", "_siv")

    def __init__(self, siv: AESSIV, context: tuple[bytes, ...]) -> None:
        self._siv = siv
        self._context = context

    def seal(self, order_signature: str, payload: bytes) -> str:
        sealed = self._siv.encrypt(payload, [*self._context, order_signature.encode()])
        return base64.urlsafe_b64encode(sealed).rstrip(b"=").decode()

    def open(self, order_signature: str, cursor: str) -> bytes | None:
        if len(cursor) > MAX_CURSOR_CHARS or not cursor.isascii():
            return None
        try:
            sealed = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
            return self._siv.decrypt(sealed, [*self._context, order_signature.encode()])
        except (binascii.Error, ValueError, InvalidTag):
            return None
