"""The canonical encoding of an event and the chain hash — the part an outside verifier
re-implements, so it is kept small and documented in CONTRACT §8.

An event is a JSON object of the columns below (not `prev_hash`, not `hash`). Values are
strings, integers, null, and in `fields`/`detail` arrays and objects of the same; no
floats. For that domain, orjson with sorted keys and no whitespace produces exactly the
RFC 8785 (JCS) serialization (tests/audit/test_canonical.py checks it against an
independent JCS implementation).

    hash = hex(SHA-256(ascii(prev_hash) ‖ canonical(event)))
    prev_hash of seq 1 = "0" * 64
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import orjson

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


def canonical(event: Mapping[str, Any]) -> bytes:
    return orjson.dumps({k: event[k] for k in EVENT_KEYS}, option=_SORTED)


def chain_hash(prev_hash: str, event: Mapping[str, Any]) -> str:
    return hashlib.sha256(prev_hash.encode("ascii") + canonical(event)).hexdigest()


def format_ts(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def now_ts() -> str:
    return format_ts(datetime.now(UTC))


def plain(value: Any) -> Any:
    """`value` reduced to the canonical domain: floats and huge integers become strings
    (JCS would need the ECMAScript number format to agree across languages; a string
    needs nothing)."""
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
