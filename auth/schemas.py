"""Response schemas of the account, app, consent and OAuth routes. The account, app and
consent models render their rows (`from_attributes`; the field order is the order clients
get); the OAuth ones only describe what the protocol code answers itself."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from auth.models import Role
from catalog.schemas import UtcTime
from kernel.problem_schema import (
    PROBLEM_MEDIA_TYPE,
    PROBLEM_REF,
    STATUS_MEANINGS,
    problem_responses,
)

FROM_ROWS = ConfigDict(from_attributes=True)


class UserSummary(BaseModel):
    model_config = FROM_ROWS

    id: int
    username: str
    role: Role
    email: str
    organization: str
    identity_linked: bool
    identity_proof: str | None = Field(description="how the identity was proven; null: unlinked")
    identity_verified_at: UtcTime | None
    created_at: UtcTime

    @model_validator(mode="after")
    def _only_when_linked(self) -> UserSummary:
        # An unlinked account proves nothing, whatever its row still holds.
        if not self.identity_linked:
            self.identity_proof = self.identity_verified_at = None
        return self


class UserToken(BaseModel):
    access_token: str
    token_type: str = Field(examples=["Bearer"])
    expires_in: int


class ConsentSummary(BaseModel):
    model_config = FROM_ROWS

    id: int
    client_id: str
    dataset_id: str
    purpose: str
    scope: str
    created_at: UtcTime
    expires_at: UtcTime
    withdrawn_at: UtcTime | None


class ConsentPage(BaseModel):
    data: list[ConsentSummary]
    next_cursor: str | None


class AppSummary(BaseModel):
    model_config = FROM_ROWS

    client_id: str
    name: str
    redirect_uris: list[str]
    client_type: str = Field(description="confidential, or public (no secret, PKCE)")
    token_endpoint_auth_methods: list[str]
    jwks_uri: str | None
    is_active: bool
    created_at: UtcTime
    secret_rotated_at: UtcTime


class CreatedApp(AppSummary):
    client_secret: str | None = Field(description="shown once; null for a public client")


class AppPage(BaseModel):
    data: list[AppSummary]
    next_cursor: str | None


class RotatedSecret(BaseModel):
    client_id: str
    client_secret: str = Field(description="shown once")


class SigningSecretOut(BaseModel):
    client_id: str
    kid: str = Field(description="签名密钥编号")
    signing_secret: str = Field(
        description="仅显示这一次：签名调用以其 UTF-8 字节为 HMAC-SHA256 密钥（见契约 §12）"
    )


# --- OAuth 2.0 (RFC 6749, 7662, 7009, 8414, 7517) ----------------------------------------


class TokenAnswer(BaseModel):
    access_token: str
    token_type: str = Field(examples=["Bearer"])
    expires_in: int
    scope: str = Field(description="the granted scope, always present (docs/contract-oauth.md)")
    refresh_token: str | None = Field(default=None, description="authorization_code only")


class Introspection(BaseModel):
    """RFC 7662: `{"active": false}` for a token that is not (or not this client's)."""

    model_config = ConfigDict(extra="allow")

    active: bool
    token_type: str | None = None
    client_id: str | None = None
    scope: str | None = None
    sub: str | None = None
    exp: int | None = None


class Revoked(BaseModel):
    """RFC 7009: 200 with an empty object, whether or not the token was known."""


class ServerMetadata(BaseModel):
    model_config = ConfigDict(extra="allow")

    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str
    grant_types_supported: list[str]


class JWKSet(BaseModel):
    keys: list[dict[str, Any]]


OAUTH_ERROR = {
    "type": "object",
    "description": "an RFC 6749 error with the problem members beside it",
    "required": ["error", "type", "title", "status", "detail", "code", "request_id"],
    "properties": {
        "error": {"type": "string"},
        "error_description": {"type": "string"},
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "code": {"type": "string"},
        "request_id": {"type": ["string", "null"]},
    },
}


def oauth_errors(*statuses: int) -> dict[int, Any]:
    """Errors of an OAuth endpoint: RFC 6749 JSON from the protocol, problem+json from the
    gateway (a body too large, a bad token, rate limits…)."""
    return {
        status: {
            "description": STATUS_MEANINGS[status],
            "content": {
                "application/json": {"schema": OAUTH_ERROR},
                PROBLEM_MEDIA_TYPE: {"schema": PROBLEM_REF},
            },
        }
        for status in statuses
    }


# The OAuth endpoints read their url-encoded form themselves (RFC 6749 §3.2).
FORM_BODY = {
    "requestBody": {
        "content": {
            "application/x-www-form-urlencoded": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "grant_type": {
                            "type": "string",
                            "enum": ["client_credentials", "authorization_code", "refresh_token"],
                        },
                        "client_id": {"type": "string"},
                        "client_secret": {"type": "string"},
                        "scope": {"type": "string"},
                        "code": {"type": "string"},
                        "code_verifier": {"type": "string"},
                        "redirect_uri": {"type": "string"},
                        "refresh_token": {"type": "string"},
                        "token": {"type": "string"},
                        "token_type_hint": {"type": "string"},
                        "client_assertion_type": {"type": "string"},
                        "client_assertion": {"type": "string"},
                    },
                }
            }
        }
    }
}
HTML_ERROR = {
    "description": "the authorization request is invalid: an error page",
    "content": {"text/html": {"schema": {"type": "string"}}},
}
# What the token, introspection and revocation endpoints can answer besides success.
OAUTH_ERRORS = {**oauth_errors(400, 401), **problem_responses(413, 415, 429, 503)}


class AccountState(BaseModel):
    """An account after a sysadmin's change (auth/admin_views.py)."""

    username: str
    role: str
    is_active: bool


class IdentityStart(BaseModel):
    """Where to send the person to prove their identity (auth/identity_views.py)."""

    authorization_url: str
    expires_in: int


class Registered(BaseModel):
    """`POST /auth/register`'s answer: the same whether or not the name was free."""

    username: str
    role: str
    email: str
    organization: str
    detail: str
