"""Tables of authorized operation. Money is integer fen (分) everywhere: no floats."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum

from sqlalchemy import JSON, Column, UniqueConstraint
from sqlmodel import Field, SQLModel

from kernel.clock import utcnow


class AgreementStatus(StrEnum):
    draft = "draft"
    active = "active"
    suspended = "suspended"
    terminated = "terminated"


class ScenarioCategory(StrEnum):
    public_governance = "public_governance"
    public_welfare = "public_welfare"
    industry = "industry"


# Scenarios of these categories use products free of charge (the 2025 pricing notice).
FREE_CATEGORIES = frozenset({ScenarioCategory.public_governance, ScenarioCategory.public_welfare})


class PriceUnit(StrEnum):
    call = "call"
    rows_1000 = "1000_rows"
    month = "month"


class Zone(SQLModel, table=True):
    """An industry zone (行业专区); datasets name it by id in their `zone`."""

    __tablename__ = "zones"

    id: str = Field(primary_key=True, max_length=64)
    name: str = Field(max_length=100, unique=True)
    description: str = ""
    created_at: datetime = Field(default_factory=utcnow)


class Operator(SQLModel, table=True):
    """An operating agency (运营机构) and the apps it operates with."""

    __tablename__ = "operators"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=200)
    credit_code: str = Field(max_length=18, unique=True)  # 统一社会信用代码, check char valid
    contact: str = Field(default="", max_length=200)
    created_at: datetime = Field(default_factory=utcnow)
    created_by: str = Field(max_length=64)


class OperatorApp(SQLModel, table=True):
    """Which apps act for an operator: a grant to one of them needs the operator's agreement."""

    __tablename__ = "operator_apps"

    client_id: str = Field(foreign_key="apps.client_id", primary_key=True, max_length=64)
    operator_id: int = Field(foreign_key="operators.id", index=True)


class Agreement(SQLModel, table=True):
    """An authorized-operation agreement (授权运营协议): scope, modes, term, status."""

    __tablename__ = "agreements"

    id: int | None = Field(default=None, primary_key=True)
    operator_id: int = Field(foreign_key="operators.id", index=True)
    title: str = Field(max_length=200)
    datasets: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    services: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    modes: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    starts_on: date
    ends_on: date
    status: str = Field(default=AgreementStatus.draft, max_length=16, index=True)
    status_reason: str = ""
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class Scenario(SQLModel, table=True):
    """An application scenario (应用场景); approved ones are listed publicly."""

    __tablename__ = "scenarios"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=200)
    category: str = Field(max_length=32)
    zone_id: str | None = Field(default=None, foreign_key="zones.id", max_length=64)
    description: str = ""
    organization: str = Field(max_length=200)  # the applicant organization
    approved: bool = False
    approved_at: datetime | None = None
    created_at: datetime = Field(default_factory=utcnow)


class Product(SQLModel, table=True):
    """A registered data product (数据产品, 登记赋码) with its price under the cap."""

    __tablename__ = "products"

    id: int | None = Field(default=None, primary_key=True)
    code: str = Field(max_length=64, unique=True)  # 登记编码
    operator_id: int = Field(foreign_key="operators.id", index=True)
    title: str = Field(max_length=200)
    description: str = ""
    zone_id: str | None = Field(default=None, foreign_key="zones.id", max_length=64)
    datasets: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    services: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    modes: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    unit: str = Field(max_length=16)
    price_fen: int  # per unit
    cap_fen: int  # set by the administrator; price_fen <= cap_fen always
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class UsageLine(SQLModel, table=True):
    """Metered use, app × product × business day (UTC+8). Written only by the database
    trigger on `audit_events` (migration 0012), so it commits with the audit row."""

    __tablename__ = "usage_ledger"

    client_id: str = Field(primary_key=True, max_length=64)
    product_id: int = Field(primary_key=True)
    day: date = Field(primary_key=True)
    # Under a public-governance or public-welfare scenario: metered, never charged.
    free: bool = Field(primary_key=True)
    calls: int = 0
    rows: int = 0


class Statement(SQLModel, table=True):
    """An issued monthly statement: immutable, its lines signed with the audit key ring."""

    __tablename__ = "statements"
    __table_args__ = (UniqueConstraint("month"),)

    id: int | None = Field(default=None, primary_key=True)
    month: str = Field(max_length=7)  # YYYY-MM
    lines: list[dict] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    total_fen: int
    digest: str = Field(max_length=64)  # SHA-256 of the canonical lines
    signature: str = Field(max_length=200)
    key_id: str = Field(max_length=64)
    issued_at: datetime = Field(default_factory=utcnow)
    issued_by: str = Field(max_length=64)
