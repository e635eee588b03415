"""The field transforms of contract §3 (masking, generalisation, pseudonyms) and their rules.

Every transform runs once per field of every row served, so each is a plain function on one
value with no per-call validation: specs are checked once by `parse_transform` /
`compile_transform` when a request is planned, and the hot path only slices strings.

Rules the contract leaves open, decided here (and pinned by tests/policies/test_transforms.py):

- Non-strings are masked as text: `str(value)`, except dates and datetimes, which use
  `isoformat()` so a value reads the same from SQLite (ISO text) and PostgreSQL (native
  types) and therefore masks and pseudonymises the same on both. Empty text stays empty.
- Identity numbers are judged by length only (the 18th character may be `X`; a malformed
  number is still masked, never rejected: serving is no place to validate data).
- A mask that would keep every character of a short value falls back to `mask_default`
  instead: phones of 5 characters or fewer, bank cards of 10 or fewer (after removing
  whitespace), addresses of 6 or fewer. A mask never returns non-empty input unchanged.
- `mask_phone` treats only 11 ASCII digits as a mobile number; anything else (separators,
  `+86`, landlines) takes the "first 3, last 2" rule. `mask_bank_card` removes every
  whitespace character (including the ideographic space) and masks every middle character,
  digit or not. `mask_email` splits at the last `@`; without one it is `mask_default`.
- `year_only` and `bucket` return `null` for a value they cannot read (no leading 4-digit
  year; not a finite number): an unreadable value is withheld rather than leaked.
- `bucket` floors (also for negative numbers, floats and decimals): -1 in `bucket:5000`
  is `"-5000--1"`, 12345.6 is `"10000-14999"`.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import re
from collections.abc import Callable, Iterable, Sequence
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any

from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

TRANSFORM_NAMES: frozenset[str] = frozenset(
    {
        "clear",
        "redact",
        "mask_name",
        "mask_id_number",
        "mask_phone",
        "mask_bank_card",
        "mask_email",
        "mask_address",
        "mask_default",
        "year_only",
        "pseudonym",
    }
)

MAX_BUCKET_WIDTH = 10**12

# Keyed by transform name; "bucket" stands for every "bucket:W".
STRICTNESS: dict[str, int] = {
    "clear": 0,
    "year_only": 1,
    "bucket": 1,
    "mask_name": 2,
    "mask_id_number": 2,
    "mask_phone": 2,
    "mask_bank_card": 2,
    "mask_email": 2,
    "mask_address": 2,
    "mask_default": 2,
    "pseudonym": 3,
    "redact": 4,
}

PSEUDONYM_STRICTNESS = STRICTNESS["pseudonym"]

_BUCKET_SPEC = re.compile(r"bucket:([1-9][0-9]{0,12})")

# Level-3 defaults by pii kind (contract §3).
_LEVEL3_DEFAULTS: dict[str, str] = {
    "none": "clear",
    "name": "mask_name",
    "id_number": "mask_id_number",
    "phone": "mask_phone",
    "bank_card": "mask_bank_card",
    "email": "mask_email",
    "address": "mask_address",
    "date_of_birth": "year_only",
    "other": "mask_default",
}

# Contract §2; kept here so this module stays free of project imports.
PII_KINDS: frozenset[str] = frozenset(_LEVEL3_DEFAULTS)

# Level 4: only identifiers that are useful as join keys get a pseudonym; the rest is withheld.
_LEVEL4_PSEUDONYMISED = frozenset({"id_number", "phone", "bank_card", "email"})

_digest = hmac.digest


def _text(value: Any) -> str:
    """The text a non-string value is masked as (see the module docstring)."""
    if isinstance(value, date):  # also datetime, a subclass
        return value.isoformat()
    return str(value)


def _default(s: str) -> str:
    n = len(s)
    if n <= 2:
        return "*" * n
    return s[0] + "*" * (n - 2) + s[-1]


# --- masks -------------------------------------------------------------------------------
# Each starts with the same two lines: None passes through, and only non-strings pay for a
# conversion (`type(v) is not str` is the cheapest test that keeps str subclasses honest).
# These are the reference: with the extension built, `compile_transform` hands out native
# twins of them (`_NATIVE_MASKS`, below) that must give exactly the same output.


def mask_default(v: Any) -> str | None:
    if v is None:
        return None
    return _default(v if type(v) is str else _text(v))


def mask_name(v: Any) -> str | None:
    if v is None:
        return None
    s = v if type(v) is str else _text(v)
    n = len(s)
    if n <= 1:
        return "*" * n
    return s[0] + "*" * (n - 1)


def mask_id_number(v: Any) -> str | None:
    if v is None:
        return None
    s = v if type(v) is str else _text(v)
    n = len(s)
    if n == 18:
        return s[:6] + "********" + s[14:]
    if n == 15:
        return s[:6] + "******" + s[12:]
    return _default(s)


def mask_phone(v: Any) -> str | None:
    if v is None:
        return None
    s = v if type(v) is str else _text(v)
    n = len(s)
    if n == 11 and s.isdigit() and s.isascii():  # isdigit alone admits "１" and "²"
        return s[:3] + "****" + s[7:]
    if n <= 5:
        return _default(s)
    return s[:3] + "*" * (n - 5) + s[-2:]


def mask_bank_card(v: Any) -> str | None:
    if v is None:
        return None
    s = v if type(v) is str else _text(v)
    if not s.isdigit():  # the usual case is plain digits: skip the split/join
        s = "".join(s.split())
    n = len(s)
    if n <= 10:
        return _default(s)
    return s[:6] + "*" * (n - 10) + s[-4:]


def mask_email(v: Any) -> str | None:
    if v is None:
        return None
    s = v if type(v) is str else _text(v)
    local, at, domain = s.rpartition("@")
    if not at:
        return _default(s)
    return local[:1] + "***@" + domain


def mask_address(v: Any) -> str | None:
    if v is None:
        return None
    s = v if type(v) is str else _text(v)
    if len(s) <= 6:
        return _default(s)
    return s[:6] + "****"


# --- generalisation ----------------------------------------------------------------------


def year_only(v: Any) -> str | None:
    if v is None:
        return None
    if isinstance(v, date):
        return f"{v.year:04d}"
    s = v if type(v) is str else str(v)
    head = s[:4]
    if len(head) == 4 and head.isdigit() and head.isascii():
        return head
    return None


def _floor_div(v: Any, width: int) -> int | None:
    """floor(v / width) for any number or numeric text; None when `v` is not a finite number."""
    if type(v) is int or type(v) is bool:
        return v // width
    if isinstance(v, float):
        if not math.isfinite(v):
            return None
        return math.floor(v / width)
    if isinstance(v, Decimal):
        # Decimal's // truncates toward zero; math.floor of the exact quotient does not.
        # Past 10**100 the floor would be a huge int to build (1e999999999 is valid text).
        if not v.is_finite() or v.adjusted() > 100:
            return None
        return math.floor(v / width)
    if isinstance(v, int):  # int subclasses (IntEnum and the like)
        return int(v) // width
    if isinstance(v, str):
        try:
            return int(v) // width
        except ValueError:
            pass
        try:
            d = Decimal(v.strip())
        except InvalidOperation:
            return None
        return _floor_div(d, width)
    return None


def bucket(v: Any, width: int) -> str | None:
    if v is None:
        return None
    if type(v) is int:  # the hot path: integer columns
        lo = v // width * width
    else:
        q = _floor_div(v, width)
        if q is None:
            return None
        lo = q * width
    return f"{lo}-{lo + width - 1}"


# --- pseudonyms --------------------------------------------------------------------------


def pseudonym(v: Any, key: bytes, pii: str) -> str | None:
    if v is None:
        return None
    s = v if type(v) is str else _text(v)
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


# --- specs -------------------------------------------------------------------------------


def parse_transform(spec: str) -> str:
    """Return `spec` if it names a transform; raise ValueError with a short reason if not."""
    if not isinstance(spec, str):
        raise ValueError("a transform must be a string")
    if spec in TRANSFORM_NAMES:
        return spec
    if spec == "bucket" or spec.startswith("bucket:"):
        # Strict digits: int() would also take " 5", "+5" and "5_000", which are not specs.
        if _BUCKET_SPEC.fullmatch(spec) and int(spec[7:]) <= MAX_BUCKET_WIDTH:
            return spec
        raise ValueError(f"bucket needs a whole-number width from 1 to {MAX_BUCKET_WIDTH}")
    shown = spec if len(spec) <= 40 else spec[:40] + "…"  # never echo a huge input back
    raise ValueError(f"unknown transform {shown!r}")


def strictness(spec: str) -> int:
    spec = parse_transform(spec)
    return STRICTNESS["bucket" if spec.startswith("bucket:") else spec]


def stricter(a: str, b: str) -> str:
    """The stricter of two specs; `a` on a tie."""
    return b if strictness(b) > strictness(a) else a


def _check_field(level: int, pii: str) -> None:
    if not isinstance(level, int) or isinstance(level, bool) or not 1 <= level <= 4:
        raise ValueError(f"level must be 1 to 4, not {level!r}")
    if pii not in PII_KINDS:
        raise ValueError(f"unknown pii kind {pii!r}")


def default_transform(level: int, pii: str) -> str:
    """The transform a field gets in records mode when the grant names none (contract §3)."""
    _check_field(level, pii)
    if level <= 2:
        return "clear"
    if level == 3:
        return _LEVEL3_DEFAULTS[pii]
    return "pseudonym" if pii in _LEVEL4_PSEUDONYMISED else "redact"


def grantable(level: int, pii: str, spec: str) -> bool:
    """May a grant set `spec` on such a field? Raises ValueError for an invalid spec.

    Levels 1-3 take any transform (a grant may loosen level 3 to clear); level 4 never goes
    below a pseudonym. The consent exception of contract §3 is not a grant and is decided
    elsewhere.
    """
    _check_field(level, pii)
    s = strictness(spec)
    return level <= 3 or s >= PSEUDONYM_STRICTNESS


def _identity(v: Any) -> Any:
    return v


def _redact(v: Any) -> None:
    return None


_MASKS: dict[str, Callable[[Any], Any]] = {
    "mask_name": mask_name,
    "mask_id_number": mask_id_number,
    "mask_phone": mask_phone,
    "mask_bank_card": mask_bank_card,
    "mask_email": mask_email,
    "mask_address": mask_address,
    "mask_default": mask_default,
    "year_only": year_only,
}


def compile_transform(spec: str, *, key: bytes | None, pii: str) -> Callable[[Any], Any]:
    """A one-argument function applying `spec`; `key` is the app's pseudonym key.

    With the extension built, pseudonyms and the string masks come back as its objects: the
    same output per value, plus the `column` method `map_columns` uses for a whole column.
    """
    spec = parse_transform(spec)
    if spec == "clear":
        return _identity
    if spec == "redact":
        return _redact
    if spec == "pseudonym":
        if not key:
            raise ValueError("pseudonym needs the app's key")
        return _pseudonym_of(key, str(pii))
    if spec.startswith("bucket:"):
        return _bucket_of(int(spec[7:]))
    if _native is not None:  # read per call: tests and benches clear it for the Python path
        native = _NATIVE_MASKS.get(spec)
        if native is not None:
            return native
    return _MASKS[spec]


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


# The optional native pseudonyms (policies/_pseudonym.c, compiled by setup.py where a C compiler
# is found): the same HMAC, a whole column per call, ~0.13 µs a value with the CPU's SHA
# instructions and ~0.6 µs without, against ~1.1-1.6 µs for the closure below. Without it (no
# compiler at install time, a bare source tree) the Python code gives the same output;
# docs/decisions/0007-native-pseudonyms.md.
try:
    from policies import _pseudonym as _native
except ImportError:  # pragma: no cover - depends on the install
    _native = None


# The string masks have native twins in the same extension (`Mask`): a column of 1000 values
# costs ~0.03-0.09 ms instead of the Python functions' ~0.25-1.1 ms, which is mostly the call
# from Python per value and the slicing (bench.pseudonym_speed). Each twin computes the same
# slices as its Python mask for exact str and calls that mask for anything else (ints, dates,
# str subclasses), so the text rules stay here. `year_only` and `bucket` stay Python: they are
# rare and not plain slicing. Built once at import and immutable, so safe to share between
# requests and threads.
def _native_masks() -> dict[str, Callable[[Any], Any]]:
    make = getattr(_native, "mask", None)  # also None for a stale build from before the masks
    if make is None:
        return {}
    return {name: make(name, fn) for name, fn in _MASKS.items() if name.startswith("mask_")}


_NATIVE_MASKS = _native_masks()


def _pseudonym_of(key: bytes, pii: str) -> Callable[[Any], Any]:
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
    if _native is None:
        return apply
    # `apply` is the extension's fallback for values that are not exact str (ints, dates,
    # str subclasses), so the rules of `_text` stay in one place.
    return _native.make(hmac_key, prefix, apply)


def _pseudonym_closure(inner: Any, outer: Any) -> Callable[[Any], Any]:
    inner_copy, outer_copy = inner.copy, outer.copy  # copies only read the shared states

    def apply(v: Any) -> str | None:
        if v is None:
            return None
        h = inner_copy()
        h.update((v if type(v) is str else _text(v)).encode())
        o = outer_copy()
        o.update(h.digest())
        return "p_" + o.hexdigest()[:16]

    return apply


def map_columns(
    rows: Iterable[Sequence[Any]], functions: Sequence[tuple[int, Callable[[Any], Any]]]
) -> list[tuple[Any, ...]]:
    """`rows` with column `i` passed through `fn` for each `(i, fn)`, as tuples.

    A column at a time: the batch is transposed once, each column mapped through its function
    and the rows zipped back, so no row is copied into a list and no Python loop runs per
    value. The saving is small (~1k instructions a row of five transformed fields, against
    ~35k for the transforms themselves, most of it the two HMACs of the pseudonyms).

    A function with a `column` attribute (the native pseudonyms and string masks) is given
    the whole column at once instead: `fn.column(values)` returns the list of `fn(v)` for each
    value, and saves a call from Python per value besides doing the work in C.
    """
    columns: list[Iterable[Any]] = list(zip(*rows, strict=True))
    if not columns:  # no rows
        return []
    for i, fn in functions:
        batch = getattr(fn, "column", None)
        columns[i] = map(fn, columns[i]) if batch is None else batch(columns[i])
    return list(zip(*columns, strict=True))  # the maps run here, in one pass


def _bucket_of(width: int) -> Callable[[Any], Any]:
    def apply(v: Any) -> str | None:
        if type(v) is int:  # the hot path, inlined: one call per value instead of two
            lo = v // width * width
            return f"{lo}-{lo + width - 1}"
        return bucket(v, width)

    return apply
