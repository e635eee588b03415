"""The writer's native helpers (audit/_chain.c) are held to their pure-Python versions: the
domain check of `plain`, the COPY line of a prepared event, and the chain link the writer
computes under the head lock — same answers, same bytes, same errors, for random input.

The extension is optional: these tests skip when it is not built, and fail instead with
OPENGATE_REQUIRE_NATIVE=1 (as `.ci/run` sets).
"""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from audit import _native as audit_native
from audit import canonical, store, writer
from audit.canonical import EVENT_KEYS, GENESIS
from audit.canonical import canonical as canonical_event
from audit.store import Head
from tests.native import native_module


@pytest.fixture(scope="module")
def native() -> Any:
    module = native_module("audit._chain")
    # the writer's modules found it: the gateway runs these, not the fallbacks
    assert canonical.in_domain is module.in_domain
    assert store.copy_line is module.copy_line
    assert audit_native.chain is module
    return module


# Pieces of text: plain, the characters COPY escapes, the null marker's spelling,
# non-ASCII and astral characters, anything UTF-8 can carry.
PIECES = ["a", "Z", "0", " ", '"', "\\", "\t", "\n", "\r", "\x01", "\x7f", "\\N", "é", "市南区"]
PIECES += ["😀", "\U0010fffd", "\ue000"]
TEXT = st.lists(st.sampled_from(PIECES) | st.characters(codec="utf-8"), max_size=8).map("".join)
# Everything `plain` may be handed: in the domain and just outside it (floats, integers
# beyond 2^53, tuples, sets, non-str keys, str and int subclasses).
SCALARS = (
    TEXT
    | st.none()
    | st.booleans()
    | st.integers(min_value=-(2**60), max_value=2**60)
    | st.sampled_from([2**53 - 1, 2**53, -(2**53) + 1, -(2**53), 10**30])
    | st.floats()
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(TEXT, inner, max_size=4)
        | st.dictionaries(st.integers(), inner, max_size=2)
        | st.tuples(inner)
        | st.frozensets(st.integers(), max_size=2)
    ),
    max_leaves=12,
)


@given(VALUES)
def test_in_domain_agrees(native: Any, value: Any) -> None:
    assert native.in_domain(value) is canonical._in_domain(value)


def test_in_domain_on_edges(native: Any) -> None:
    class Text(str):
        pass

    class Number(int):
        pass

    for value in (Text("x"), Number(1), {"a": Text("x")}, [Number(2)], 1.0, (1,), {1: "a"}):
        assert native.in_domain(value) is canonical._in_domain(value) is False
    for value in ("", None, True, False, 0, 2**53 - 1, -(2**53) + 1, [], {}, [[{"a": [None]}]]):
        assert native.in_domain(value) is canonical._in_domain(value) is True
    deep: Any = []
    for _ in range(100_000):
        deep = [deep]
    with pytest.raises(RecursionError):
        native.in_domain(deep)


@given(st.lists(TEXT | st.none() | st.integers() | st.booleans() | st.floats(), max_size=18))
def test_copy_line_agrees(native: Any, values: list[Any]) -> None:
    assert native.copy_line(values) == store._copy_line(values)


def test_a_string_spelled_like_the_null_marker_stays_a_string() -> None:
    """Found by test_copy_line_agrees: the Python line took a string `\\N` for a null marker
    and left it unescaped — PostgreSQL would have stored NULL, and the chain would not verify."""
    assert store._copy_line(["\\N", None, "a"]) == b"\\\\N\t\\N\ta\t"


def test_copy_line_refuses_what_utf8_cannot_carry(native: Any) -> None:
    for line in (native.copy_line, store._copy_line):
        with pytest.raises(UnicodeEncodeError):
            line(["a", "\ud800"])  # a lone surrogate


def _event(request_id: str, text: str, number: int | None) -> dict[str, Any]:
    event = dict.fromkeys(EVENT_KEYS) | {"action": "data.records", "outcome": "allowed"}
    del event["seq"], event["ts"]
    return event | {
        "request_id": request_id,
        "purpose": text,
        "row_count": number,
        "status": 200 if number is None else number,
        "fields": [{"name": text, "transform": "clear"}],
        "detail": {"filters": {text: text}, "n": number},
    }


@settings(max_examples=60)
@given(
    st.lists(st.tuples(TEXT, TEXT, st.none() | st.integers(0, 10**9)), max_size=40),
    st.integers(0, 2**62),
    st.binary(min_size=32, max_size=32),
    st.booleans(),
)
def test_link_writes_the_bytes_python_writes(
    native: Any, items: list[tuple[str, str, int | None]], seq: int, prev: bytes, portable: bool
) -> None:
    events = [writer.prepare(_event(*item)) for item in items]
    # a head time after now: both links take it, so they hash the same ts
    head = Head(seq, prev.hex(), "2999-01-01T00:00:00.000000Z")
    mine, data = writer.link_copy(head, events)
    theirs, expected = writer.link_copy(head, events, native=False)
    assert (mine, data) == (theirs, expected)
    if portable:  # the block function without the SHA extensions gives the same
        ts = head.ts.encode()
        assert native.link(events, prev.hex().encode(), seq, ts, portable=True) == (
            data,
            mine.hash.encode(),
        )


def test_link_is_the_documented_chain(native: Any) -> None:
    """Each COPY row carries seq, ts, prev_hash and hash = SHA-256(prev ‖ canonical(event))."""
    raw = [_event(f"r{i}", "市南区\t\\", i) for i in range(3)]
    head = Head(0, GENESIS, "2999-01-01T00:00:00.000000Z")
    new_head, data = writer.link_copy(head, [writer.prepare(e) for e in raw])
    prev = GENESIS
    rows = data.decode().splitlines()
    assert len(rows) == 3
    for seq, (event, row) in enumerate(zip(raw, rows, strict=True), start=1):
        *_, stored_seq, ts, stored_prev, stored_hash = row.split("\t")
        full = event | {"seq": seq, "ts": head.ts}
        digest = hashlib.sha256(prev.encode() + canonical_event(full)).hexdigest()
        assert (int(stored_seq), ts, stored_prev, stored_hash) == (seq, head.ts, prev, digest)
        prev = digest
    assert new_head == Head(3, prev, head.ts)


def test_link_refuses_what_it_cannot_link(native: Any) -> None:
    event = writer.prepare(_event("r", "x", 1))
    with pytest.raises(ValueError):
        native.link([event], b"short", 0, b"2026")
    with pytest.raises(TypeError):
        native.link([event._replace(line=None)], GENESIS.encode(), 0, b"2026")
    assert native.link([], GENESIS.encode(), 5, b"2026") == (b"", GENESIS.encode())
