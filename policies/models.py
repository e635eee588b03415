"""Applications (申请), grants (授权) and their versions, and per-day grant usage.

The loop: a developer applies → a data_admin approves with conditions (or rejects) → the
grant is used → it expires or is revoked. A direct grant skips the application (授权运营).
Every change to a grant's terms writes a new `GrantVersion`; the grant row carries the
current terms so a request reads one row.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import JSON, Column, Index, UniqueConstraint
from sqlmodel import Field, SQLModel

from kernel.clock import utcnow


class Application(SQLModel, table=True):
    __tablename__ = "applications"

    id: int | None = Field(default=None, primary_key=True)
    client_id: str = Field(foreign_key="apps.client_id", max_length=64, index=True)
    applicant_id: int = Field(foreign_key="users.id")
    dataset_id: str = Field(foreign_key="datasets.id", max_length=64)
    purpose: str = Field(max_length=500)
    modes: list[str] = Field(sa_column=Column(JSON, nullable=False))
    fields: list[str] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    duration_days: int
    status: str = Field(default="pending", max_length=16, index=True)
    reason: str = ""
    created_at: datetime = Field(default_factory=utcnow)
    decided_at: datetime | None = None
    decided_by: int | None = Field(default=None, foreign_key="users.id")
    grant_id: int | None = None
    # What the data is for (应用场景) and the data product it serves (contract §13):
    # approving the application approves the scenario and binds the grant to both.
    scenario_id: int | None = Field(default=None, foreign_key="scenarios.id")
    product_id: int | None = Field(default=None, foreign_key="products.id")


class Grant(SQLModel, table=True):
    __tablename__ = "grants"
    __table_args__ = (Index("ix_grants_lookup", "client_id", "dataset_id", "status"),)

    id: int | None = Field(default=None, primary_key=True)
    client_id: str = Field(foreign_key="apps.client_id", max_length=64)
    dataset_id: str = Field(foreign_key="datasets.id", max_length=64)
    purpose: str = Field(max_length=500)
    status: str = Field(default="active", max_length=16)  # active | suspended | revoked
    version: int = 1
    modes: list[str] = Field(sa_column=Column(JSON, nullable=False))
    fields: list[str] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    transforms: dict[str, str] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    row_filter: dict[str, str] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    quotas: dict[str, int] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    k: int = 5
    epsilon: float | None = None
    epsilon_spent: float = 0.0
    # ε one aggregate query may spend (None: the defaults of policies.grants).
    epsilon_floor: float | None = None
    epsilon_ceiling: float | None = None
    application_id: int | None = Field(default=None, foreign_key="applications.id")
    created_at: datetime = Field(default_factory=utcnow)
    created_by: int = Field(foreign_key="users.id")
    expires_at: datetime
    revoked_at: datetime | None = None
    revoked_by: int | None = Field(default=None, foreign_key="users.id")
    revoke_reason: str = ""
    # Suspended by the gateway itself (a verify sweep); a data_admin reinstates or revokes.
    suspended_at: datetime | None = None
    suspend_reason: str = ""
    # Authorized operation (contract §13): the scenario approved with the grant, the product
    # its calls are metered against, the operator's agreement it falls under. Fixed for the
    # grant's life: statements are recomputed from the audit log through them.
    scenario_id: int | None = Field(default=None, foreign_key="scenarios.id")
    product_id: int | None = Field(default=None, foreign_key="products.id")
    agreement_id: int | None = Field(default=None, foreign_key="agreements.id")


class GrantVersion(SQLModel, table=True):
    """The terms of a grant as they were from `created_at` on: what served which request."""

    __tablename__ = "grant_versions"
    __table_args__ = (UniqueConstraint("grant_id", "version"),)

    id: int | None = Field(default=None, primary_key=True)
    grant_id: int = Field(foreign_key="grants.id")
    version: int
    terms: dict = Field(sa_column=Column(JSON, nullable=False))
    created_at: datetime = Field(default_factory=utcnow)
    created_by: int = Field(foreign_key="users.id")
    note: str = ""


class GrantUsage(SQLModel, table=True):
    """Per-day use of a grant (UTC+8 days: the bureau's business day)."""

    __tablename__ = "grant_usage"

    grant_id: int = Field(foreign_key="grants.id", primary_key=True)
    day: date = Field(primary_key=True)
    requests: int = 0
    rows: int = 0
    verifies: int = 0
    verify_misses: int = 0  # verify answers of false: a guessing sweep is mostly misses


class VerifySubjectUsage(SQLModel, table=True):
    """Verify calls per day naming one subject value (an identity number, a phone …),
    counted by its keyed digest: the value itself is never stored."""

    __tablename__ = "grant_verify_subjects"

    grant_id: int = Field(foreign_key="grants.id", primary_key=True)
    day: date = Field(primary_key=True)
    digest: str = Field(primary_key=True, max_length=64)
    calls: int = 0


class Notice(SQLModel, table=True):
    """Something a data_admin must look at (a grant the gateway suspended, say); listed at
    GET /api/v1/admin/notices until marked read."""

    __tablename__ = "admin_notices"

    id: int | None = Field(default=None, primary_key=True)
    created_at: datetime = Field(default_factory=utcnow)
    kind: str = Field(max_length=32)
    grant_id: int | None = Field(default=None, foreign_key="grants.id")
    client_id: str | None = Field(default=None, max_length=64)
    dataset_id: str | None = Field(default=None, max_length=64)
    message: str = Field(max_length=500)
    read_at: datetime | None = None
    read_by: int | None = Field(default=None, foreign_key="users.id")
