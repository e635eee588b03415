"""Catalog tables: datasets, their published versions and field dictionaries (the feedback
and demands people send about them are participation's tables).

The rows of a dataset live in a typed table of their own per version (see `hosted.py`);
these tables only describe them.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import JSON, Column, Index, UniqueConstraint
from sqlmodel import Field, SQLModel

from kernel.clock import utcnow


class OpenType(StrEnum):
    unconditional = "unconditional"
    conditional = "conditional"
    closed = "closed"


class FieldType(StrEnum):
    string = "string"
    integer = "integer"
    number = "number"
    boolean = "boolean"
    date = "date"
    datetime = "datetime"


class Pii(StrEnum):
    none = "none"
    name = "name"
    id_number = "id_number"
    phone = "phone"
    bank_card = "bank_card"
    email = "email"
    address = "address"
    date_of_birth = "date_of_birth"
    other = "other"


class Dataset(SQLModel, table=True):
    __tablename__ = "datasets"

    id: str = Field(primary_key=True, max_length=64)
    title: str
    description: str = ""
    publisher: str = Field(default="", index=True)
    theme: str = Field(default="", index=True)
    keywords: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    open_type: str = Field(index=True, max_length=16)
    # `table`: hosted rows (dataset_versions); `service`: a department's live API
    # (interface services, issue 18: services.models.ServiceVersion holds its declaration).
    kind: str = Field(default="table", max_length=16, sa_column_kwargs={"server_default": "table"})
    level: int
    zone: str = Field(default="public", max_length=32)
    license: str = ""
    update_frequency: str = ""
    current_version: int
    row_count: int
    # Lower-cased title, description, keywords and publisher: one LIKE finds a substring of
    # any of them, Chinese included, without a full-text engine.
    search_text: str = ""
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class DatasetVersion(SQLModel, table=True):
    __tablename__ = "dataset_versions"
    __table_args__ = (UniqueConstraint("dataset_id", "version"),)

    id: int | None = Field(default=None, primary_key=True)
    dataset_id: str = Field(foreign_key="datasets.id", max_length=64)
    version: int
    table_name: str = Field(max_length=80)
    row_count: int
    source_sha256: str = Field(max_length=64)
    imported_at: datetime = Field(default_factory=utcnow)
    # Old versions' tables are dropped once two newer ones exist; the row stays as history.
    dropped: bool = False


class DatasetField(SQLModel, table=True):
    __tablename__ = "dataset_fields"
    __table_args__ = (
        UniqueConstraint("dataset_id", "version", "name"),
        Index("ix_dataset_fields_version", "dataset_id", "version", "position"),
    )

    id: int | None = Field(default=None, primary_key=True)
    dataset_id: str = Field(foreign_key="datasets.id", max_length=64)
    version: int
    position: int
    name: str = Field(max_length=63)
    type: str = Field(max_length=16)
    title: str = ""
    description: str = ""
    level: int
    pii: str = Field(default="none", max_length=16)
    subject_key: bool = False
    primary_key: bool = False
    # Whether any row holds null here: keyset pagination needs a null-aware order only then.
    has_nulls: bool = False
