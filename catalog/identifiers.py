"""Check characters and validity of Chinese identifiers.

Citizen identity numbers (GB 11643-1999), unified social credit codes (GB 32100-2015) with
their embedded organization codes (GB 11714), bank cards (Luhn) and mobile numbers. Pure
functions without dependencies: the demo catalog uses them to build valid data and tests use
them to prove it.
"""

from __future__ import annotations

from datetime import date
from operator import mul

__all__ = [
    "QINGDAO_DISTRICTS",
    "USCC_CHARSET",
    "id_number_check_char",
    "is_valid_bank_card",
    "is_valid_id_number",
    "is_valid_mobile",
    "is_valid_uscc",
    "luhn_check_digit",
    "org_code_check_char",
    "uscc_check_char",
]

# GB/T 2260 codes of Qingdao's districts (区) and county-level cities (市). The city itself
# is 370200.
QINGDAO_DISTRICTS: dict[str, str] = {
    "370202": "市南区",
    "370203": "市北区",
    "370211": "黄岛区",
    "370212": "崂山区",
    "370213": "李沧区",
    "370214": "城阳区",
    "370215": "即墨区",
    "370281": "胶州市",
    "370283": "平度市",
    "370285": "莱西市",
}

_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"

# The 31 characters of a credit code: no I, O, S, V or Z, which read like 1, 0, 5, U and 2.
USCC_CHARSET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_USCC_CHARS = frozenset(USCC_CHARSET)
_USCC_VALUE = {c: i for i, c in enumerate(USCC_CHARSET)}
_USCC_WEIGHTS = tuple(pow(3, i, 31) for i in range(17))

_ORG_WEIGHTS = (3, 7, 9, 10, 5, 8, 4, 2)
_ORG_CHARS = frozenset("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ")


def _is_digits(value: str) -> bool:
    # isdigit() alone also accepts full-width and other Unicode digits; identifiers are ASCII.
    return value.isascii() and value.isdigit()


def id_number_check_char(first17: str) -> str:
    """The 18th character of an identity number whose first 17 digits are `first17`."""
    if len(first17) != 17 or not _is_digits(first17):
        raise ValueError("an identity number body is 17 ASCII digits")
    return _ID_CHECK[sum(map(mul, map(int, first17), _ID_WEIGHTS)) % 11]


def is_valid_id_number(value: str) -> bool:
    """True for an 18-character identity number with a real birth date and the right check.

    Only the upper-case `X` is accepted as check character; legacy 15-digit numbers, which
    carry no check, are not.
    """
    if not isinstance(value, str) or len(value) != 18 or not _is_digits(value[:17]):
        return False
    try:
        born = date(int(value[6:10]), int(value[10:12]), int(value[12:14]))
    except ValueError:
        return False
    if born.year < 1800:
        return False
    return value[17] == id_number_check_char(value[:17])


def org_code_check_char(first8: str) -> str:
    """The 9th character of an organization code whose first 8 characters are `first8`."""
    if len(first8) != 8 or not _ORG_CHARS.issuperset(first8):
        raise ValueError("an organization code body is 8 digits or upper-case letters")
    # Digits count as themselves, letters A..Z as 10..35: their value in base 36.
    total = sum(int(ch, 36) * w for ch, w in zip(first8, _ORG_WEIGHTS, strict=True))
    c = 11 - total % 11
    return "X" if c == 10 else "0" if c == 11 else str(c)


def uscc_check_char(first17: str) -> str:
    """The 18th character of a unified social credit code whose first 17 are `first17`."""
    if len(first17) != 17 or not _USCC_CHARS.issuperset(first17):
        raise ValueError(f"a credit code body is 17 characters of {USCC_CHARSET}")
    total = sum(map(mul, map(_USCC_VALUE.__getitem__, first17), _USCC_WEIGHTS))
    return USCC_CHARSET[(31 - total % 31) % 31]


def is_valid_uscc(value: str) -> bool:
    """True for an 18-character credit code whose own check and organization-code check hold."""
    if not isinstance(value, str) or len(value) != 18:
        return False
    if not _USCC_CHARS.issuperset(value) or not _is_digits(value[2:8]):
        return False
    if value[17] != uscc_check_char(value[:17]):
        return False
    return value[16] == org_code_check_char(value[8:16])


def luhn_check_digit(digits: str) -> str:
    """The Luhn digit to append to `digits`."""
    if not _is_digits(digits):
        raise ValueError("the Luhn payload is one or more ASCII digits")
    total = 0
    # Counting from the right of the payload, every first, third, ... digit is doubled,
    # because the check digit will take the rightmost place.
    for i, c in enumerate(reversed(digits)):
        d = int(c)
        if i % 2 == 0:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return str(-total % 10)


def is_valid_bank_card(value: str) -> bool:
    """True for 16 to 19 digits ending in their Luhn digit; spaces between groups are allowed."""
    if not isinstance(value, str):
        return False
    digits = value.replace(" ", "")
    if not 16 <= len(digits) <= 19 or not _is_digits(digits):
        return False
    return digits[-1] == luhn_check_digit(digits[:-1])


def is_valid_mobile(value: str) -> bool:
    """True for an 11-digit mainland mobile number: `1`, then 3 to 9, then 9 digits."""
    return (
        isinstance(value, str)
        and len(value) == 11
        and _is_digits(value)
        and value[0] == "1"
        and value[1] in "3456789"
    )
