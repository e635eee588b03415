"""Re-computing the chain and checking every checkpoint, streamed (constant memory).

The walk reports the first bad `seq`: a changed event (its hash no longer matches), a
deleted one (a gap), one inserted or reordered (a broken link — and when the row after
still carries a hash valid one position earlier, the inserted row itself is named), and
a tail cut off below a signed checkpoint (the first missing seq).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy.engine import Engine

from audit.canonical import GENESIS, chain_hash
from audit.checkpoints import Checkpoint, all_checkpoints
from audit.merkle import Frontier
from audit.signing import signature_valid
from audit.store import COLUMNS, event_from_row, stream_rows

_SEQ, _PREV, _HASH = 0, COLUMNS.index("prev_hash"), COLUMNS.index("hash")


@dataclass
class Report:
    ok: bool = True
    events: int = 0
    verified_through: int = 0
    first_bad_seq: int | None = None
    checkpoints: int = 0
    signed_through: int = 0
    reason: str | None = None
    problems: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "events": self.events,
            "verified_through": self.verified_through,
            "first_bad_seq": self.first_bad_seq,
            "checkpoints": self.checkpoints,
            "signed_through": self.signed_through,
            "reason": self.reason,
        }


class ChainWalk:
    """Feeds on event rows (COLUMNS order) and checks them against the checkpoints."""

    def __init__(
        self,
        public_key: Ed25519PublicKey,
        checkpoints: Sequence[Checkpoint],
        *,
        start: Checkpoint | None = None,
    ) -> None:
        self.public_key = public_key
        self.report = Report()
        if start is not None:
            self.expected = start.tree_size + 1
            self.prev = start.head_hash
            self.frontier = Frontier.from_hex(start.tree_size, start.frontier)
            self.report.verified_through = start.tree_size
        else:
            self.expected, self.prev, self.frontier = 1, GENESIS, Frontier()
        base = self.expected - 1
        self.pending = [c for c in checkpoints if c.tree_size > base]
        # Checkpoints below the start are signed history: check their signatures only.
        for c in checkpoints:
            if c.tree_size <= base:
                self._check_signature(c)
        self.pending.sort(key=lambda c: c.tree_size)
        self._previous_row: tuple[Any, ...] | None = None
        if self.pending and self.pending[0].tree_size == base:
            self._check_checkpoint(self.pending.pop(0))

    def _fail(self, seq: int, reason: str) -> None:
        if self.report.ok:
            self.report.ok = False
            self.report.first_bad_seq = seq
            self.report.reason = reason

    def _check_signature(self, c: Checkpoint) -> bool:
        if not signature_valid(self.public_key, c.signature, c.message()):
            self._fail(min(c.tree_size, self.expected), f"checkpoint {c.tree_size}: bad signature")
            return False
        return True

    def _check_checkpoint(self, c: Checkpoint) -> None:
        if not self._check_signature(c):
            return
        if c.head_hash != self.prev or c.merkle_root != self.frontier.root().hex():
            self._fail(self.expected - 1, f"checkpoint {c.tree_size}: chain differs from signed")
            return
        self.report.checkpoints += 1
        self.report.signed_through = c.tree_size

    def feed(self, rows: Iterable[Sequence[Any]]) -> bool:
        """False once something is wrong (the walk stops at the first bad seq)."""
        for row in rows:
            if not self.report.ok:
                return False
            seq = int(row[_SEQ])
            self.report.events += 1
            if seq != self.expected:
                self._fail(self.expected, f"seq {self.expected} missing (next is {seq})")
                return False
            event = event_from_row(row)
            if row[_PREV] != self.prev or chain_hash(self.prev, event) != row[_HASH]:
                self._fail(self._diagnose(seq, row, event), "event does not match its hash")
                return False
            self.prev = row[_HASH]
            self.frontier.append(self.prev)
            self.report.verified_through = seq
            self.expected = seq + 1
            self._previous_row = row
            while self.pending and self.pending[0].tree_size == seq:
                self._check_checkpoint(self.pending.pop(0))
        return self.report.ok

    def _diagnose(self, seq: int, row: Sequence[Any], event: dict[str, Any]) -> int:
        """An event carrying a hash valid one seq earlier, linked to the row before the
        previous one, means the previous row was inserted: name that one."""
        before = self._previous_row
        if before is None or row[_PREV] == self.prev:
            return seq
        shifted = {**event, "seq": seq - 1}
        if row[_PREV] == before[_PREV] and chain_hash(row[_PREV], shifted) == row[_HASH]:
            return seq - 1
        return seq

    def finish(self) -> Report:
        if self.report.ok and self.pending:
            c = self.pending[0]
            self._fail(
                self.expected,
                f"log ends at seq {self.expected - 1} but checkpoint signed {c.tree_size} events",
            )
        return self.report


def verify(engine: Engine, public_key: Ed25519PublicKey) -> Report:
    checkpoints = all_checkpoints(engine)
    archives = [c for c in checkpoints if c.kind == "archive"]
    start = max(archives, key=lambda c: c.tree_size) if archives else None
    walk = ChainWalk(public_key, checkpoints, start=start)
    walk.feed(stream_rows(engine, after=start.tree_size if start else 0))
    return walk.finish()
