"""Retention: moving events older than the retention period out of the database.

`archive()` refuses a cut inside the retention period (never less than 184 days), then:
1. writes the events before the cut (after the last archive point) as a signed bundle
   (audit/bundle.py) to a new file, durably, and verifies that file with the public key
   — a broken chain is never archived;
2. in one transaction: signs an "archive" checkpoint at the last archived seq (its head
   and frontier keep the rest of the chain verifiable, and proofs computable), lifts the
   DELETE guard, deletes the archived rows, puts the guard back, and forgets the per-day
   counts (audit.day_counts) of the days the cut reaches.
The caller records the `audit.archive` event.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from audit.bundle import BundleFile, ChainGapError, bundle_lines, plan, verify_bundle, write_bundle
from audit.canonical import format_ts
from audit.checkpoints import Checkpoint, latest_archive, write_checkpoint
from audit.day_counts import forget_through
from audit.guards import create_guard, drop_guard
from audit.signing import Signer
from audit.store import lock_head

MIN_RETENTION_DAYS = 184  # Cybersecurity Law Art. 23: at least six months


class ArchiveRefusedError(Exception):
    """Nothing was changed; the message says why, in one line."""


@dataclass(frozen=True)
class Archived:
    first_seq: int
    last_seq: int
    count: int
    sha256: str  # the manifest's digest of the bundle
    checkpoint: Checkpoint


def earliest_allowed_cut(retention_days: int, now: datetime | None = None) -> str:
    days = max(retention_days, MIN_RETENTION_DAYS)
    return format_ts((now or datetime.now(UTC)) - timedelta(days=days))


def archive(
    engine: Engine, signer: Signer, *, before: str, out: Path, retention_days: int
) -> Archived | None:
    """Archive the events with ts < `before` (a stored timestamp) into `out`; None when
    there is nothing to archive."""
    limit = earliest_allowed_cut(retention_days)
    if before > limit:
        raise ArchiveRefusedError(
            f"{before[:10]} is inside the retention period "
            f"({max(retention_days, MIN_RETENTION_DAYS)} days): the cut may be {limit[:10]} "
            "at the latest"
        )
    if out.exists():
        raise ArchiveRefusedError(f"{out} already exists; an archive is never overwritten")
    try:
        span = plan(engine, kind="archive", before=before)
    except ChainGapError as exc:
        raise ArchiveRefusedError(f"the audit chain is broken ({exc}); nothing archived") from None
    if span.first is None or span.last is None:
        return None
    manifest = write_bundle(out, bundle_lines(engine, signer, span))
    report = verify_bundle(BundleFile(out), signer.public_key)
    if not report.ok:
        out.unlink()
        raise ArchiveRefusedError(
            f"the audit chain fails verification at seq {report.first_bad_seq} "
            f"({report.reason}); nothing archived"
        )
    try:
        checkpoint = _cut(
            engine, signer, span.first, span.last, manifest["last_hash"], manifest["count"]
        )
    except ArchiveRefusedError:
        out.unlink()  # rolled back, nothing deleted: the file is no archive
        raise
    return Archived(span.first, span.last, manifest["count"], manifest["sha256"], checkpoint)


def _cut(
    engine: Engine, signer: Signer, first: int, last: int, last_hash: str, count: int
) -> Checkpoint:
    """Sign the archive checkpoint and delete events 1..`last`, in one transaction."""
    with engine.begin() as conn:
        lock_head(conn)  # first: appenders and other archives wait from here on
        previous = latest_archive(conn)
        checkpoint = write_checkpoint(conn, signer, kind="archive", through=last)
        assert checkpoint is not None  # an archive checkpoint is always written
        base = previous.tree_size if previous else 0
        if base != first - 1 or checkpoint.head_hash != last_hash:
            raise ArchiveRefusedError("the log changed while archiving; nothing archived")
        last_ts = conn.execute(
            sa.text("SELECT ts FROM audit_events WHERE seq = :last"), {"last": last}
        ).scalar()
        dialect = conn.dialect.name
        conn.exec_driver_sql(drop_guard(dialect, "DELETE"))
        deleted = conn.execute(
            sa.text("DELETE FROM audit_events WHERE seq <= :last"), {"last": last}
        ).rowcount
        conn.exec_driver_sql(create_guard(dialect, "DELETE"))
        if last_ts is not None:
            forget_through(conn, last_ts[:10])
        if deleted != count:
            raise ArchiveRefusedError("the log changed while archiving; nothing archived")
    return checkpoint
