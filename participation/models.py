"""Tables of participation. `feedback` and `demands` were created by migration 0001 (as
catalog tables); migration 0008 gives them their workflows and adds `demand_seconds`."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import UniqueConstraint
from sqlmodel import Field, SQLModel

from kernel.clock import utcnow


class FeedbackStatus(StrEnum):
    submitted = "submitted"
    accepted = "accepted"
    rejected = "rejected"
    fixed = "fixed"


class DemandStatus(StrEnum):
    open = "open"
    answered = "answered"
    satisfied = "satisfied"
    declined = "declined"


class Feedback(SQLModel, table=True):
    """A data-quality report (纠错) about one record or field of a dataset."""

    __tablename__ = "feedback"

    id: int | None = Field(default=None, primary_key=True)
    dataset_id: str = Field(foreign_key="datasets.id", max_length=64, index=True)
    # The version the reporter looked at.
    version: int | None = None
    field: str | None = Field(default=None, max_length=63)
    record: str | None = Field(default=None, max_length=200)
    # Level-3/4 values of the record quoted here are replaced by their keyed digest.
    message: str
    redacted: bool = False
    # The account's username; "" for an anonymous report.
    reporter: str = Field(max_length=64)
    # Keyed digest of the reporter's address: the per-address limit, never the address.
    source: str = Field(default="", max_length=48, index=True)
    status: str = Field(default=FeedbackStatus.submitted, max_length=16, index=True)
    # The administrator's answer: the reason of a rejection, a note on acceptance.
    response: str = ""
    fixed_in_version: int | None = None
    handled_by: str | None = Field(default=None, max_length=64)
    handled_at: datetime | None = None
    created_at: datetime = Field(default_factory=utcnow, index=True)
    updated_at: datetime = Field(default_factory=utcnow)


class Demand(SQLModel, table=True):
    """A request for data that is not opened yet (数据需求)."""

    __tablename__ = "demands"

    id: int | None = Field(default=None, primary_key=True)
    title: str = Field(max_length=200)
    description: str
    department: str = Field(default="", max_length=100)
    scenario: str = ""
    requester: str = Field(max_length=64)
    status: str = Field(default=DemandStatus.open, max_length=16, index=True)
    # The administrator's answer, or the reason of a decline.
    response: str = ""
    dataset_id: str | None = Field(default=None, max_length=64)
    seconds: int = 0
    answered_by: str | None = Field(default=None, max_length=64)
    answered_at: datetime | None = None
    closed_at: datetime | None = None
    created_at: datetime = Field(default_factory=utcnow, index=True)
    updated_at: datetime = Field(default_factory=utcnow)


class DemandSecond(SQLModel, table=True):
    """One account's +1 on a demand (附议): once per account, by the unique constraint."""

    __tablename__ = "demand_seconds"
    __table_args__ = (UniqueConstraint("demand_id", "account"),)

    id: int | None = Field(default=None, primary_key=True)
    demand_id: int = Field(foreign_key="demands.id", index=True)
    account: str = Field(max_length=64)
    created_at: datetime = Field(default_factory=utcnow)
