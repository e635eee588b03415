"""The `key_ring` table: one row per key, its material sealed (AES-256-GCM) under the
master key. At most one active key per purpose (a partial unique index), which is also
what lets two hosts starting at once on an empty database end up with one ring."""

from __future__ import annotations

import sqlalchemy as sa
from sqlmodel import Field, SQLModel


class KeyRingEntry(SQLModel, table=True):
    __tablename__ = "key_ring"
    __table_args__ = (
        sa.UniqueConstraint("purpose", "kid", name="uq_key_ring_purpose_kid"),
        sa.Index(
            "ux_key_ring_active",
            "purpose",
            unique=True,
            postgresql_where=sa.text("state = 'active'"),
            sqlite_where=sa.text("state = 'active'"),
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    # ring (the master key's check value), token-signing, audit-signing, pseudonym,
    # identity-hmac, audit-digest, cursor
    purpose: str = Field(max_length=32)
    kid: str = Field(max_length=64)
    alg: str = Field(max_length=32)  # ES256, Ed25519, HMAC-SHA256, AES-SIV, AES-256-GCM
    state: str = Field(max_length=16)  # active (signs) | retired (verifies only)
    created_at: float  # seconds since the epoch, as the token lifetimes are counted
    retired_at: float | None = None
    # PEM of the public half (signing keys): what verifiers publish, readable without
    # the master key.
    public: str | None = Field(default=None, sa_column=sa.Column(sa.Text, nullable=True))
    master_kid: str = Field(max_length=16)
    nonce: bytes = Field(sa_column=sa.Column(sa.LargeBinary, nullable=False))
    sealed: bytes = Field(sa_column=sa.Column(sa.LargeBinary, nullable=False))
