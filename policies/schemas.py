"""Response models of the application, grant and notice routes, read straight from their
rows (`from_attributes`): the field order here is the order clients get."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

from catalog.schemas import OptionalText, UtcTime
from policies.grants import epsilon_bounds

FROM_ROWS = ConfigDict(from_attributes=True)


class ApplicationSummary(BaseModel):
    model_config = FROM_ROWS

    id: int
    client_id: str
    dataset_id: str
    purpose: str
    modes: list[str]
    fields: list[str] | None = Field(description="null: every field")
    duration_days: int
    status: str = Field(description="pending | approved | rejected")
    reason: OptionalText
    grant_id: int | None
    scenario_id: int | None = Field(default=None, description="应用场景编号（授权运营）")
    product_id: int | None = Field(default=None, description="数据产品编号（授权运营）")
    created_at: UtcTime
    decided_at: UtcTime | None


class ApplicationPage(BaseModel):
    data: list[ApplicationSummary]
    next_cursor: str | None


class GrantSummary(BaseModel):
    model_config = FROM_ROWS

    id: int
    version: int = Field(description="bumped on every change of the terms")
    client_id: str
    dataset_id: str
    purpose: str
    status: str = Field(description="active | suspended | revoked")
    modes: list[str]
    fields: list[str] | None = Field(description="null: every field")
    transforms: dict[str, str]
    row_filter: dict[str, str]
    quotas: dict[str, int]
    k: int
    epsilon: float | None
    epsilon_spent: float
    epsilon_floor: float | None = Field(description="ε one aggregate query spends at least")
    epsilon_ceiling: float | None = Field(description="ε one aggregate query spends at most")
    created_at: UtcTime
    expires_at: UtcTime
    revoked_at: UtcTime | None
    revoke_reason: OptionalText
    suspended_at: UtcTime | None
    suspend_reason: OptionalText
    scenario_id: int | None = Field(default=None, description="应用场景编号（授权运营）")
    product_id: int | None = Field(default=None, description="计量所依的数据产品编号")
    agreement_id: int | None = Field(default=None, description="所属授权运营协议编号")

    @model_validator(mode="after")
    def _effective_bounds(self) -> GrantSummary:
        # The row stores only what an admin set; clients see the bounds that apply.
        bounds = epsilon_bounds(self.epsilon, self.epsilon_floor, self.epsilon_ceiling)
        self.epsilon_floor, self.epsilon_ceiling = bounds if bounds is not None else (None, None)
        return self


class GrantPage(BaseModel):
    data: list[GrantSummary]
    next_cursor: str | None


class NoticeSummary(BaseModel):
    """A notice for data administrators (e.g. a suspension)."""

    model_config = FROM_ROWS

    id: int
    created_at: UtcTime
    kind: str
    grant_id: int | None
    client_id: str | None
    dataset_id: str | None
    message: str
    read_at: UtcTime | None


class NoticePage(BaseModel):
    data: list[NoticeSummary]
    next_cursor: None = None
