"""How the rest of the gateway talks to the audit log without importing its machinery.

A route declares its action with `@audited("grant.approve")`; while it runs it adds what
it knows to the request with `note(request, grant_id=…, fields=…)`. The gateway's audit
middleware turns that, the caller and the status into one event and stores it before the
response starts. Only names, counts, ids and keyed digests go into an event — never a
value from a level-3/4 field, a secret or a token.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from audit.canonical import EVENT_KEYS

F = TypeVar("F", bound=Callable[..., Any])

STATE_KEY = "audit"

# What a route may say about its event; seq, ts, the request id, the address and the
# status are the gateway's, the hashes the writer's. `stream` is a streamed export's row
# counter (see the audit middleware).
NOTE_KEYS = (frozenset(EVENT_KEYS) - {"seq", "ts", "request_id", "ip", "status"}) | {"stream"}


class _HasScope(Protocol):
    scope: dict[str, Any]


def audited(action: str) -> Callable[[F], F]:
    """Mark a route: every call of it writes one `action` event, whatever its outcome."""

    def mark(endpoint: F) -> F:
        endpoint.audit_action = action  # type: ignore[attr-defined]
        return endpoint

    return mark


def action_of(endpoint: Any) -> str | None:
    return getattr(endpoint, "audit_action", None)


def notes(scope: dict[str, Any]) -> dict[str, Any]:
    return scope.setdefault("state", {}).setdefault(STATE_KEY, {})


def note(request: _HasScope, **fields: Any) -> None:
    """Add facts to this request's event; `detail` entries are merged."""
    note_into(notes(request.scope), **fields)


def note_into(current: dict[str, Any], **fields: Any) -> None:
    """`note` on an event's notes held by whoever carries them (a channel that is not an
    HTTP route passes its own dict)."""
    unknown = set(fields) - NOTE_KEYS
    if unknown:
        raise TypeError(f"not an audit field: {', '.join(sorted(unknown))}")
    detail = fields.pop("detail", None)
    current.update(fields)
    if detail:
        current.setdefault("detail", {}).update(detail)


def outcome_for(status: int) -> str:
    if status < 400:
        return "allowed"
    if status in (401, 403, 429):
        return "denied"
    return "error"


def keyed_digest(key: bytes, value: str) -> str:
    """A value an auditor may match (same value → same digest) but nobody can read back:
    HMAC-SHA-256 under the gateway's audit key, shortened."""
    return "hmac:" + hmac.new(key, value.encode(), hashlib.sha256).hexdigest()[:32]
