"""Inclusion proofs over HTTP, checked against RFC 9162 written out naively."""

from __future__ import annotations

import orjson
from sqlalchemy.engine import Engine

from audit.canonical import chain_hash
from audit.checkpoints import checkpoint_now
from audit.merkle import leaf_hash, split
from audit.proofs import check_proof, verify_inclusion
from audit.signing import load_public_key
from audit.writer import append
from gateway.settings import Settings
from tests.audit.helpers import auditor, event, tamper
from tests.audit.test_canonical import naive_root
from tests.conftest import TestClient
from tests.keys import keys_of


def naive_path(m: int, leaves: list[bytes]) -> list[bytes]:
    """RFC 9162 §2.1.3.1 PATH(m, D[n]), straight from the definition."""
    if len(leaves) == 1:
        return []
    k = split(len(leaves))
    if m < k:
        return [*naive_path(m, leaves[:k]), naive_root(leaves[k:])]
    return [*naive_path(m - k, leaves[k:]), naive_root(leaves[:k])]


def _hashes(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        return [h for (h,) in conn.exec_driver_sql("SELECT hash FROM audit_events ORDER BY seq")]


def _proof(client: TestClient, headers: dict, seq: int, size: int | None = None) -> dict:
    params = {"tree_size": size} if size else {}
    answer = client.get(f"/api/v1/audit/events/{seq}/proof", headers=headers, params=params)
    assert answer.status_code == 200, answer.text
    return answer.json()


def _check(document: dict, leaves: list[bytes], client: TestClient) -> None:
    seq, size = document["event"]["seq"], document["tree_size"]
    key = load_public_key(document["public_key"].encode())
    assert check_proof(document, key) is None
    path = [bytes.fromhex(p) for p in document["audit_path"]]
    assert path == naive_path(seq - 1, leaves[:size]), (seq, size)
    root = naive_root(leaves[:size])
    assert document["checkpoint"]["merkle_root"] == root.hex()
    assert verify_inclusion(leaves[seq - 1], seq - 1, size, path, root)
    # the same path proves nothing about another leaf, nor against another root
    if size > 1:
        assert not verify_inclusion(leaves[seq % size], seq - 1, size, path, root)
    assert not verify_inclusion(leaves[seq - 1], seq - 1, size, path, bytes(32))


def test_every_seq_of_trees_of_1_to_40_events(
    client: TestClient, engine: Engine, settings: Settings
) -> None:
    signer = keys_of(settings, engine).audit_signer
    for n in range(1, 41):
        append(engine, [event(request_id=f"r{n}", detail={"n": n})])
        assert checkpoint_now(engine, signer, kind="manual").tree_size == n
    leaves = [leaf_hash(h) for h in _hashes(engine)[:40]]
    headers = auditor(client, engine)
    for size in range(1, 41):
        for seq in range(1, size + 1):
            _check(_proof(client, headers, seq, size), leaves, client)


def test_sparse_checkpoints_and_the_default_tree(
    client: TestClient, engine: Engine, settings: Settings
) -> None:
    """Few checkpoints: subtree roots come partly from their frontiers, partly from events."""
    signer = keys_of(settings, engine).audit_signer
    for size in (37, 64, 100, 150, 255, 300):
        append(engine, [event(row_count=i) for i in range(size - len(_hashes(engine)))])
        checkpoint_now(engine, signer, kind="manual")
    leaves = [leaf_hash(h) for h in _hashes(engine)]
    headers = auditor(client, engine)
    for seq in (*range(1, 40), *range(95, 160), *range(250, 301)):
        _check(_proof(client, headers, seq, 300), leaves, client)
    for seq in (1, 64, 65, 99, 100):
        _check(_proof(client, headers, seq, 100), leaves, client)
    # by default: the latest checkpoint
    assert _proof(client, headers, 7)["tree_size"] == 300


def test_a_tampered_event_fails_its_proof(
    client: TestClient, engine: Engine, settings: Settings
) -> None:
    signer = keys_of(settings, engine).audit_signer
    append(engine, [event(ip=f"10.0.0.{i}", detail={"i": i}) for i in range(1, 21)])
    checkpoint_now(engine, signer, kind="manual")
    headers = auditor(client, engine)
    key = load_public_key(client.get("/api/v1/audit/public-key").text.encode())
    assert check_proof(_proof(client, headers, 5, 20), key) is None

    # a changed field under the old hash: the event no longer matches its hash
    tamper(engine, 5, ip="10.6.6.6")
    assert check_proof(_proof(client, headers, 5, 20), key) == "event 5 does not match its hash"

    # re-hashed to match: it is no longer the leaf the checkpoint signed
    changed = _proof(client, headers, 9, 20)["event"] | {"detail": {"i": 99}}
    rehashed = chain_hash(changed["prev_hash"], changed)
    tamper(engine, 9, detail=orjson.dumps({"i": 99}).decode(), hash=rehashed)
    reason = check_proof(_proof(client, headers, 9, 20), key)
    assert reason == "event 9 is not in the signed tree of 20 events"

    # a proof altered on its way does not hold either
    document = _proof(client, headers, 12, 20)
    document["audit_path"][0] = "00" * 32
    assert check_proof(document, key) == "event 12 is not in the signed tree of 20 events"
    document = _proof(client, headers, 12, 20)
    document["checkpoint"]["merkle_root"] = "11" * 32
    assert check_proof(document, key) == "checkpoint signature invalid"


def test_unknown_seq_and_uncovered_events(client: TestClient, engine: Engine) -> None:
    headers = auditor(client, engine)
    unknown = client.get("/api/v1/audit/events/99999/proof", headers=headers)
    assert unknown.status_code == 404
    assert unknown.headers["content-type"] == "application/problem+json"
    assert unknown.json()["code"] == "not_found"

    # the login above is an event, but no checkpoint has been signed yet
    uncovered = client.get("/api/v1/audit/events/1/proof", headers=headers)
    assert uncovered.status_code == 400
    assert uncovered.headers["content-type"] == "application/problem+json"
    problem = uncovered.json()
    assert problem["code"] == "invalid_parameter"
    assert "检查点" in problem["detail"]

    not_a_checkpoint = client.get(
        "/api/v1/audit/events/1/proof", headers=headers, params={"tree_size": 2}
    )
    assert not_a_checkpoint.status_code == 400
    assert "2" in not_a_checkpoint.json()["detail"]

    # an auditor's proof request is itself an event
    reads = client.get("/api/v1/audit/events", headers=headers, params={"action": "audit.proof"})
    assert len(reads.json()["data"]) == 3
