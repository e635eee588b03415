"""The transform rules of contract §3: which specs exist, how strict each is, the default
of a field by level and pii kind, and what a grant may set. Plain data and checks: the
values themselves are transformed by `policies.masks` and `policies.pseudonyms`, compiled for
a request by `policies.compiled`."""

from __future__ import annotations

import re

# Every spec in the order of contract §3, as error messages and the console list them.
TRANSFORM_ORDER: tuple[str, ...] = (
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
    "bucket:W",
    "pseudonym",
)
TRANSFORM_NAMES: frozenset[str] = frozenset(TRANSFORM_ORDER) - {"bucket:W"}

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


VALID_TRANSFORMS = ", ".join(TRANSFORM_ORDER)


def parse_transform(spec: str) -> str:
    """Return `spec` if it names a transform; raise ValueError with a short Chinese reason
    that lists the valid specs if not."""
    if not isinstance(spec, str):
        raise ValueError(f"脱敏方式须为字符串；可用：{VALID_TRANSFORMS}")
    if spec in TRANSFORM_NAMES:
        return spec
    if spec == "bucket" or spec.startswith("bucket:"):
        # Strict digits: int() would also take " 5", "+5" and "5_000", which are not specs.
        if _BUCKET_SPEC.fullmatch(spec) and int(spec[7:]) <= MAX_BUCKET_WIDTH:
            return spec
        raise ValueError(f"bucket 须写作 bucket:W，W 为 1–{MAX_BUCKET_WIDTH} 的整数")
    shown = spec if len(spec) <= 40 else spec[:40] + "…"  # never echo a huge input back
    raise ValueError(f"未知的脱敏方式 {shown!r}；可用：{VALID_TRANSFORMS}")


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


def allowed_transforms(level: int, pii: str) -> tuple[str, ...]:
    """The specs a grant may set on such a field (`bucket:W` standing for every width),
    strictest last: what the console offers and what a refusal lists."""
    _check_field(level, pii)
    return tuple(
        name
        for name in TRANSFORM_ORDER
        if level <= 3
        or STRICTNESS["bucket" if name == "bucket:W" else name] >= PSEUDONYM_STRICTNESS
    )


def grantable(level: int, pii: str, spec: str) -> bool:
    """May a grant set `spec` on such a field? Raises ValueError for an invalid spec.

    Levels 1-3 take any transform (a grant may loosen level 3 to clear); level 4 never goes
    below a pseudonym. The consent exception of contract §3 is not a grant and is decided
    elsewhere.
    """
    _check_field(level, pii)
    s = strictness(spec)
    return level <= 3 or s >= PSEUDONYM_STRICTNESS
