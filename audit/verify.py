"""Re-computing the chain and checking every checkpoint, streamed (constant memory).

The walk reports the first bad `seq`: a changed event (its hash no longer matches), a
deleted one (a gap), one inserted or reordered (a broken link — and when the row after
still carries a hash valid one position earlier, the inserted row itself is named), and
a tail cut off below a signed checkpoint (the first missing seq).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import islice
from operator import itemgetter
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy.engine import Engine

from audit import _native
from audit.canonical import EVENT_KEYS, GENESIS, canonical, chain_hash
from audit.checkpoints import Checkpoint, all_checkpoints
from audit.merkle import Frontier
from audit.signing import key_id, signature_valid
from audit.store import COLUMNS, EventLines, event_from_row, row_from_line, stream_rows

_SEQ, _PREV, _HASH = 0, COLUMNS.index("prev_hash"), COLUMNS.index("hash")
_FIELDS, _DETAIL = COLUMNS.index("fields"), COLUMNS.index("detail")
_sha256 = hashlib.sha256

# The fast path over PostgreSQL's COPY lines: canonical(event) is the sorted members with
# each value as the line carries it — strings in quotes, numbers and JSON texts as they
# are. That is exactly the canonical encoding when no string needs escaping (no quote,
# backslash or control character; the line says so: COPY escapes backslashes and
# controls) and the column types make every number and JSON text well-formed
# (EventLines.canonical_types). Anything else takes the exact path: the row decoded,
# its JSON parsed, canonical() — the same as for SQLite and bundles.
_SORTED = sorted(EVENT_KEYS)
_STRINGS = frozenset(
    ("ts", "request_id", "actor", "client_id", "ip", "action", "resource", "purpose", "outcome")
)
_TEMPLATE = (
    b"{"
    + b",".join((b'"%s":"%%s"' if k in _STRINGS else b'"%s":%%s') % k.encode() for k in _SORTED)
    + b"}"
)
_PICK = tuple(COLUMNS.index(k) for k in _SORTED)
_in_pick = itemgetter(*_PICK)
_ODD = bytes(range(9)) + bytes(range(11, 32)) + b'"\\'  # controls, quote, backslash
_NULL = b"\\N"


# The same fast path in C (audit/_chain.c, docs/decisions/0008): it walks a batch of lines
# while each one is a line this fast path would accept, and stops before the first it cannot
# vouch for (handed to the Python loop below, exactly as without it) and after a checkpoint's
# seq. Optional: not built, or built with another template or column order, it is not used.
def _native_walk() -> Any:
    chain = _native.chain
    if chain is None or chain.TEMPLATE != _TEMPLATE or chain.PICK != _PICK or len(COLUMNS) != 18:
        return None
    return chain


_BATCH = 4096  # lines per native call


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
        public_key: Ed25519PublicKey | Mapping[str, Ed25519PublicKey],
        checkpoints: Sequence[Checkpoint],
        *,
        start: Checkpoint | None = None,
    ) -> None:
        # One key, or the ring's keys by id (a rotated key still verifies what it signed).
        self.keys = (
            {key_id(public_key): public_key}
            if isinstance(public_key, Ed25519PublicKey)
            else dict(public_key)
        )
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
            self.report.verified_through = min(self.report.verified_through, seq - 1)

    def _check_signature(self, c: Checkpoint) -> bool:
        key = self.keys.get(c.key_id)
        if key is None or not signature_valid(key, c.signature, c.message()):
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
            self.report.events += 1
            if not self._row(row):
                return False
        return self.report.ok

    def _row(self, row: Sequence[Any]) -> bool:
        """One row, the exact way: its JSON parsed, canonical() re-encoded."""
        seq = int(row[_SEQ])
        if seq != self.expected:
            self._fail(self.expected, f"seq {self.expected} missing (next is {seq})")
            return False
        try:
            event = event_from_row(row)
            digest = _sha256(self.prev.encode() + canonical(event)).digest()
        except (ValueError, TypeError):  # JSON that does not parse, a value out of domain
            self._fail(seq, "event is not readable")
            return False
        if row[_PREV] != self.prev or digest.hex() != row[_HASH]:
            self._fail(self._diagnose(seq, row, event), "event does not match its hash")
            return False
        self._accept(seq, row[_HASH], digest)
        self._previous_row = tuple(row)
        return True

    def _accept(self, seq: int, hash_hex: str, digest: bytes) -> None:
        self.prev = hash_hex
        self.frontier.append_digest(digest)
        self.report.verified_through = seq
        self.expected = seq + 1
        self._pass_checkpoints(seq)

    def _pass_checkpoints(self, seq: int) -> int:
        """Check the pending checkpoints of `seq` events; the size of the next (-1: none)."""
        while self.pending and self.pending[0].tree_size == seq:
            self._check_checkpoint(self.pending.pop(0))
        return self._next_checkpoint()

    def _next_checkpoint(self) -> int:
        return self.pending[0].tree_size if self.pending else -1

    def feed_lines(self, source: EventLines) -> bool:
        """`feed` for PostgreSQL's COPY lines, with the fast path described at the top;
        a row the fast path cannot vouch for goes through `_row`."""
        fast = source.canonical_types
        native = _native_walk() if fast else None
        report = self.report
        sha256, template, pick, odd_bytes, length = _sha256, _TEMPLATE, _in_pick, _ODD, len
        frontier = self.frontier
        append = frontier.append_digest
        expected, prev = self.expected, self.prev.encode()
        next_checkpoint = self._next_checkpoint()
        previous: bytes | None = None
        seen = 0
        lines: Iterator[bytes] = iter(source)
        try:
            reading = True
            while reading and report.ok:
                reading = False
                batch: list[bytes] = []
                at = 0
                while True:
                    if at == length(batch):
                        batch, at = list(islice(lines, _BATCH)), 0
                        if not batch:
                            break
                    if native is not None:
                        # As many lines as the native walk vouches for, in one call.
                        began = at
                        at, prev, expected, frontier.size = native.walk(
                            batch, at, prev, expected, frontier.nodes, frontier.size,
                            next_checkpoint,
                        )  # fmt: skip
                        if at > began:
                            seen += at - began
                            previous = batch[at - 1]
                            if expected - 1 == next_checkpoint:
                                self._sync(expected, prev, previous)
                                next_checkpoint = self._pass_checkpoints(expected - 1)
                                if not report.ok:
                                    break
                                continue
                            if at == length(batch):
                                continue
                    line = batch[at]
                    at += 1
                    f = line.split(b"\t")
                    try:
                        seq = int(f[0])
                    except ValueError:  # not a number: the exact path will say so
                        seq = -1
                    if seq != expected and not source.ordered:
                        # Physical order is not seq order here (space reused after an
                        # archive, say): read on in the primary key's order.
                        lines.close()  # type: ignore[attr-defined]
                        lines = source.ordered_from(expected - 1)
                        reading = True
                        break
                    seen += 1
                    stored = f[17][:-1]
                    digest = None
                    if fast and seq == expected and f[16] == prev:
                        # Count what needs a closer look — quotes, backslashes, raw
                        # control characters: only the JSON texts' quotes and the null
                        # markers' backslashes may be among them.
                        odd = length(line) - length(line.translate(None, odd_bytes))
                        odd -= f[_FIELDS].count(b'"') + f[_DETAIL].count(b'"')
                        if odd == 0 or odd == line.count(_NULL):
                            encoded = template % pick(f)
                            if odd:
                                encoded = encoded.replace(b'"\\N"', b"null").replace(_NULL, b"null")
                            candidate = sha256(prev + encoded).digest()
                            if candidate.hex().encode() == stored:
                                digest = candidate
                    if digest is None:  # the exact path
                        self._sync(expected, prev, previous)
                        report.events += seen
                        seen = 0
                        try:
                            row = row_from_line(line)
                        except ValueError:
                            self._fail(expected, "event is not readable")
                            return False
                        if not self._row(row):
                            return False
                        expected, prev, previous = self.expected, self.prev.encode(), line
                        next_checkpoint = self._next_checkpoint()
                        continue
                    prev = stored
                    append(digest)
                    expected = seq + 1
                    previous = line
                    if seq == next_checkpoint:
                        self._sync(expected, prev, previous)
                        next_checkpoint = self._pass_checkpoints(seq)
                        if not report.ok:
                            break
        finally:
            lines.close()  # type: ignore[attr-defined]
        report.events += seen
        if report.ok:
            self._sync(expected, prev, previous)
        return report.ok

    def _sync(self, expected: int, prev: bytes, previous: bytes | None) -> None:
        """Hand the fast loop's state back to the walk."""
        self.expected, self.prev = expected, prev.decode()
        self.report.verified_through = expected - 1
        if previous is not None:
            try:
                self._previous_row = row_from_line(previous)
            except ValueError:
                self._previous_row = None

    def _diagnose(self, seq: int, row: Sequence[Any], event: dict[str, Any]) -> int:
        """Which seq to blame when `row` does not fit. Its link to the previous row is
        broken but the row itself is intact (its hash fits its own content and stored
        link), or it carries a hash valid one seq earlier after a row with the same
        link: the previous row was changed or inserted — name that one."""
        before = self._previous_row
        if before is None or row[_PREV] == self.prev:
            return seq
        if chain_hash(row[_PREV], event) == row[_HASH]:
            return seq - 1
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


def verify(engine: Engine, public_key: Ed25519PublicKey | Mapping[str, Ed25519PublicKey]) -> Report:
    checkpoints = all_checkpoints(engine)
    archives = [c for c in checkpoints if c.kind == "archive"]
    start = max(archives, key=lambda c: c.tree_size) if archives else None
    walk = ChainWalk(public_key, checkpoints, start=start)
    after = start.tree_size if start else 0
    if engine.dialect.name == "postgresql":
        walk.feed_lines(EventLines(engine, after=after))
    else:
        walk.feed(stream_rows(engine, after=after))
    return walk.finish()
