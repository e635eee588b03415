"""The OpenAPI description of the one error document (`problems.problem_document`), and the
`responses=` entries a route declares for the error statuses it can answer.

Here, at the bottom of the package graph with `Problem`, so every package's routes can
declare their errors; the gateway adds the schema itself to the document's components
(`gateway/openapi_document.py`) under `PROBLEM_SCHEMA`.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

PROBLEM_SCHEMA = "Problem"
PROBLEM_MEDIA_TYPE = "application/problem+json"
PROBLEM_REF = {"$ref": f"#/components/schemas/{PROBLEM_SCHEMA}"}

# What each status means across the API (a route lists the ones it can answer).
STATUS_MEANINGS: dict[int, str] = {
    400: "Bad input: `invalid_parameter` (with `parameter`) or `field_not_permitted`",
    401: "No token where one is needed, or a bad, expired or revoked one: `unauthorized`",
    403: "Not allowed: `forbidden`, `grant_required`, `insufficient_scope` (the token's scope), "
    "`privacy_budget_exhausted`, `grant_outside_agreement` (an operator's grant beyond its "
    "agreement), or `field_not_permitted` (a record by a key the caller does not receive in "
    "clear)",
    404: "No such resource (or one the caller may not know of): `not_found`",
    406: "None of the media types the `Accept` header asks for is offered: `not_acceptable`",
    409: "The resource's state does not allow this: `conflict`",
    413: "The request body is too large: `payload_too_large`",
    415: "The request body has the wrong media type: `invalid_parameter`",
    429: "Rate limited (`rate_limited`) or a grant's daily quota used up (`quota_exceeded`); "
    "`Retry-After` says when to try again",
    502: "An interface service's upstream failed or answered what the gateway cannot pass on "
    "(not JSON, a redirect, too large): `upstream_error`; nothing of its answer is shown",
    503: "A store the answer needs (database, Redis, audit log) is unavailable, or an "
    "interface service's circuit is open or its calls are all busy: `unavailable`, "
    "with `Retry-After`",
    504: "An interface service's upstream did not answer within its `timeout_ms`: "
    "`upstream_timeout`",
}


class ProblemDocument(BaseModel):
    """RFC 9457 problem details, as every error of the API is rendered."""

    model_config = ConfigDict(extra="allow", title=PROBLEM_SCHEMA)

    type: str = Field(pattern=r"^/problems/[a-z_]+$", examples=["/problems/not_found"])
    title: str = Field(description="Chinese title of `code`")
    status: int = Field(ge=400, le=599)
    detail: str = Field(description="Chinese reason; never a level-3/4 value or a secret")
    code: str = Field(pattern=r"^[a-z_]+$", description="stable machine-readable code")
    request_id: str | None = Field(description="the `X-Request-Id` of the request")
    parameter: str | None = Field(
        default=None, description="the offending parameter (`invalid_parameter`)"
    )


def problem_responses(*statuses: int, media_type: str = PROBLEM_MEDIA_TYPE) -> dict[int, Any]:
    """`responses=` entries: each status answered with a problem document."""
    return {
        status: {
            "description": STATUS_MEANINGS[status],
            "content": {media_type: {"schema": PROBLEM_REF}},
        }
        for status in statuses
    }
