"""The data preview of a dataset page, read through the records API itself.

The page does not query the hosted table: it sends `GET /api/v1/datasets/{id}/records`
through the whole application — authentication, rate limits, the access decision, masking,
quotas and the audit middleware, which stores a `data.records` event before the answer is
released — as the page's own caller (the bearer token it sent, or its web session's
account). So the preview shows exactly what the same caller reads through the API, and it
follows the records route wherever that route's enforcement is implemented.

`fetch` is the one function the pages call; an in-process door to the same enforcement
(e.g. a `policies.enforce` entry point) can replace `dispatch` without touching a page.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlencode

from starlette.requests import Request

from auth.principal import Principal, principal_of
from portal.session import signed_in

PREVIEW_ROWS = 5
# Headers the sub-request keeps: who calls, from where (behind a trusted proxy), in what
# language. Never the cookie: the records API does not read a web session.
KEPT_HEADERS = {b"authorization", b"x-forwarded-for", b"user-agent", b"accept-language"}


@dataclass(frozen=True, slots=True)
class Preview:
    status: int
    fields: list[dict[str, str]] = field(default_factory=list)
    rows: list[dict[str, Any]] = field(default_factory=list)
    code: str | None = None
    detail: str | None = None

    @property
    def allowed(self) -> bool:
        return self.status == 200


def session_principal(request: Request) -> Principal | None:
    """The caller the API would see for this page: its bearer token's principal, else its
    signed-in web account as a user (the same account's rights through the API)."""
    principal = principal_of(request)
    if principal is not None:
        return principal
    found = signed_in(request)
    if found is None:
        return None
    user = found.user
    return Principal(
        kind="user",
        subject=user.username,
        role=user.role,
        client_id=None,
        user_id=user.id,
        scopes=frozenset({"user"}),
        token_id="web:" + found.token_hash[:16],
        consent_id=None,
        expires_at=int(found.expires_at.timestamp()),
    )


async def dispatch(request: Request, path: str, params: dict[str, str]) -> tuple[int, bytes]:
    """GET `path` through the whole app as this request's caller; (status, body)."""
    headers = [(k, v) for k, v in request.scope["headers"] if k in KEPT_HEADERS]
    headers.append((b"accept", b"application/json"))
    state: dict[str, Any] = {}
    principal = session_principal(request)
    if principal is not None and not any(k == b"authorization" for k, _ in headers):
        state["principal"] = principal  # the authentication middleware keeps it
    scope = {
        "type": "http",
        "asgi": request.scope.get("asgi", {"version": "3.0"}),
        "http_version": "1.1",
        "method": "GET",
        "scheme": request.scope.get("scheme", "http"),
        "server": request.scope.get("server"),
        "client": request.scope.get("client"),
        "root_path": request.scope.get("root_path", ""),
        "path": path,
        "raw_path": quote(path).encode(),
        "query_string": urlencode(params).encode(),
        "headers": headers,
        "state": state,
        "app": request.app,
    }
    chunks: list[bytes] = []
    status = 500

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    await request.app(scope, receive, send)
    return status, b"".join(chunks)


async def fetch(request: Request, dataset_id: str, *, rows: int = PREVIEW_ROWS) -> Preview:
    status, body = await dispatch(
        request, f"/api/v1/datasets/{dataset_id}/records", {"limit": str(rows)}
    )
    try:
        document = json.loads(body)
    except ValueError:
        document = {}
    if status == 200:
        return Preview(status, fields=document.get("fields", []), rows=document.get("data", []))
    return Preview(status, code=document.get("code"), detail=document.get("detail"))
