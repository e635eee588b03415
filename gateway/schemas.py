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
from gateway.renderers import RENDERERS
from kernel.problem_schema import problem_responses

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


class ExportedRows(BaseModel):
    dataset: str
    version: int
    fields: list[FieldTransform]
    data: list[Row]


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


def data_answer(model: type[BaseModel]) -> dict:
    """A JSON-only data route's 200 (aggregate, verify, policy)."""
    return {"model": model}


def _text_formats() -> dict[str, Any]:
    return {r.media_type.split(";")[0]: TEXT for r in RENDERERS if r.name != "json"}


def rendered_answer(model: type[BaseModel]) -> dict:
    """The 200 of a route answering through the renderer registry: `model` as JSON, every
    other registered format as text."""
    return {"model": model, "content": _text_formats()}


def streamed_answer() -> dict:
    """The export's 200, streamed in any registered format (JSON: `ExportedRows`)."""
    return {
        "model": ExportedRows,
        "description": "every permitted row, streamed",
        "content": _text_formats(),
    }
