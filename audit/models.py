"""The audit tables. Rows are appended by `audit.writer` only; no API updates or deletes
them (PostgreSQL and SQLite triggers refuse UPDATE, see migration 0004)."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel


class AuditEvent(SQLModel, table=True):
    __tablename__ = "audit_events"
    __table_args__ = (
        # (ts, seq): a period's first and last seq are one index entry each, even where a
        # batch of events shares one ts (audit.search, migration 0011).
        sa.Index("ix_audit_events_ts_seq", "ts", "seq"),
        sa.Index("ix_audit_events_client_ts", "client_id", "ts"),
        sa.Index("ix_audit_events_request_id", "request_id"),
        # The auditor's usual question, one app on one dataset in a period, newest first
        # (audit.search turns the period into a seq range); ts and outcome ride along so
        # the timeline is an index-only scan on PostgreSQL (migration 0010).
        sa.Index(
            "ix_audit_events_resource_client_seq",
            "resource",
            "client_id",
            "seq",
            postgresql_include=["ts", "outcome"],
        ),
    )

    # Assigned under the chain lock: 1, 2, 3 … without gaps (no autoincrement).
    seq: int = Field(sa_column=sa.Column(sa.BigInteger, primary_key=True, autoincrement=False))
    # Fixed-width RFC 3339 UTC with microseconds ("2026-11-22T05:00:00.000000Z"): sorts as
    # time, and is byte-for-byte what the hash covers.
    ts: str = Field(max_length=27)
    request_id: str | None = Field(default=None, max_length=128)
    actor: str | None = Field(default=None, max_length=128)
    client_id: str | None = Field(default=None, max_length=64)
    ip: str | None = Field(default=None, max_length=64)
    action: str = Field(max_length=64)
    resource: str | None = Field(default=None, max_length=256)
    fields: list[dict[str, str]] | None = Field(default=None, sa_column=sa.Column(sa.JSON))
    row_count: int | None = None
    purpose: str | None = Field(default=None, max_length=500)
    grant_id: int | None = None
    grant_version: int | None = None
    outcome: str = Field(max_length=16)
    status: int | None = None
    detail: dict[str, Any] | None = Field(default=None, sa_column=sa.Column(sa.JSON))
    prev_hash: str = Field(max_length=64)
    hash: str = Field(max_length=64)


class AuditHead(SQLModel, table=True):
    """The chain head, one row. Locking it serializes appenders across processes and
    hosts; it also survives an archive that moves every event out."""

    __tablename__ = "audit_head"

    id: int = Field(default=1, primary_key=True)
    seq: int = Field(sa_column=sa.Column(sa.BigInteger, nullable=False))
    hash: str = Field(max_length=64)
    ts: str = Field(max_length=27)


class AuditCheckpoint(SQLModel, table=True):
    __tablename__ = "audit_checkpoints"

    id: int | None = Field(default=None, primary_key=True)
    tree_size: int = Field(sa_column=sa.Column(sa.BigInteger, nullable=False, index=True))
    head_hash: str = Field(max_length=64)
    merkle_root: str = Field(max_length=64)
    ts: str = Field(max_length=27)
    kind: str = Field(max_length=16)  # periodic | shutdown | manual | archive
    key_id: str = Field(max_length=16)
    signature: str = Field(max_length=128)  # base64 Ed25519
    # The Merkle tree's right edge (perfect-subtree roots, left to right): the next
    # checkpoint extends it instead of re-reading every event.
    frontier: list[str] = Field(sa_column=sa.Column(sa.JSON, nullable=False))


class AuditDayCount(SQLModel, table=True):
    """Events of one closed UTC day per dataset, app and outcome: the auditor console's
    timeline reads these instead of counting the day's events again (audit.day_counts).
    Derived from audit_events, never part of the chain; `resource` is kept for datasets
    only (other resources name single users, apps or events, so they would make a row
    per event) and is NULL for the rest."""

    __tablename__ = "audit_day_counts"
    __table_args__ = (
        sa.Index("ix_audit_day_counts_resource_client_day", "resource", "client_id", "day"),
        # Both orders answer dataset + app exactly, whichever the planner picks before
        # the table has statistics; this one also serves the app alone.
        sa.Index("ix_audit_day_counts_client_resource_day", "client_id", "resource", "day"),
        sa.Index("ix_audit_day_counts_day", "day"),
    )

    id: int | None = Field(default=None, primary_key=True)
    day: str = Field(max_length=10)  # YYYY-MM-DD, UTC
    resource: str | None = Field(default=None, max_length=256)
    client_id: str | None = Field(default=None, max_length=64)
    outcome: str = Field(max_length=16)
    events: int = Field(sa_column=sa.Column(sa.BigInteger, nullable=False))


class AuditDayCounted(SQLModel, table=True):
    """The days whose events audit_day_counts holds (a day without events too). The
    primary key makes two requests counting the same day at once a conflict, not a
    double count."""

    __tablename__ = "audit_days_counted"

    day: str = Field(primary_key=True, max_length=10)
