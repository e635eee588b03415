"""Signed checkpoints: (tree size, chain head, Merkle root, time) under Ed25519.

The signed message is plain text, one field per line, so any tool can rebuild it:

    opengate-audit-checkpoint/v1
    size 1234
    head <hex chain hash of event 1234>
    root <hex RFC 9162 Merkle root over events 1..1234>
    time 2026-11-22T05:00:00.000000Z
    kind periodic
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from audit.canonical import GENESIS, now_ts
from audit.merkle import Frontier
from audit.signing import Signer
from audit.store import lock_head, stream_hashes


@dataclass(frozen=True, slots=True)
class Checkpoint:
    tree_size: int
    head_hash: str
    merkle_root: str
    ts: str
    kind: str
    key_id: str
    signature: str
    frontier: tuple[str, ...]

    def message(self) -> bytes:
        return checkpoint_message(
            self.tree_size, self.head_hash, self.merkle_root, self.ts, self.kind
        )

    def as_dict(self) -> dict[str, object]:
        return {
            "tree_size": self.tree_size,
            "head_hash": self.head_hash,
            "merkle_root": self.merkle_root,
            "ts": self.ts,
            "kind": self.kind,
            "key_id": self.key_id,
            "signature": self.signature,
        }


def checkpoint_message(size: int, head: str, root: str, ts: str, kind: str) -> bytes:
    return (
        f"opengate-audit-checkpoint/v1\nsize {size}\nhead {head}\nroot {root}\n"
        f"time {ts}\nkind {kind}\n"
    ).encode()


_SELECT = (
    "SELECT tree_size, head_hash, merkle_root, ts, kind, key_id, signature, "
    "CAST(frontier AS TEXT) FROM audit_checkpoints"
)


def _from_row(row: tuple) -> Checkpoint:
    return Checkpoint(
        int(row[0]), row[1], row[2], row[3], row[4], row[5], row[6], tuple(orjson.loads(row[7]))
    )


def latest(conn: Connection) -> Checkpoint | None:
    row = conn.exec_driver_sql(f"{_SELECT} ORDER BY tree_size DESC, id DESC LIMIT 1").first()
    return _from_row(tuple(row)) if row else None


def all_checkpoints(engine: Engine) -> list[Checkpoint]:
    with engine.connect() as conn:
        rows = conn.exec_driver_sql(f"{_SELECT} ORDER BY tree_size, id").fetchall()
    return [_from_row(tuple(r)) for r in rows]


def latest_archive(conn: Connection) -> Checkpoint | None:
    row = conn.exec_driver_sql(
        f"{_SELECT} WHERE kind = 'archive' ORDER BY tree_size DESC, id DESC LIMIT 1"
    ).first()
    return _from_row(tuple(row)) if row else None


def _age_seconds(ts: str) -> float:
    then = datetime.strptime(ts, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    return (datetime.now(UTC) - then).total_seconds()


def nearest_below(conn: Connection, bound: int, *, above: int = -1) -> Checkpoint | None:
    """The checkpoint with the largest tree size in (above, bound)."""
    row = conn.execute(
        sa.text(
            f"{_SELECT} WHERE tree_size > :above AND tree_size < :bound "
            "ORDER BY tree_size DESC, id DESC LIMIT 1"
        ),
        {"above": above, "bound": bound},
    ).first()
    return _from_row(tuple(row)) if row else None


def first_covering(conn: Connection, seq: int) -> Checkpoint | None:
    """The oldest checkpoint whose tree holds event `seq` (None: not signed yet)."""
    row = conn.execute(
        sa.text(f"{_SELECT} WHERE tree_size >= :seq ORDER BY tree_size, id LIMIT 1"), {"seq": seq}
    ).first()
    return _from_row(tuple(row)) if row else None


def signed_at(conn: Connection, size: int) -> Checkpoint | None:
    """The newest checkpoint of exactly `size` events."""
    row = conn.execute(
        sa.text(f"{_SELECT} WHERE tree_size = :size ORDER BY id DESC LIMIT 1"), {"size": size}
    ).first()
    return _from_row(tuple(row)) if row else None


def within(conn: Connection, first: int, last: int) -> list[Checkpoint]:
    """Checkpoints of `first` to `last` events (inclusive), oldest first."""
    rows = conn.execute(
        sa.text(f"{_SELECT} WHERE tree_size BETWEEN :first AND :last ORDER BY tree_size, id"),
        {"first": first, "last": last},
    ).fetchall()
    return [_from_row(tuple(r)) for r in rows]


def frontier_at(
    conn: Connection, size: int, *, base: Checkpoint | None = None
) -> tuple[Frontier, str]:
    """The Merkle frontier and chain head after `size` events: from `base` (default: the
    nearest checkpoint at or below `size`) and the stored event hashes after it."""
    if base is None or base.tree_size > size:
        base = nearest_below(conn, size + 1)
    frontier = Frontier.from_hex(base.tree_size, base.frontier) if base else Frontier()
    head_hash = base.head_hash if base else GENESIS
    for seq, h in stream_hashes(conn, after=frontier.size, through=size):
        if seq != frontier.size + 1:
            raise RuntimeError(f"audit chain has a gap before seq {seq}")
        frontier.append(h)
        head_hash = h
    if frontier.size != size:
        raise RuntimeError(f"audit chain ends at {frontier.size}, expected {size}")
    return frontier, head_hash


def write_checkpoint(
    conn: Connection, signer: Signer, *, kind: str, min_age: float = 0.0, through: int | None = None
) -> Checkpoint | None:
    """Sign the chain head (or the event `through`) in the caller's transaction.

    The latest checkpoint when it already covers the head; None when the last one is
    younger than `min_age` seconds (try later). An "archive" checkpoint is always written,
    at exactly `through` (verification starts from it). Refuses to sign a chain with a gap.
    """
    head = lock_head(conn)
    size = head.seq if through is None else through
    if size > head.seq:
        raise ValueError(f"audit chain ends at {head.seq}; cannot sign {size} events")
    last = latest(conn)
    if kind != "archive":
        if last is not None and last.tree_size >= size:
            return last  # already signed
        if last is not None and min_age and _age_seconds(last.ts) < min_age:
            return None
    frontier, head_hash = frontier_at(conn, size, base=last)
    checkpoint = Checkpoint(
        tree_size=size,
        head_hash=head_hash,
        merkle_root=frontier.root().hex(),
        ts=now_ts(),
        kind=kind,
        key_id=signer.key_id,
        signature="",
        frontier=tuple(frontier.to_hex()),
    )
    signed = replace(checkpoint, signature=signer.sign(checkpoint.message()))
    conn.execute(
        sa.text(
            "INSERT INTO audit_checkpoints (tree_size, head_hash, merkle_root, ts, kind, key_id, "
            "signature, frontier) VALUES (:tree_size, :head_hash, :merkle_root, :ts, :kind, "
            ":key_id, :signature, :frontier)"
        ),
        {**signed.as_dict(), "frontier": orjson.dumps(list(signed.frontier)).decode()},
    )
    return signed


def checkpoint_now(
    engine: Engine, signer: Signer, *, kind: str, min_age: float = 0.0
) -> Checkpoint | None:
    with engine.begin() as conn:
        return write_checkpoint(conn, signer, kind=kind, min_age=min_age)
