"""Check characters of Chinese identifiers, pinned by golden examples."""

from __future__ import annotations

from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from catalog.identifiers import (
    QINGDAO_DISTRICTS,
    id_number_check_char,
    is_valid_bank_card,
    is_valid_id_number,
    is_valid_mobile,
    is_valid_uscc,
    luhn_check_digit,
    org_code_check_char,
    uscc_check_char,
)

# 370202199001011237 is the reference sheet's example; the other two are the examples
# printed in GB 11643-1999 itself.
GOLDEN_ID_NUMBERS = ["370202199001011237", "11010519491231002X", "440524188001010014"]


@pytest.mark.parametrize("value", GOLDEN_ID_NUMBERS)
def test_golden_id_numbers_are_valid(value: str) -> None:
    assert id_number_check_char(value[:17]) == value[17]
    assert is_valid_id_number(value)


@pytest.mark.parametrize(
    "value",
    [
        "370202199001011234",  # wrong check character
        "11010519491231002x",  # the check is an upper-case X
        "370202900101123",  # legacy 15-digit number: no check to verify
        "37020219900101123",  # 17 characters
        "3702021990010112370",  # 19 characters
        "37020219900101123X",  # X where the check is 7
        "3702021990010112A7",  # letter in the body
        "３７０２０２１９９００１０１１２３７",  # full-width digits
        "",
        " 370202199001011237",
    ],
)
def test_malformed_id_numbers_are_rejected(value: str) -> None:
    assert not is_valid_id_number(value)


@pytest.mark.parametrize("birth", ["19900230", "19901301", "17991231"])
def test_id_number_with_impossible_birth_date_is_rejected(birth: str) -> None:
    body = f"370202{birth}123"
    assert not is_valid_id_number(body + id_number_check_char(body))


@given(
    area=st.sampled_from(sorted(QINGDAO_DISTRICTS)),
    born=st.dates(date(1900, 1, 1), date(2024, 12, 31)),
    sequence=st.integers(0, 999),
)
def test_only_the_computed_check_character_is_accepted(
    area: str, born: date, sequence: int
) -> None:
    body = f"{area}{born:%Y%m%d}{sequence:03d}"
    check = id_number_check_char(body)
    assert is_valid_id_number(body + check)
    assert not any(is_valid_id_number(body + c) for c in "0123456789X" if c != check)


def test_id_number_check_char_refuses_a_bad_body() -> None:
    with pytest.raises(ValueError):
        id_number_check_char("3702021990010112")


# GB 32100-2015's own example, and a published code whose organization-code check is X.
GOLDEN_CREDIT_CODES = ["91350100M000100Y43", "9144030071526726XG"]


@pytest.mark.parametrize("value", GOLDEN_CREDIT_CODES)
def test_golden_credit_codes_are_valid(value: str) -> None:
    assert uscc_check_char(value[:17]) == value[17]
    assert org_code_check_char(value[8:16]) == value[16]
    assert is_valid_uscc(value)


@pytest.mark.parametrize(
    ("first8", "check"),
    [
        # 1·3 + 2·7 + 3·9 + 4·10 + 5·5 + 6·8 + 7·4 + 8·2 = 201; 201 % 11 = 3; 11 − 3 = 8
        ("12345678", "8"),
        ("M000100Y", "4"),  # letters count 10..35: M = 22, Y = 34
        ("71526726", "X"),  # 10 → X
        ("00000000", "0"),  # 11 → 0
    ],
)
def test_org_code_check_char(first8: str, check: str) -> None:
    assert org_code_check_char(first8) == check


def test_uscc_check_char_maps_31_to_zero() -> None:
    assert uscc_check_char("0" * 17) == "0"


def test_credit_code_with_a_wrong_embedded_org_check_is_rejected() -> None:
    # The overall check is right, so only the organization-code check can catch it.
    body = "91350100M000100Y" + "5"
    value = body + uscc_check_char(body)
    assert not is_valid_uscc(value)


def test_credit_code_with_letters_in_the_address_code_is_rejected() -> None:
    body = "9135A100M000100Y4"
    assert not is_valid_uscc(body + uscc_check_char(body))


@pytest.mark.parametrize(
    "value",
    [
        "91350100M000100Y44",  # wrong overall check
        "91350100M000100Y4",  # 17 characters
        "91350100m000100y43",  # lower case
        "91350100O000100Y43",  # O is not in the character set
        "",
    ],
)
def test_malformed_credit_codes_are_rejected(value: str) -> None:
    assert not is_valid_uscc(value)


def test_luhn_check_digit_golden() -> None:
    assert luhn_check_digit("7992739871") == "3"
    assert luhn_check_digit("411111111111111") == "1"


@pytest.mark.parametrize(
    ("value", "valid"),
    [
        ("4111111111111111", True),
        ("6222021234567890128", True),
        ("6222 0212 3456 7890 128", True),
        ("6222021234567890123", False),  # the contract's masking example fails Luhn
        ("79927398713", False),  # Luhn-valid but too short for a card
        ("62220212345678901234", False),  # 20 digits
        ("622202123456789012X", False),
        ("", False),
    ],
)
def test_bank_cards(value: str, valid: bool) -> None:
    assert is_valid_bank_card(value) is valid


@pytest.mark.parametrize(
    ("value", "valid"),
    [
        ("13812345678", True),
        ("14712345678", True),
        ("19912345678", True),
        ("12812345678", False),  # second digit must be 3-9
        ("23812345678", False),
        ("1381234567", False),
        ("138123456789", False),
        ("+8613812345678", False),
        ("138-1234-5678", False),
        ("１３８１２３４５６７８", False),  # full-width digits
        ("", False),
    ],
)
def test_mobile_numbers(value: str, valid: bool) -> None:
    assert is_valid_mobile(value) is valid


def test_qingdao_districts_match_the_reference_sheet() -> None:
    assert QINGDAO_DISTRICTS == {
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
