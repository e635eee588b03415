"""OpenAPI response schemas of the application and grant routes: what
`policies.grants.application_summary` and `grant_summary` render."""

from __future__ import annotations

from pydantic import BaseModel, Field


class ApplicationSummary(BaseModel):
    id: int
    client_id: str
    dataset_id: str
    purpose: str
    modes: list[str]
    fields: list[str] | None = Field(description="null: every field")
    duration_days: int
    status: str = Field(description="pending | approved | rejected")
    reason: str | None
    grant_id: int | None
    created_at: str
    decided_at: str | None


class ApplicationPage(BaseModel):
    data: list[ApplicationSummary]
    next_cursor: str | None


class GrantSummary(BaseModel):
    id: int
    version: int = Field(description="bumped on every change of the terms")
    client_id: str
    dataset_id: str
    purpose: str
    status: str = Field(description="active | revoked")
    modes: list[str]
    fields: list[str] | None = Field(description="null: every field")
    transforms: dict[str, str]
    row_filter: dict[str, str]
    quotas: dict[str, int]
    k: int
    epsilon: float | None
    epsilon_spent: float
    created_at: str
    expires_at: str
    revoked_at: str | None
    revoke_reason: str | None


class GrantPage(BaseModel):
    data: list[GrantSummary]
    next_cursor: str | None


class NoticeSummary(BaseModel):
    """A notice for data administrators (`policies.grants.notice_summary`)."""

    id: int
    created_at: str
    kind: str
    grant_id: int | None
    client_id: str | None
    dataset_id: str | None
    message: str
    read_at: str | None


class NoticePage(BaseModel):
    data: list[NoticeSummary]
    next_cursor: None = None
