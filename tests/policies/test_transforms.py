"""Transforms of contract §3: golden outputs, default rules, grant limits, keys, properties."""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from policies import _native, masks, pseudonyms
from policies.compiled import compile_transform, map_columns
from policies.masks import (
    bucket,
    mask_address,
    mask_bank_card,
    mask_default,
    mask_email,
    mask_id_number,
    mask_name,
    mask_phone,
    year_only,
)
from policies.pseudonyms import derive_app_key, pseudonym
from policies.transform_rules import (
    PII_KINDS,
    STRICTNESS,
    TRANSFORM_NAMES,
    TRANSFORM_ORDER,
    allowed_transforms,
    default_transform,
    grantable,
    parse_transform,
    stricter,
    strictness,
)
from tests.native import REQUIRE_NATIVE, native_module

KEY = bytes(range(32))
PII = ["none", "name", "id_number", "phone", "bank_card", "email", "address", "date_of_birth"]
PII += ["other"]
ALL_SPECS = [*sorted(TRANSFORM_NAMES), "bucket:1", "bucket:5000", "bucket:1000000000000"]
MASKS = ["mask_name", "mask_id_number", "mask_phone", "mask_bank_card", "mask_email"]
MASKS += ["mask_address", "mask_default"]
PSEUDONYM = re.compile(r"p_[0-9a-f]{16}")


def apply(spec: str, value: Any, *, key: bytes | None = KEY, pii: str = "other") -> Any:
    return compile_transform(spec, key=key, pii=pii)(value)


# --- golden outputs: every example of the contract table, plus the edges decided here ----

CONTRACT_EXAMPLES = [
    ("mask_name", "张三丰", "张**"),
    ("mask_name", "张", "*"),
    ("mask_id_number", "370202199001011234", "370202********1234"),
    ("mask_phone", "13812345678", "138****5678"),
    ("mask_bank_card", "6222021234567890123", "622202*********0123"),
    ("mask_email", "zhangsan@example.com", "z***@example.com"),
    ("mask_address", "青岛市市南区香港中路10号", "青岛市市南区****"),
    ("year_only", "1990-05-17", "1990"),
    ("bucket:5000", 12345, "10000-14999"),
]


@pytest.mark.parametrize(("spec", "value", "expected"), CONTRACT_EXAMPLES)
def test_contract_examples(spec: str, value: Any, expected: str) -> None:
    assert apply(spec, value) == expected


MASK_EDGES: list[tuple[Callable[[Any], Any], Any, str]] = [
    (mask_name, "张三", "张*"),
    (mask_name, "欧阳娜娜", "欧***"),
    (mask_name, "", ""),
    (mask_id_number, "37020219900101123X", "370202********123X"),
    (mask_id_number, "370202900101123", "370202******123"),  # 15 characters
    (mask_id_number, "37020219900101123", "3***************3"),  # 17: mask_default
    (mask_id_number, "AB", "**"),
    (mask_id_number, 370202199001011234, "370202********1234"),
    (mask_phone, 13812345678, "138****5678"),
    (mask_phone, "0532-88886666", "053********66"),
    (mask_phone, "+8613812345678", "+86*********78"),
    (mask_phone, "１３８１２３４５６７８", "１３８******７８"),  # not ASCII digits
    (mask_phone, "123456", "123*56"),
    (mask_phone, "12345", "1***5"),  # would keep all: mask_default
    (mask_phone, "110", "1*0"),
    (mask_phone, "12", "**"),
    (mask_bank_card, "6222 0212 3456 7890 123", "622202*********0123"),
    (mask_bank_card, "6222\u30000212345678901", "622202*******8901"),
    (mask_bank_card, 6222021234567890, "622202******7890"),
    (mask_bank_card, "12345678901", "123456*8901"),
    (mask_bank_card, "1234567890", "1********0"),  # would keep all: mask_default
    (mask_bank_card, "6222-0212-3456", "6222-0****3456"),
    (mask_email, "a@b.cn", "a***@b.cn"),
    (mask_email, "@example.com", "***@example.com"),
    (mask_email, '"a@b"@example.com', '"***@example.com'),  # the last @ starts the domain
    (mask_email, "not-an-email", "n**********l"),
    (mask_address, "青岛市市南区", "青****区"),  # would keep all: mask_default
    (mask_address, "青岛市市南区香", "青岛市市南区****"),
    (mask_default, "abc", "a*c"),
    (mask_default, "ab", "**"),
    (mask_default, "a", "*"),
    (mask_default, "", ""),
    (mask_default, 12345, "1***5"),
    (mask_default, date(1990, 5, 17), "1********7"),
    (mask_default, True, "T**e"),
]


@pytest.mark.parametrize(("fn", "value", "expected"), MASK_EDGES)
def test_mask_edges(fn: Callable[[Any], Any], value: Any, expected: str) -> None:
    assert fn(value) == expected


def test_dates_read_the_same_from_both_databases() -> None:
    # SQLite hands back ISO text, PostgreSQL native values: same mask, same pseudonym.
    moment = datetime(1990, 5, 17, 8, 30)
    assert mask_default(moment) == mask_default("1990-05-17T08:30:00")
    assert pseudonym(moment, KEY, "other") == pseudonym("1990-05-17T08:30:00", KEY, "other")
    assert pseudonym(date(1990, 5, 17), KEY, "other") == pseudonym("1990-05-17", KEY, "other")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("1990-05-17", "1990"),
        (date(1990, 5, 17), "1990"),
        (datetime(1990, 5, 17, 23, 59), "1990"),
        ("1990-05-17T23:59:00", "1990"),
        (date(33, 1, 1), "0033"),
        (19900517, "1990"),
        ("19900517", "1990"),
        ("May 1990", None),  # no year to read: withheld, not leaked
        ("", None),
        ("１９９０-05-17", None),
    ],
)
def test_year_only(value: Any, expected: str | None) -> None:
    assert year_only(value) == expected


@pytest.mark.parametrize(
    ("value", "width", "expected"),
    [
        (0, 5000, "0-4999"),
        (4999, 5000, "0-4999"),
        (5000, 5000, "5000-9999"),
        (-1, 5000, "-5000--1"),
        (-5000, 5000, "-5000--1"),
        (-5001, 5000, "-10000--5001"),
        (7, 1, "7-7"),
        (-7, 1, "-7--7"),
        (12345.6, 5000, "10000-14999"),
        (-0.5, 5000, "-5000--1"),
        (Decimal("-0.5"), 5000, "-5000--1"),  # Decimal // would truncate to 0
        (Decimal("12345.6"), 5000, "10000-14999"),
        ("12345", 5000, "10000-14999"),
        ("-0.5", 5000, "-5000--1"),
        (10**30 + 1, 10**12, f"{10**30}-{10**30 + 10**12 - 1}"),
        (True, 2, "0-1"),
        (float("nan"), 5000, None),
        (float("inf"), 5000, None),
        (Decimal("NaN"), 5000, None),
        ("1e999999999", 5000, None),
        ("abc", 5000, None),
    ],
)
def test_bucket(value: Any, width: int, expected: str | None) -> None:
    assert bucket(value, width) == expected
    assert apply(f"bucket:{width}", value) == expected


# --- null in, null out ---------------------------------------------------------------------


@pytest.mark.parametrize("spec", ALL_SPECS)
def test_null_stays_null_compiled(spec: str) -> None:
    assert apply(spec, None) is None


@pytest.mark.parametrize(
    "fn",
    [
        mask_name,
        mask_id_number,
        mask_phone,
        mask_bank_card,
        mask_email,
        mask_address,
        mask_default,
        year_only,
        lambda v: bucket(v, 5000),
        lambda v: pseudonym(v, KEY, "phone"),
    ],
)
def test_null_stays_null(fn: Callable[[Any], Any]) -> None:
    assert fn(None) is None


def test_clear_and_redact() -> None:
    value = object()
    assert apply("clear", value) is value
    assert apply("redact", "anything") is None
    assert apply("redact", 0) is None


# --- specs ---------------------------------------------------------------------------------


@pytest.mark.parametrize("spec", ALL_SPECS)
def test_parse_accepts(spec: str) -> None:
    assert parse_transform(spec) == spec


@pytest.mark.parametrize(
    ("spec", "reason"),
    [
        ("", "未知的脱敏方式"),
        ("mask", "未知的脱敏方式"),
        ("Clear", "未知的脱敏方式"),
        (" clear", "未知的脱敏方式"),
        ("mask_*", "未知的脱敏方式"),
        ("x" * 10_000, "未知的脱敏方式"),
        ("bucketx", "未知的脱敏方式"),
        ("bucket", "bucket 须写作"),
        ("bucket:", "bucket 须写作"),
        ("bucket:0", "bucket 须写作"),
        ("bucket:-5", "bucket 须写作"),
        ("bucket:+5", "bucket 须写作"),
        ("bucket: 5", "bucket 须写作"),
        ("bucket:05", "bucket 须写作"),
        ("bucket:5_000", "bucket 须写作"),
        ("bucket:5.5", "bucket 须写作"),
        ("bucket:abc", "bucket 须写作"),
        ("bucket:1000000000001", "bucket 须写作"),
        ("bucket:5:5", "bucket 须写作"),
    ],
)
def test_parse_rejects(spec: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason) as caught:
        parse_transform(spec)
    message = str(caught.value)
    assert len(message) < 200  # short, and never echoes a huge spec
    if "未知" in message:  # every valid spec is named, so the caller can pick one
        assert all(name in message for name in TRANSFORM_ORDER)
    with pytest.raises(ValueError):
        compile_transform(spec, key=KEY, pii="other")


def test_parse_rejects_non_strings() -> None:
    with pytest.raises(ValueError):
        parse_transform(None)  # type: ignore[arg-type]


def test_pseudonym_needs_a_key() -> None:
    for key in (None, b""):
        with pytest.raises(ValueError, match="key"):
            compile_transform("pseudonym", key=key, pii="phone")
    assert compile_transform("mask_phone", key=None, pii="phone")("13812345678") == "138****5678"


# --- strictness ----------------------------------------------------------------------------


def test_strictness_order() -> None:
    ladder = ["clear", "year_only", "mask_name", "pseudonym", "redact"]
    assert [strictness(s) for s in ladder] == [0, 1, 2, 3, 4]
    assert strictness("bucket:5000") == strictness("year_only") == 1
    for mask in MASKS:
        assert strictness(mask) == 2
    assert set(STRICTNESS) == TRANSFORM_NAMES | {"bucket"}


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ("clear", "mask_name", "mask_name"),
        ("mask_name", "clear", "mask_name"),
        ("pseudonym", "redact", "redact"),
        ("redact", "pseudonym", "redact"),
        ("bucket:10", "mask_default", "mask_default"),
        ("year_only", "bucket:10", "year_only"),  # tie: keep a
        ("bucket:10", "year_only", "bucket:10"),
        ("mask_phone", "mask_default", "mask_phone"),
        ("mask_default", "mask_phone", "mask_default"),
        ("pseudonym", "mask_id_number", "pseudonym"),
    ],
)
def test_stricter(a: str, b: str, expected: str) -> None:
    assert stricter(a, b) == expected


def test_stricter_validates() -> None:
    with pytest.raises(ValueError):
        stricter("clear", "nope")


# --- default transforms and grant limits -----------------------------------------------------

LEVEL3 = {
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
LEVEL4 = {
    p: "pseudonym" if p in ("id_number", "phone", "bank_card", "email") else "redact" for p in PII
}
DEFAULTS = [(1, p, "clear") for p in PII] + [(2, p, "clear") for p in PII]
DEFAULTS += [(3, p, s) for p, s in LEVEL3.items()] + [(4, p, s) for p, s in LEVEL4.items()]


@pytest.mark.parametrize(("level", "pii", "expected"), DEFAULTS)
def test_default_transform(level: int, pii: str, expected: str) -> None:
    assert default_transform(level, pii) == expected
    assert grantable(level, pii, expected)  # a default is always a legal grant


def test_default_covers_every_combination() -> None:
    assert len(DEFAULTS) == 4 * len(PII) == 36
    assert set(PII) == PII_KINDS


@pytest.mark.parametrize(("level", "pii"), [(0, "name"), (5, "name"), (3, "ssn"), (3, "")])
def test_default_rejects_unknown(level: int, pii: str) -> None:
    with pytest.raises(ValueError):
        default_transform(level, pii)
    with pytest.raises(ValueError):
        grantable(level, pii, "clear")


def test_default_accepts_str_enums() -> None:
    from enum import StrEnum

    class Pii(StrEnum):
        phone = "phone"

    assert default_transform(4, Pii.phone) == "pseudonym"
    assert pseudonym("x", KEY, Pii.phone) == pseudonym("x", KEY, "phone")
    assert apply("pseudonym", "x", pii=Pii.phone) == pseudonym("x", KEY, "phone")


@pytest.mark.parametrize("level", [1, 2, 3])
@pytest.mark.parametrize("spec", ALL_SPECS)
def test_grantable_below_level_4(level: int, spec: str) -> None:
    for pii in PII:
        assert grantable(level, pii, spec)


@pytest.mark.parametrize(
    ("spec", "allowed"),
    [
        ("clear", False),
        ("year_only", False),
        ("bucket:5000", False),
        *[(m, False) for m in MASKS],
        ("pseudonym", True),
        ("redact", True),
    ],
)
def test_level_4_may_not_become_clear_or_masked(spec: str, allowed: bool) -> None:
    for pii in PII:
        assert grantable(4, pii, spec) is allowed


def test_grantable_rejects_bad_specs() -> None:
    with pytest.raises(ValueError):
        grantable(3, "name", "bucket:0")


# --- pseudonyms and keys -------------------------------------------------------------------


def test_pseudonym_is_hmac_of_pii_and_value() -> None:
    import hashlib
    import hmac

    expected = "p_" + hmac.new(KEY, b"phone:13812345678", hashlib.sha256).hexdigest()[:16]
    assert pseudonym("13812345678", KEY, "phone") == expected
    assert pseudonym(13812345678, KEY, "phone") == expected
    assert apply("pseudonym", "13812345678", pii="phone") == expected


@pytest.mark.parametrize("length", [1, 16, 32, 63, 64, 65, 200])
def test_compiled_pseudonym_is_the_same_hmac_for_any_key_length(length: int) -> None:
    # The compiled form precomputes the HMAC pads; it must agree with hmac.digest exactly.
    key = os.urandom(length)
    compiled = compile_transform("pseudonym", key=key, pii="email")
    for value in ["", "a", "zhangsan@example.com", "张三丰" * 40, 12345, date(1990, 5, 17)]:
        assert compiled(value) == pseudonym(value, key, "email")


def test_pseudonym_stable_per_app_and_distinct_across_apps_and_kinds() -> None:
    master = os.urandom(32)
    a, b = derive_app_key(master, "app-a"), derive_app_key(master, "app-b")
    value = "370202199001011234"
    assert pseudonym(value, a, "id_number") == pseudonym(value, a, "id_number")
    assert pseudonym(value, a, "id_number") != pseudonym(value, b, "id_number")
    assert pseudonym(value, a, "id_number") != pseudonym(value, a, "phone")
    assert pseudonym(value, a, "id_number") != pseudonym(value + "0", a, "id_number")
    compiled = compile_transform("pseudonym", key=a, pii="id_number")
    assert compiled(value) == pseudonym(value, a, "id_number")


def test_map_columns_transforms_only_the_given_columns() -> None:
    rows = [(1, "张三丰", "13812345678"), (2, None, "0532-88886666")]
    steps = [(1, compile_transform("mask_name", key=None, pii="name"))]
    steps.append((2, compile_transform("pseudonym", key=KEY, pii="phone")))
    assert map_columns(rows, steps) == [
        (1, "张**", pseudonym("13812345678", KEY, "phone")),
        (2, None, pseudonym("0532-88886666", KEY, "phone")),
    ]
    assert map_columns([], steps) == []
    assert map_columns(iter(rows), []) == rows


def test_derive_app_key() -> None:
    master = bytes(32)
    key = derive_app_key(master, "app-1")
    assert len(key) == 32
    assert key == derive_app_key(master, "app-1")
    assert key != derive_app_key(master, "app-2")
    assert key != derive_app_key(b"\x01" * 32, "app-1")
    assert derive_app_key(master, "应用") != derive_app_key(master, "应")


def test_derive_app_key_is_hkdf_sha256() -> None:
    from cryptography.hazmat.primitives.hashes import SHA256
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    hkdf = HKDF(algorithm=SHA256(), length=32, salt=None, info=b"opengate pseudonym v1:app-1")
    assert derive_app_key(bytes(32), "app-1") == hkdf.derive(bytes(32))


# --- properties ------------------------------------------------------------------------------

# No "*" in generated text, so every non-"*" character of an output is a revealed one.
TEXT_CHARS = st.characters(codec="utf-8", exclude_characters="*")
TEXT = st.text(TEXT_CHARS, max_size=40)
DIGITS = st.text(st.sampled_from("0123456789"), min_size=1, max_size=24)
VALUES = st.one_of(
    st.none(),
    TEXT,
    st.integers(),
    st.floats(),
    st.booleans(),
    st.dates(),
    st.datetimes(),
)
# The whole file must stay under 3 s: broad inputs get 200 examples, narrow ones 100.
FAST = settings(max_examples=200, deadline=None)
NARROW = settings(max_examples=100, deadline=None)


def revealed_in_place(inp: str, out: str) -> int:
    return sum(1 for a, b in zip(inp, out, strict=False) if a == b and b != "*")


def shown(out: str) -> int:
    return sum(1 for c in out if c != "*")


@FAST
@given(TEXT)
def test_masks_reveal_only_what_their_rule_keeps(s: str) -> None:
    name = mask_name(s)
    assert name is not None and len(name) == len(s) and set(name[1:]) <= {"*"}
    assert shown(name) == revealed_in_place(s, name) == (1 if len(s) > 1 else 0)

    default = mask_default(s)
    assert default is not None and len(default) == len(s)
    assert shown(default) == revealed_in_place(s, default) == (2 if len(s) > 2 else 0)

    id_number = mask_id_number(s)
    assert id_number is not None and len(id_number) == len(s)
    if len(s) not in (15, 18):
        assert id_number == default

    phone = mask_phone(s)
    assert phone is not None and len(phone) == len(s)
    assert shown(phone) == revealed_in_place(s, phone) <= 7

    address = mask_address(s)
    assert address is not None and shown(address) <= 6

    for out in (name, default, id_number, phone, address):
        if s:
            assert out != s  # a mask never hands a value back whole


@NARROW
@given(st.sampled_from([15, 18]).flatmap(lambda n: st.text(TEXT_CHARS, min_size=n, max_size=n)))
def test_mask_id_number_reveals_ten_or_nine_in_place(s: str) -> None:
    out = mask_id_number(s)
    assert out is not None and len(out) == len(s)
    if len(s) == 18:
        assert out[:6] == s[:6] and out[14:] == s[14:] and out[6:14] == "*" * 8
        assert revealed_in_place(s, out) == shown(out) == 10
    else:
        assert out[:6] == s[:6] and out[12:] == s[12:] and out[6:12] == "*" * 6
        assert revealed_in_place(s, out) == shown(out) == 9


@NARROW
@given(st.text(st.sampled_from("0123456789"), min_size=11, max_size=11))
def test_mask_phone_11_digits_reveals_seven(s: str) -> None:
    out = mask_phone(s)
    assert out is not None and out[3:7] == "****"
    assert revealed_in_place(s, out) == shown(out) == 7


@NARROW
@given(DIGITS)
def test_mask_bank_card_reveals_at_most_ten(s: str) -> None:
    out = mask_bank_card(s)
    assert out is not None and len(out) == len(s)
    assert (
        shown(out) == revealed_in_place(s, out) == (10 if len(s) > 10 else 2 if len(s) > 2 else 0)
    )
    assert out != s


@FAST
@given(TEXT, TEXT)
def test_mask_email_keeps_first_char_and_domain(local: str, domain: str) -> None:
    domain = domain.replace("@", "")
    out = mask_email(f"{local}@{domain}")
    assert out == local[:1] + "***@" + domain


@FAST
@given(st.sampled_from(ALL_SPECS), VALUES, st.sampled_from(PII))
def test_every_transform_is_total(spec: str, value: Any, pii: str) -> None:
    # No value a database can hand back makes a transform raise mid-response;
    # null stays null and a pseudonym always has its one shape.
    out = apply(spec, value, pii=pii)
    if value is None or spec == "redact":
        assert out is None
    elif spec == "clear":
        assert out is value
    elif spec == "pseudonym":
        assert PSEUDONYM.fullmatch(out) and out == pseudonym(value, KEY, pii)
    else:
        assert out is None or isinstance(out, str)


@NARROW
@given(st.integers(min_value=-(10**20), max_value=10**20), st.integers(1, 10**12))
def test_bucket_contains_its_value(v: int, width: int) -> None:
    out = bucket(v, width)
    assert out is not None
    match = re.fullmatch(r"(-?\d+)-(-?\d+)", out)
    assert match is not None
    lo, hi = int(match[1]), int(match[2])
    assert lo <= v <= hi and hi - lo == width - 1 and lo % width == 0


@NARROW
@given(st.datetimes())
def test_year_only_of_any_date(moment: datetime) -> None:
    year = f"{moment.year:04d}"
    assert year_only(moment) == year_only(moment.date()) == year
    assert year_only(moment.isoformat()) == year_only(moment.date().isoformat()) == year


# --- native pseudonyms (policies/_pseudonym.c) -------------------------------------------------
# The extension is optional: `pip install -e` builds it where a C compiler is found, and
# without it `pseudonym_of` returns the Python closure. Its tests skip locally when it is not
# built; with OPENGATE_REQUIRE_NATIVE=1 (as `.ci/run` sets) they fail instead, so CI cannot go
# green on the fallback alone.


@pytest.fixture(scope="module")
def native() -> Any:
    module = native_module("policies._pseudonym")
    assert _native.pseudonyms is module  # the one switch found it too
    return module


def python_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Force the pure-Python pseudonyms, as on an install without the extension."""
    monkeypatch.setattr(_native, "pseudonyms", None)


# The two SHA-256 block functions: the hardware one where the CPU has it, and the portable C
# one that every other machine runs. Both are held to the same reference.
BLOCK_FUNCTIONS = [False, True]


@pytest.mark.parametrize("portable", BLOCK_FUNCTIONS)
def test_native_rfc_4231_vectors(native: Any, portable: bool) -> None:
    # HMAC-SHA256 known answers (RFC 4231 cases 2 and 6, the latter a 131-byte key that is
    # hashed first), split as prefix + value the way a pseudonym is.
    jefe = native.make(b"Jefe", b"what do ya want ", str, portable=portable)
    assert jefe.column(["for nothing?"]) == ["p_5bdcc146bf60754e"]
    big = native.make(b"\xaa" * 131, b"Test Using Larger Than Block", str, portable=portable)
    assert big("-Size Key - Hash Key First") == "p_60e431591ee0b67f"
    assert big.implementation == ("portable" if portable else native.IMPLEMENTATION)


KEYS = st.sampled_from([0, 32, 64, 65, 200]).flatmap(lambda n: st.binary(min_size=n, max_size=n))
COLUMN_VALUES = st.lists(
    st.one_of(
        st.none(),
        st.text(st.characters(max_codepoint=127)),  # the ASCII fast path
        st.text(),  # any code point but lone surrogates (hypothesis leaves those out)
        st.text(min_size=40, max_size=300),  # past one 64-byte block, some past several
        st.integers(),
        st.booleans(),
        st.dates(),
        st.datetimes(),
    ),
    max_size=12,
)


@NARROW
@given(KEYS, st.sampled_from(PII), COLUMN_VALUES)
def test_native_column_is_the_python_pseudonym(
    native: Any, key: bytes, pii: str, values: list[Any]
) -> None:
    expected = [pseudonym(v, key, pii) for v in values]  # hmac.digest: the reference
    compiled = pseudonyms.pseudonym_of(key, pii)
    assert isinstance(compiled, native.Pseudonymizer)
    assert compiled.column(values) == expected
    assert compiled.column(tuple(values)) == expected  # map_columns hands it tuples
    assert [compiled(v) for v in values] == expected
    portable = native.make(key, f"{pii}:".encode(), compiled, portable=True)
    assert portable.column(values) == expected


def test_native_falls_back_for_anything_but_exact_str(native: Any) -> None:
    class Shouty(str):
        def __str__(self) -> str:
            return self.upper()

    compiled = pseudonyms.pseudonym_of(KEY, "other")
    values = [Shouty("abc"), 7, True, 1.5, Decimal("2.50"), date(1990, 5, 17), None, "abc"]
    assert compiled.column(values) == [pseudonym(v, KEY, "other") for v in values]
    assert compiled.column([Shouty("abc")]) == [pseudonym("ABC", KEY, "other")]
    seen: list[Any] = []
    spy = native.make(KEY, b"other:", lambda v: seen.append(v) or "fallback")
    assert spy.column(["x", None, 7]) == [pseudonym("x", KEY, "other"), None, "fallback"]
    assert seen == [7]  # neither the str nor None reached the fallback


def test_native_raises_what_python_raises(native: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    compiled = pseudonyms.pseudonym_of(KEY, "other")
    with monkeypatch.context() as patch:
        python_only(patch)
        with pytest.raises(UnicodeEncodeError) as python_error:
            pseudonyms.pseudonym_of(KEY, "other")("a\ud800")  # a lone surrogate has no UTF-8
    with pytest.raises(UnicodeEncodeError) as native_error:
        compiled.column(["ok", "a\ud800"])
    assert str(native_error.value) == str(python_error.value)

    class Unprintable:
        def __str__(self) -> str:
            raise ValueError("no text")

    with pytest.raises(ValueError, match="no text"):
        compiled.column(["ok", Unprintable()])
    with pytest.raises(TypeError):
        compiled.column(5)
    with pytest.raises(TypeError):
        native.make(KEY, b"other:", "not callable")


@pytest.mark.parametrize("path", ["native", "python"])
def test_pseudonym_golden_on_both_paths(
    path: str, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The contract's definition, checked against an independent HMAC on each path (the
    # Python one runs whether or not the extension is built).
    import hashlib
    import hmac

    if path == "native":
        request.getfixturevalue("native")
    else:
        python_only(monkeypatch)
    compiled = compile_transform("pseudonym", key=KEY, pii="phone")
    assert hasattr(compiled, "column") == (path == "native")
    expected = "p_" + hmac.new(KEY, b"phone:13812345678", hashlib.sha256).hexdigest()[:16]
    assert compiled("13812345678") == compiled(13812345678) == expected
    assert map_columns([("13812345678",), (None,)], [(0, compiled)]) == [(expected,), (None,)]


def test_map_columns_same_rows_with_and_without_native(
    native: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows: list[tuple[Any, ...]] = []
    for i in range(300):
        rows.append(
            (
                i,
                "张三丰" if i % 7 else None,
                f"3702{i % 90 + 10:02d}19900101{i % 1000:03d}{'X' if i % 11 == 0 else i % 10}",
                f"1{3 + i % 7}{(i * 7919) % 10**9:09d}",
                None if i % 13 == 0 else (i if i % 17 == 0 else f"user{i}@example.com"),
                "青岛市市南区香港中路10号",
                date(2024, i % 12 + 1, 1),
            )
        )
    specs = [(1, "mask_name", "name"), (2, "pseudonym", "id_number"), (3, "mask_phone", "phone")]
    specs += [(4, "pseudonym", "email"), (5, "mask_address", "address"), (6, "pseudonym", "other")]

    def steps() -> list[tuple[int, Callable[[Any], Any]]]:
        return [(i, compile_transform(s, key=KEY, pii=pii)) for i, s, pii in specs]

    native_steps = steps()
    assert all(hasattr(fn, "column") for _, fn in native_steps)  # masks and pseudonyms alike
    with_native = map_columns(rows, native_steps)
    python_only(monkeypatch)
    fallback_steps = steps()
    assert not any(hasattr(fn, "column") for _, fn in fallback_steps)
    assert map_columns(rows, fallback_steps) == with_native
    assert with_native[13][4] is None and with_native[17][4] == pseudonym(17, KEY, "email")


# --- native string masks (the `Mask` type of policies/_pseudonym.c) ---------------------------
# The Python masks above are the reference: each native mask must give exactly their output,
# for any value. Same skip/fail rule as the pseudonyms.

NATIVE_MASKS = [*MASKS]  # every string mask; year_only and bucket stay Python


@pytest.fixture(scope="module")
def native_masks(native: Any) -> Any:
    if not hasattr(native, "mask"):  # a .so built before the masks: rebuild it
        reason = "policies._pseudonym has no masks (a stale build); `make install` rebuilds it"
        if REQUIRE_NATIVE:
            pytest.fail(f"OPENGATE_REQUIRE_NATIVE=1 but {reason}")
        pytest.skip(reason)
    assert sorted(native.MASKS) == sorted(NATIVE_MASKS)
    assert sorted(_native.masks) == sorted(NATIVE_MASKS)  # built them all
    return native


def same_str(out: Any, expected: Any) -> bool:
    """Equal, and built the same: exact str of the narrowest kind (its size in memory tells)."""
    if expected is None or out is None:
        return out is expected
    import sys

    return type(out) is str and out == expected and sys.getsizeof(out) == sys.getsizeof(expected)


class Shouty(str):
    """A str subclass whose text is not itself: must go through the Python mask (`_text`)."""

    def __str__(self) -> str:
        return self.upper()


# Characters chosen to hit every rule: ASCII digits and their neighbours "/" and ":", fullwidth
# and other Unicode digits, every kind of whitespace str.split() knows (incl. U+3000, U+0085
# and the ASCII separators 0x1c-0x1f), "@" and "*", Latin-1, BMP and astral letters, and lone
# surrogates (the masks only slice, so they accept them).
MASK_ALPHABET = (
    "0123456789/:０１２²٣ \t\n\x0b\x0c\r\x1c\x1f\x85\xa0\u2000\u3000@*-+aZé张😀\ud800\udfff"
)
MASK_VALUES = st.lists(
    st.one_of(
        st.none(),
        st.text(),  # any code point but lone surrogates
        st.text(st.characters(max_codepoint=127), max_size=20),
        st.text(st.sampled_from("0123456789"), min_size=9, max_size=20),  # around 11, 15, 18
        st.text(st.sampled_from("0123456789/:０１２"), min_size=10, max_size=12),  # ~phones
        st.text(st.sampled_from("0123456789 \t\u3000\xa0"), max_size=24),
        st.text(st.sampled_from(MASK_ALPHABET), max_size=24),
        st.text(st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF), max_size=4),
        st.builds(Shouty, st.text(max_size=12)),
        st.integers(),
        st.floats(),
        st.booleans(),
        st.dates(),
        st.datetimes(),
        st.decimals(allow_nan=False),
    ),
    max_size=12,
)


@FAST
@given(st.sampled_from(NATIVE_MASKS), MASK_VALUES)
def test_native_mask_column_is_the_python_mask(
    native_masks: Any, name: str, values: list[Any]
) -> None:
    python = getattr(masks, name)
    expected = [python(v) for v in values]  # the reference
    compiled = compile_transform(name, key=None, pii="other")
    assert isinstance(compiled, native_masks.Mask) and compiled.name == name
    for got in (compiled.column(values), compiled.column(tuple(values))):  # lists and tuples
        assert all(same_str(o, e) for o, e in zip(got, expected, strict=True)), (got, expected)
    assert all(same_str(compiled(v), e) for v, e in zip(values, expected, strict=True))


@pytest.mark.parametrize("path", ["native", "python"])
def test_mask_golden_on_both_paths(
    path: str, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The contract's examples and the edges above through compile_transform and map_columns,
    # natively and on the pure-Python fallback (which runs whether or not the extension is built).
    if path == "native":
        request.getfixturevalue("native_masks")
    else:
        python_only(monkeypatch)
    cases = [(spec, v, e) for spec, v, e in CONTRACT_EXAMPLES if spec in NATIVE_MASKS]
    cases += [(fn.__name__, v, e) for fn, v, e in MASK_EDGES]
    cases += [  # results narrower than their input: only the wide characters were masked
        ("mask_default", "a张b", "a*b"),
        ("mask_default", "é😀\ud800a", "é**a"),
        ("mask_email", "张@a.cn", "张***@a.cn"),
        ("mask_email", "a😀@a.cn", "a***@a.cn"),
        ("mask_bank_card", "６２２２\u3000０２１２\u3000３４５６", "６２２２０２**３４５６"),
        ("mask_bank_card", "\u3000 \t", ""),
        ("mask_bank_card", "1\u30002", "**"),
        ("mask_bank_card", "a\u3000张\u3000b", "a*b"),
        ("mask_phone", "1381234567８", "138******7８"),  # 11, not all ASCII digits
    ]
    for spec, value, expected in cases:
        compiled = compile_transform(spec, key=None, pii="other")
        assert hasattr(compiled, "column") == (path == "native")
        assert same_str(compiled(value), expected), (spec, value)
        got = map_columns([(value,), (None,)], [(0, compiled)])
        assert got == [(expected,), (None,)] and same_str(got[0][0], expected)


def test_native_masks_fall_back_for_anything_but_exact_str(native_masks: Any) -> None:
    values = [Shouty("abc@x"), 7, True, 1.5, Decimal("2.50"), date(1990, 5, 17), None, "abc@x"]
    for name in NATIVE_MASKS:
        python = getattr(masks, name)
        compiled = compile_transform(name, key=None, pii="other")
        assert compiled.column(values) == [python(v) for v in values]
    assert compile_transform("mask_name", key=None, pii="name")(Shouty("ab")) == "A*"
    seen: list[Any] = []
    spy = native_masks.mask("mask_name", lambda v: seen.append(v) or "fallback")
    assert spy.column(["xy", None, 7, Shouty("s")]) == ["x*", None, "fallback", "fallback"]
    assert seen == [7, Shouty("s")]  # neither the str nor None reached the fallback


def test_native_masks_raise_what_python_raises(native_masks: Any) -> None:
    class Unprintable:
        def __str__(self) -> str:
            raise ValueError("no text")

    compiled = compile_transform("mask_phone", key=None, pii="phone")
    with pytest.raises(ValueError, match="no text"):
        compiled.column(["13812345678", Unprintable()])
    with pytest.raises(TypeError):
        compiled.column(5)
    with pytest.raises(TypeError):
        compiled("a", "b")
    with pytest.raises(ValueError, match="no native mask"):
        native_masks.mask("year_only", year_only)
    with pytest.raises(TypeError):
        native_masks.mask("mask_name", "not callable")


def test_compile_transform_without_native_masks(monkeypatch: pytest.MonkeyPatch) -> None:
    # An extension built before the masks (no `mask`) leaves them in Python; so does no
    # extension at all. Either way the output is the reference's.
    assert _native.native_masks(object()) == {}
    python_only(monkeypatch)
    for name in NATIVE_MASKS:
        assert compile_transform(name, key=None, pii="other") is getattr(masks, name)


def test_native_masks_on_a_seeded_corpus(native_masks: Any) -> None:
    # Thousands of values per mask in one column call, for a few milliseconds: every length
    # from 0 to 24 over the mixed alphabet, digit runs plain, with whitespace in them and with
    # a digit one code point off, emails.
    import random

    rng = random.Random(20261122)
    corpus: list[Any] = []
    for length in range(25):
        corpus += ["".join(rng.choices(MASK_ALPHABET, k=length)) for _ in range(60)]
        digits = [rng.choice("0123456789") for _ in range(length)]
        corpus.append("".join(digits))
        for _ in range(3):
            spaced = list(digits)
            spaced.insert(rng.randrange(length + 1), rng.choice(" \t\u3000\x1c"))
            corpus.append("".join(spaced))
        for c in "/:０":  # one digit replaced by a neighbour of "0"-"9" or a fullwidth one
            near = list(digits)
            if length:
                near[rng.randrange(length)] = c
            corpus.append("".join(near))
        corpus.append("".join(rng.choices("a张😀", k=length)) + "@" + "b" * (length % 5))
    for name in NATIVE_MASKS:
        python = getattr(masks, name)
        got = compile_transform(name, key=None, pii="other").column(corpus)
        bad = [(v, o) for v, o in zip(corpus, got, strict=True) if not same_str(o, python(v))]
        assert not bad, (name, bad[:5])


@pytest.mark.parametrize("level", [1, 2, 3, 4])
def test_allowed_transforms_are_exactly_the_grantable_ones(level: int) -> None:
    for pii in PII:
        offered = allowed_transforms(level, pii)
        for name in TRANSFORM_ORDER:
            spec = "bucket:10" if name == "bucket:W" else name
            assert (name in offered) is grantable(level, pii, spec), (level, pii, name)
        assert default_transform(level, pii) in offered
    assert allowed_transforms(4, "name") == ("redact", "pseudonym")
