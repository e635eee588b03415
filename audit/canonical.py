"""The canonical encoding of an event and the chain hash — the part an outside verifier
re-implements, so it is kept small and documented in CONTRACT §8.

An event is a JSON object of the columns below (not `prev_hash`, not `hash`). Values are
strings, integers, null, and in `fields`/`detail` arrays and objects of the same; no
floats. For that domain, orjson with sorted keys and no whitespace produces the RFC 8785
(JCS) serialization, once keys with characters above U+FFFF are put in UTF-16 order
(tests/audit/test_canonical.py checks it against an independent JCS implementation).

    hash = hex(SHA-256(ascii(prev_hash) ‖ canonical(event)))
    prev_hash of seq 1 = "0" * 64
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import orjson

from audit import _native

GENESIS = "0" * 64

# The hashed columns, in table order (the encoding sorts keys itself).
EVENT_KEYS = (
    "seq",
    "ts",
    "request_id",
    "actor",
    "client_id",
    "ip",
    "action",
    "resource",
    "fields",
    "row_count",
    "purpose",
    "grant_id",
    "grant_version",
    "outcome",
    "status",
    "detail",
)

_SORTED = orjson.OPT_SORT_KEYS
SAFE_INTEGER = 2**53 - 1


_ASTRAL_LEAD = re.compile(rb"[\xf0-\xf4]")  # searched in C: max() would box every byte


def canonical_json(value: Any) -> bytes:
    """`value` (already `plain`) as RFC 8785 JSON. orjson sorts keys by code point, JCS by
    UTF-16 code units; the two orders differ only between keys with characters above
    U+FFFF and keys with characters in U+E000–U+FFFF, so the re-sort runs only when the
    output holds a character above U+FFFF (a UTF-8 lead byte 0xF0–0xF4)."""
    text = orjson.dumps(value, option=_SORTED)
    if not text.isascii() and _ASTRAL_LEAD.search(text):
        text = orjson.dumps(_utf16_ordered(value))
    return text


def _utf16_ordered(value: Any) -> Any:
    if isinstance(value, Mapping):
        keys = sorted(value, key=lambda k: k.encode("utf-16-be"))
        return {k: _utf16_ordered(value[k]) for k in keys}
    if isinstance(value, list):
        return [_utf16_ordered(v) for v in value]
    return value


def canonical(event: Mapping[str, Any]) -> bytes:
    return canonical_json({k: event[k] for k in EVENT_KEYS})


def chain_hash(prev_hash: str, event: Mapping[str, Any]) -> str:
    return hashlib.sha256(prev_hash.encode("ascii") + canonical(event)).hexdigest()


def format_ts(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def now_ts() -> str:
    return format_ts(datetime.now(UTC))


def _in_domain(value: Any) -> bool:
    """True when `value` needs no reduction: exact str, bool, None, safe int, and lists and
    str-keyed dicts of the same."""
    kind = type(value)
    if kind is str or value is None or kind is bool:
        return True
    if kind is int:
        return -SAFE_INTEGER <= value <= SAFE_INTEGER
    if kind is dict:
        for key, item in value.items():
            if type(key) is not str:
                return False
            if type(item) is not str and item is not None and not _in_domain(item):
                return False
        return True
    if kind is list:
        for item in value:
            if type(item) is not str and item is not None and not _in_domain(item):
                return False
        return True
    return False


# The same check in C where built (audit/_native.py), a tenth of the time.
in_domain = _in_domain if _native.chain is None else _native.chain.in_domain


def plain(value: Any) -> Any:
    """`value` reduced to the canonical domain: floats and huge integers become strings
    (JCS would need the ECMAScript number format to agree across languages; a string
    needs nothing)."""
    # Events are nearly always in the domain already: checking costs half of rebuilding
    # (no new dicts and lists), and the value is then used as it is.
    if in_domain(value):
        return value
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        # beyond ±(2^53 − 1) a JSON number is not exact in every language
        return value if -SAFE_INTEGER <= value <= SAFE_INTEGER else str(value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [plain(v) for v in value]
    return str(value)
