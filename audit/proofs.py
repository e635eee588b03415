"""Merkle inclusion proofs (RFC 9162 §2.1.3): one event against a signed checkpoint.

Evidence for a data dispute that does not hand over the log: the event, its leaf index
(seq − 1), the checkpoint's tree size, and the audit path — the roots of the subtrees
beside the event's path to the root, bottom-up. Anyone re-computes

    leaf = SHA-256(0x00 ‖ bytes(event.hash))    (after checking event.hash itself)
    root = fold of the path (verify_inclusion below)

and compares it with the checkpoint's signed `root`.

Subtree roots come from stored checkpoint frontiers where one covers the subtree (their
nodes are roots of aligned perfect subtrees, fixed once complete) and otherwise from the
event hashes of the range. Below an archive point the events are gone; every subtree
there that a proof needs is a node of the archive checkpoint's frontier.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from fastapi import HTTPException
from sqlalchemy.engine import Connection, Engine

from audit.canonical import chain_hash
from audit.checkpoints import (
    Checkpoint,
    checkpoint_message,
    latest,
    latest_archive,
    nearest_below,
    signed_at,
)
from audit.merkle import Frontier, leaf_hash, node_hash, split
from audit.search import get_event
from audit.signing import signature_valid
from audit.store import stream_hashes


def inclusion_path(index: int, size: int, subtree: Callable[[int, int], bytes]) -> list[bytes]:
    """PATH(index, D[0:size]) of RFC 9162 §2.1.3.1, bottom-up; `subtree(lo, hi)` is
    MTH(D[lo:hi])."""
    if not 0 <= index < size:
        raise ValueError("leaf index outside the tree")
    path = []
    lo, hi = 0, size
    while hi - lo > 1:
        k = split(hi - lo)
        if index < lo + k:
            path.append(subtree(lo + k, hi))
            hi = lo + k
        else:
            path.append(subtree(lo, lo + k))
            lo += k
    path.reverse()
    return path


def verify_inclusion(
    leaf: bytes, index: int, size: int, path: Sequence[bytes], root: bytes
) -> bool:
    """RFC 9162 §2.1.3.2: does `path` prove leaf hash `leaf` at `index` in the tree of
    `size` leaves whose root is `root`?"""
    if not 0 <= index < size:
        return False
    fn, sn, r = index, size - 1, leaf
    for p in path:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root


def check_proof(document: dict[str, Any], public_key: Ed25519PublicKey) -> str | None:
    """Check a proof document as the proof endpoint returns it, with nothing but the
    published key: None when it holds, else what fails."""
    try:
        event = document["event"]
        cp = document["checkpoint"]
        index, size = document["leaf_index"], document["tree_size"]
        path = [bytes.fromhex(p) for p in document["audit_path"]]
        message = checkpoint_message(size, cp["head_hash"], cp["merkle_root"], cp["ts"], cp["kind"])
        root = bytes.fromhex(cp["merkle_root"])
        recomputed = chain_hash(event["prev_hash"], event)
    except (KeyError, TypeError, ValueError) as exc:
        return f"malformed proof ({type(exc).__name__})"
    if cp["tree_size"] != size or event["seq"] != index + 1:
        return "proof, event and checkpoint disagree on the position"
    if not signature_valid(public_key, cp["signature"], message):
        return "checkpoint signature invalid"
    if recomputed != event["hash"]:
        return f"event {event['seq']} does not match its hash"
    if not verify_inclusion(leaf_hash(event["hash"]), index, size, path, root):
        return f"event {event['seq']} is not in the signed tree of {size} events"
    return None


class _Subtrees:
    """MTH(D[lo:hi]) for the ranges one proof needs, reading as little as it can."""

    def __init__(self, conn: Connection, target: Checkpoint, archive: Checkpoint | None) -> None:
        self.conn = conn
        self.size = target.tree_size
        self.archived = archive.tree_size if archive else 0
        self.known: dict[tuple[int, int], bytes] = {}
        for c in (archive, target):
            if c is not None:
                self._learn(c)

    def _learn(self, c: Checkpoint) -> None:
        for lo, hi, node in Frontier.from_hex(c.tree_size, c.frontier).blocks():
            self.known.setdefault((lo, hi), node)

    def sibling(self, lo: int, hi: int) -> bytes:
        """A subtree beside the path: first look for the checkpoint that covers most of it
        (for a left child, any checkpoint signed before its sibling completed holds it
        whole; otherwise the latest one signed inside it holds its left part)."""
        # Ranges ending at the tree size are the target's own frontier nodes or unions of
        # them; ranges below the archive point are the archive's.
        if (lo, hi) not in self.known and self.archived < hi < self.size:
            width = hi - lo
            perfect_left = width & (width - 1) == 0 and lo % (2 * width) == 0
            helper = nearest_below(self.conn, hi + width if perfect_left else hi, above=lo)
            if helper is not None:
                self._learn(helper)
        return self.root(lo, hi)

    def root(self, lo: int, hi: int) -> bytes:
        node = self.known.get((lo, hi))
        if node is not None:
            return node
        if hi <= self.archived:
            raise HTTPException(409, f"事件 {lo + 1}–{hi} 已归档，且归档检查点未记录该子树")
        inside = any(lo <= a and b <= hi for a, b in self.known)
        if (lo >= self.archived and not inside) or hi - lo == 1:
            return self._from_leaves(lo, hi)
        k = split(hi - lo)
        return node_hash(self.root(lo, lo + k), self.root(lo + k, hi))

    def _from_leaves(self, lo: int, hi: int) -> bytes:
        frontier = Frontier()
        for seq, h in stream_hashes(self.conn, after=lo, through=hi):
            if seq != lo + frontier.size + 1:
                break
            frontier.append(h)
        if frontier.size != hi - lo:
            missing = lo + frontier.size + 1
            raise HTTPException(409, f"审计链在事件 {missing} 处不连续，无法生成证明；请先校验日志")
        return frontier.root()


def inclusion_proof(engine: Engine, seq: int, tree_size: int | None = None) -> dict[str, Any]:
    """The proof of event `seq` against the checkpoint of `tree_size` events (default: the
    latest checkpoint, which must cover it)."""
    event = get_event(engine, seq)
    if event is None:
        raise HTTPException(404, f"审计事件 {seq} 不存在（或已归档）")
    with engine.connect() as conn:
        if tree_size is None:
            target = latest(conn)
            if target is None or target.tree_size < seq:
                raise HTTPException(400, f"事件 {seq} 尚未被签名检查点覆盖，请稍后再试")
        else:
            if tree_size < seq:
                raise HTTPException(400, f"树大小 {tree_size} 的检查点不包含事件 {seq}")
            target = signed_at(conn, tree_size)
            if target is None:
                raise HTTPException(400, f"没有树大小为 {tree_size} 的签名检查点")
        archive = latest_archive(conn)
        subtrees = _Subtrees(conn, target, archive)
        path = inclusion_path(seq - 1, target.tree_size, subtrees.sibling)
    return {
        "event": event,
        "leaf_index": seq - 1,
        "tree_size": target.tree_size,
        "leaf_hash": leaf_hash(event["hash"]).hex(),
        "audit_path": [node.hex() for node in path],
        "checkpoint": {**target.as_dict(), "message": target.message().decode()},
    }
