"""The masks and generalisations of contract §3, as plain functions on one value.

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

import math
from collections.abc import Callable
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any


def text_of(value: Any) -> str:
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
# twins of them (`policies._native.masks`) that must give exactly the same output.


def mask_default(v: Any) -> str | None:
    if v is None:
        return None
    return _default(v if type(v) is str else text_of(v))


def mask_name(v: Any) -> str | None:
    if v is None:
        return None
    s = v if type(v) is str else text_of(v)
    n = len(s)
    if n <= 1:
        return "*" * n
    return s[0] + "*" * (n - 1)


def mask_id_number(v: Any) -> str | None:
    if v is None:
        return None
    s = v if type(v) is str else text_of(v)
    n = len(s)
    if n == 18:
        return s[:6] + "********" + s[14:]
    if n == 15:
        return s[:6] + "******" + s[12:]
    return _default(s)


def mask_phone(v: Any) -> str | None:
    if v is None:
        return None
    s = v if type(v) is str else text_of(v)
    n = len(s)
    if n == 11 and s.isdigit() and s.isascii():  # isdigit alone admits "１" and "²"
        return s[:3] + "****" + s[7:]
    if n <= 5:
        return _default(s)
    return s[:3] + "*" * (n - 5) + s[-2:]


def mask_bank_card(v: Any) -> str | None:
    if v is None:
        return None
    s = v if type(v) is str else text_of(v)
    if not s.isdigit():  # the usual case is plain digits: skip the split/join
        s = "".join(s.split())
    n = len(s)
    if n <= 10:
        return _default(s)
    return s[:6] + "*" * (n - 10) + s[-4:]


def mask_email(v: Any) -> str | None:
    if v is None:
        return None
    s = v if type(v) is str else text_of(v)
    local, at, domain = s.rpartition("@")
    if not at:
        return _default(s)
    return local[:1] + "***@" + domain


def mask_address(v: Any) -> str | None:
    if v is None:
        return None
    s = v if type(v) is str else text_of(v)
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


# By name; the string masks have native twins (policies/_native.py).
MASKS: dict[str, Callable[[Any], Any]] = {
    "mask_name": mask_name,
    "mask_id_number": mask_id_number,
    "mask_phone": mask_phone,
    "mask_bank_card": mask_bank_card,
    "mask_email": mask_email,
    "mask_address": mask_address,
    "mask_default": mask_default,
    "year_only": year_only,
}
