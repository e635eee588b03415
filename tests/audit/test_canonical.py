"""The audit encoding is what an outside verifier re-implements: pin it."""

from __future__ import annotations

import hashlib
import threading

import jcs
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.engine import Engine

from audit.canonical import EVENT_KEYS, GENESIS, canonical, chain_hash, plain
from audit.merkle import EMPTY_ROOT, Frontier, leaf_hash, node_hash
from audit.signing import Signer
from audit.verify import verify
from audit.writer import AuditWriter

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**53) + 1, max_value=2**53 - 1),
    st.text(),
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)
events = st.fixed_dictionaries({k: values for k in EVENT_KEYS})


def test_keys_sort_by_utf16_code_units_like_jcs() -> None:
    # U+1F600 sorts after U+E000 by code point, before it by UTF-16 unit (0xD83D)
    detail = {"\ue000": 1, "\U0001f600": 2, "a": {"\uffff": 3, "\U00010000": 4}}
    event = {**dict.fromkeys(EVENT_KEYS), "detail": detail}
    assert canonical(event) == jcs.canonicalize(event)
    assert canonical(event).index("\U0001f600".encode()) < canonical(event).index("\ue000".encode())


# A property, not a speed check: a loaded machine must not fail it for being slow.
UNHURRIED = settings(suppress_health_check=[HealthCheck.too_slow], deadline=None)


@UNHURRIED
@given(events)
def test_canonical_is_rfc8785(event: dict) -> None:
    assert canonical(event) == jcs.canonicalize(event)


@UNHURRIED
@given(st.floats(allow_nan=False) | st.sets(st.integers()) | st.tuples(st.text()))
def test_plain_leaves_only_the_canonical_domain(value: object) -> None:
    reduced = plain({"v": value})
    assert canonical({**dict.fromkeys(EVENT_KEYS), "detail": reduced}) == jcs.canonicalize(
        {**dict.fromkeys(EVENT_KEYS), "detail": reduced}
    )


GOLDEN = {
    "seq": 1,
    "ts": "2026-11-22T05:00:00.000000Z",
    "request_id": "r-1",
    "actor": "client:app-1",
    "client_id": "app-1",
    "ip": "10.0.0.1",
    "action": "data.records",
    "resource": "datasets/social-insurance",
    "fields": [{"name": "name", "transform": "mask:name"}],
    "row_count": 100,
    "purpose": "个人贷款授信评估",
    "grant_id": 7,
    "grant_version": 2,
    "outcome": "allowed",
    "status": 200,
    "detail": {"format": "json"},
}


def test_golden_vector_of_the_contract() -> None:
    """CONTRACT §8 quotes this event and its hash for anyone writing a verifier."""
    encoded = canonical(GOLDEN)
    assert encoded.startswith(b'{"action":"data.records","actor":"client:app-1"')
    expected = hashlib.sha256(GENESIS.encode() + encoded).hexdigest()
    assert chain_hash(GENESIS, GOLDEN) == expected
    assert expected == "063952686e7bfda49f19b694c4ab9cfe2485e27eff8106c293538baf3235681f"


def naive_root(leaves: list[bytes]) -> bytes:
    """RFC 9162 §2.1.1 MTH, written straight from the definition."""
    if not leaves:
        return EMPTY_ROOT
    if len(leaves) == 1:
        return leaves[0]
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    return node_hash(naive_root(leaves[:k]), naive_root(leaves[k:]))


def test_frontier_root_is_the_rfc9162_root() -> None:
    frontier = Frontier()
    leaves = []
    for i in range(1, 70):
        h = hashlib.sha256(str(i).encode()).hexdigest()
        frontier.append(h)
        leaves.append(leaf_hash(h))
        assert frontier.root() == naive_root(leaves), i
        again = Frontier.from_hex(frontier.size, frontier.to_hex())
        assert again.root() == frontier.root()


EVENT = {k: None for k in EVENT_KEYS if k not in ("seq", "ts")} | {
    "action": "data.records",
    "outcome": "allowed",
}


def test_group_commit_from_many_threads_makes_one_chain(engine: Engine, tmp_path) -> None:
    signer = Signer.generate()
    writer = AuditWriter(engine, signer)
    seqs: list[int] = []
    lock = threading.Lock()

    def produce() -> None:
        futures = [writer.submit({**EVENT, "request_id": f"t{i}"}) for i in range(200)]
        got = [f.result(30) for f in futures]
        with lock:
            seqs.extend(got)

    threads = [threading.Thread(target=produce) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    writer.close()  # signs a shutdown checkpoint
    assert sorted(seqs) == list(range(1, 1601))
    report = verify(engine, signer.public_key)
    assert report.ok, report
    assert report.events == 1600 and report.signed_through == 1600
