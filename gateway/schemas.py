"""OpenAPI response schemas of the data routes (records, record, export, aggregate, verify,
policy) and the health probes.

The data routes build their answers by hand for speed (docs/architecture.md, "Why the
records path avoids some conveniences"); these models only describe them, through
`responses=`, and are never used to validate or serialize an answer.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from catalog.models import OpenType
from catalog.problem_schema import problem_responses

# One row: field name → value after the caller's transform (masked values are strings).
Row = dict[str, str | int | float | bool | None]


class FieldTransform(BaseModel):
    name: str
    transform: str = Field(description="`clear`, a mask, `bucket:W`, `pseudonym`, `redact`…")


class RecordsPage(BaseModel):
    dataset: str
    version: int
    fields: list[FieldTransform]
    data: list[Row]
    next_cursor: str | None = Field(description="null on the last page")


class OneRecord(BaseModel):
    dataset: str
    version: int
    fields: list[FieldTransform]
    data: Row


class PrivacySpend(BaseModel):
    mechanism: str
    epsilon: float
    delta: float | None = None
    threshold: float | None = Field(default=None, description="noisy-count threshold of groups")
    epsilon_spent: float
    epsilon_remaining: float


class AggregateAnswer(BaseModel):
    dataset: str
    version: int
    groups: list[Row] = Field(description="group-by values, `count`, and `<metric>_<field>`")
    suppressed_groups: int | None = Field(
        ge=0, description="null when withheld: under DP, or a matching set below k"
    )
    k: int
    privacy: PrivacySpend | None = Field(default=None, description="under a DP grant only")


class VerifyAnswer(BaseModel):
    match: bool


class PolicyField(BaseModel):
    name: str
    transform: str
    reason: str
    level: int = Field(ge=1, le=4)
    pii: str


class PolicyMode(BaseModel):
    fields: list[PolicyField]
    k: int | None = Field(default=None, description="aggregate mode only")


class GrantReference(BaseModel):
    id: int
    version: int
    purpose: str


class QuotaUse(BaseModel):
    limit: int
    used: int | None = None
    remaining: int | None = None
    per: str | None = Field(default=None, description="`subject value` for a per-value limit")


class PrivacyBudget(BaseModel):
    epsilon: float
    epsilon_spent: float
    epsilon_remaining: float
    epsilon_floor: float | None = None
    epsilon_ceiling: float | None = None


class PolicyAnswer(BaseModel):
    dataset: str
    open_type: OpenType
    modes: dict[str, PolicyMode] = Field(description="records / aggregate / verify")
    grant: GrantReference | None = None
    quotas: dict[str, QuotaUse] | None = None
    privacy: PrivacyBudget | None = None


class Liveness(BaseModel):
    status: str


class Readiness(BaseModel):
    status: str
    database: str
    redis: str | None = Field(default=None, description="when Redis is configured")


TEXT = {"schema": {"type": "string"}}
# What a data route can answer besides its data (bad query, token, grant, quota, store).
DATA_ERRORS = problem_responses(400, 401, 403, 404, 429, 503)


def data_answer(model: type[BaseModel], *, csv: bool = False, jsonl: bool = False) -> dict:
    """A data route's 200: `model` as JSON, and the text formats it can also answer in."""
    content: dict[str, Any] = {}
    if csv:
        content["text/csv"] = TEXT
    if jsonl:
        content["application/jsonl"] = TEXT
    return {"model": model, "content": content} if content else {"model": model}


def streamed_answer() -> dict:
    """The export's 200: CSV or JSON Lines, streamed."""
    return {
        "description": "every permitted row, streamed",
        "content": {"text/csv": TEXT, "application/jsonl": TEXT},
    }
