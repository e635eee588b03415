"""The table of interface services: each imported `service.json`, per version. The
service's catalog entry is its `datasets` row (kind `service`), so grants, applications
and the catalog treat it as they treat a dataset."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, UniqueConstraint
from sqlmodel import Field, SQLModel

from kernel.clock import utcnow


class ServiceVersion(SQLModel, table=True):
    __tablename__ = "services"
    __table_args__ = (UniqueConstraint("service_id", "version"),)

    id: int | None = Field(default=None, primary_key=True)
    service_id: str = Field(foreign_key="datasets.id", max_length=64)
    version: int
    spec: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))  # service.json as read
    source_sha256: str = Field(max_length=64)
    imported_at: datetime = Field(default_factory=utcnow)
