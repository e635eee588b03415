"""Response models of the auditor's routes: what `audit.search`, `audit.proofs`,
`audit.stats`, `audit.verify` and `audit.checkpoints` produce, in the order clients get it."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class AuditEvent(BaseModel):
    seq: int = Field(ge=1)
    ts: str = Field(description="RFC 3339 UTC with microseconds")
    request_id: str | None
    actor: str | None
    client_id: str | None
    ip: str | None
    action: str
    resource: str | None
    # Any values: whatever an event stored must stay readable to the auditor.
    fields: list[dict[str, Any]] | None = Field(description="names and transforms, no values")
    row_count: int | None
    purpose: str | None
    grant_id: int | None
    grant_version: int | None
    outcome: str = Field(description="allowed | denied | error")
    status: int | None
    detail: dict[str, Any] | None
    prev_hash: str
    hash: str


class EventPage(BaseModel):
    data: list[AuditEvent]
    next_cursor: int | None = Field(description="pass as `cursor` for older events")


class Checkpoint(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    tree_size: int
    head_hash: str
    merkle_root: str
    ts: str
    kind: str
    key_id: str
    signature: str


class SignedCheckpoint(Checkpoint):
    message: str = Field(description="the signed text")


class InclusionProof(BaseModel):
    event: AuditEvent
    leaf_index: int
    tree_size: int
    leaf_hash: str
    audit_path: list[str]
    checkpoint: SignedCheckpoint
    public_key: str = Field(description="PEM")


class Checkpoints(BaseModel):
    public_key: str = Field(description="PEM")
    data: list[Checkpoint]


class VerifyReport(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    ok: bool
    events: int
    verified_through: int
    first_bad_seq: int | None
    checkpoints: int
    signed_through: int
    reason: str | None


class DayCount(BaseModel):
    day: str
    action: str
    dataset: str | None
    client_id: str | None
    outcome: str
    events: int
    rows: int


class Consumer(BaseModel):
    client_id: str | None
    requests: int
    rows: int


class TopConsumers(BaseModel):
    by_rows: list[Consumer]
    by_requests: list[Consumer]


class Denials(BaseModel):
    client_id: str | None
    actor: str | None
    ip: str | None
    count: int
    codes: dict[str, int]


class Stats(BaseModel):
    since: str
    until: str
    counts: list[DayCount]
    top_consumers: TopConsumers
    denials: list[Denials]
    anomalies: list[dict[str, Any]] = Field(
        description="`kind`: row_spike | denial_burst | verify_sweep, and its facts"
    )


TEXT = {"schema": {"type": "string"}}
JSONL_BUNDLE = {
    "description": "one JSON event a line, then the signed manifest",
    "content": {"application/jsonl": TEXT},
}
PEM = {"description": "Ed25519 public key, PEM", "content": {"text/plain": TEXT}}
