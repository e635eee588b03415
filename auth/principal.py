"""Who is calling: one small typed object per request, and the route-level role checks.

The bearer token is checked by `Authenticator` (local JWT verification plus a check of
revocations and of the caller's current state, both mirrored: no database hit). Routes
declare who may call them with `require_role(...)`, so the route table itself says who may
call what.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from starlette.requests import Request

from auth.models import Role
from auth.revocations import Revocations
from auth.tokens import InvalidToken, TokenVerifier
from kernel.problems import Problem

REALM = 'Bearer realm="opengate"'
# RFC 6750 §3: header values are ASCII, so the Chinese reason goes in the body only.
DESCRIPTIONS = {"invalid_token": "The access token is malformed, expired, revoked or not ours"}


@dataclass(frozen=True, slots=True)
class Principal:
    kind: str  # "app" (client credentials), "user" (signed-in account), "person" (consent)
    subject: str
    role: str | None
    client_id: str | None
    user_id: int | None
    scopes: frozenset[str]
    token_id: str
    consent_id: int | None
    expires_at: int

    @property
    def actor(self) -> str:
        """How the audit log names the caller (docs/contract-audit.md §8.2): the app as
        `client:<client_id>`, a signed-in account or a consenting person as
        `user:<username>` (the app a person's token serves is the event's client_id)."""
        if self.kind == "app":
            return f"client:{self.client_id or self.subject}"
        return f"user:{self.subject}"


def unauthorized(detail: str, *, error: str | None = "invalid_token") -> Problem:
    challenge = REALM
    if error:
        challenge += f', error="{error}", error_description="{DESCRIPTIONS[error]}"'
    return Problem(401, "unauthorized", detail, headers={"WWW-Authenticate": challenge})


class Authenticator:
    def __init__(self, verifier: TokenVerifier, revocations: Revocations) -> None:
        self.verifier = verifier
        self.revocations = revocations

    async def authenticate(self, authorization: str) -> Principal:
        """The principal for an `Authorization: Bearer …` value; raises a 401 Problem."""
        token = authorization[7:].strip()
        if not token:
            raise unauthorized("缺少访问令牌")
        try:
            claims = self.verifier.verify(token)
        except InvalidToken as exc:
            raise unauthorized(str(exc)) from None
        # Revoked, or issued to an account or app whose state has changed since (disabled,
        # another role, a rotated secret): checked on every request against the mirror.
        reason = await self.revocations.refusal(claims)
        if reason is not None:
            raise unauthorized(reason)
        if claims.consent_id is not None:
            kind = "person"
        elif claims.role is not None:
            kind = "user"
        else:
            kind = "app"
        return Principal(
            kind=kind,
            subject=claims.subject,
            role=claims.role,
            client_id=claims.client_id,
            user_id=claims.user_id,
            scopes=frozenset(claims.scope.split()),
            token_id=claims.token_id,
            consent_id=claims.consent_id,
            expires_at=claims.expires_at,
        )


def principal_of(request: Request) -> Principal | None:
    return request.scope.get("state", {}).get("principal")


def require_role(*roles: Role) -> Callable[[Request], Principal]:
    """A dependency admitting signed-in users with one of `roles`; 401 without a token,
    403 with the wrong role. Apps and person-bound tokens are not users."""
    allowed = frozenset(r.value for r in roles)

    def dependency(request: Request) -> Principal:
        principal = principal_of(request)
        if principal is None:
            raise unauthorized("需要访问令牌", error=None)
        if principal.kind != "user" or principal.role not in allowed:
            raise Problem(403, "forbidden", "当前账号无权执行此操作")
        return principal

    dependency.required_roles = allowed  # type: ignore[attr-defined]  (read by the route-table test)
    return dependency
