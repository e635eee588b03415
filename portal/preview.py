"""The data preview of a dataset page, read through the enforcement door directly.

The page calls `app.state.enforcer` (policies/access.py) in records mode as the page's own
caller — its bearer token's principal, else its signed-in web account as a `user`
principal, which is what the records route would see for the same account's token. So
the decision, masking, quota counting and the audit event's fields are the records
route's own: the same `Enforcer.records` call. What the route gets from middlewares, the
preview does itself with the same objects:

- the rate limit: the caller's window and the `data` group's, counted on the same keys
  (`app.state.rate_limits`, failing closed on a conditional dataset without Redis); the
  page route is not an API route, so the limiter middleware does not count it;
- the audit event: action `data.records`, detail `channel: "preview"`, built from the
  Access's `AuditNotes` and stored (awaited) before a row is rendered — if it cannot be
  stored, the preview shows no rows (fail closed, as the audit middleware does).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from audit.events import outcome_for
from auth.principal import Principal, principal_of
from kernel.problems import Problem
from portal.session import signed_in

PREVIEW_ROWS = 5
ACTION = "data.records"
CHANNEL = "preview"
AUDIT_DOWN = "审计日志暂时无法写入，数据预览暂停，请稍后重试"


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


def client_ip(request: Request) -> str | None:
    """The address the limiter resolved for this request (trusted proxies applied)."""
    ip = request.scope.get("state", {}).get("client_ip")
    return ip or (request.client.host if request.client else None)


async def rate_limited(
    request: Request, principal: Principal | None, dataset_id: str
) -> Problem | None:
    """Count the preview in the windows a `/records` request counts in (the caller's and
    the `data` group's); the refusal, if any."""
    limits = request.app.state.rate_limits
    hosted = request.app.state.hosted_catalog.get(dataset_id)
    conditional = hosted is not None and hosted.open_type == "conditional"
    ip = client_ip(request) or "unknown"
    return await limits.admit(principal, ip, "data", fail_closed=conditional)


def event(
    request: Request,
    principal: Principal | None,
    dataset_id: str,
    noted: dict[str, Any],
    status: int,
) -> dict[str, Any]:
    """The preview's audit event: the fields the audit middleware gives a records request
    (gateway/audit_trail.py `build_event`), from the same notes."""
    detail = {**(noted.get("detail") or {}), "channel": CHANNEL}
    if "error" in noted:
        detail["error"] = noted["error"]
    return {
        "request_id": request.scope.get("state", {}).get("request_id"),
        "actor": principal.actor if principal else "anonymous",
        "client_id": principal.client_id if principal else None,
        "ip": client_ip(request),
        "action": ACTION,
        "resource": noted.get("resource") or f"datasets/{dataset_id}",
        "fields": noted.get("fields"),
        "row_count": noted.get("row_count"),
        "purpose": noted.get("purpose"),
        "grant_id": noted.get("grant_id"),
        "grant_version": noted.get("grant_version"),
        "outcome": outcome_for(status),
        "status": status,
        "detail": detail,
    }


async def fetch(request: Request, dataset_id: str, *, rows: int = PREVIEW_ROWS) -> Preview:
    principal = session_principal(request)
    state = request.app.state
    refusal = await rate_limited(request, principal, dataset_id)
    noted: dict[str, Any] = {}
    sink = state.audit_sink
    sink.in_flight += 1  # an event is coming: the writer may wait for it
    page = None
    try:
        if refusal is None:
            try:
                page = await run_in_threadpool(
                    state.enforcer.records,
                    principal,
                    dataset_id,
                    [("limit", str(rows))],
                    format="json",
                    notes=noted,
                )
            except Problem as problem:
                refusal = problem
                noted["error"] = problem.code
        else:
            noted["error"] = refusal.code
        status = 200 if refusal is None else refusal.status
        stored = sink.submit_async(event(request, principal, dataset_id, noted, status))
    finally:
        sink.in_flight -= 1
    try:
        await stored
    except Exception:  # the store refused it (down): no rows without their event
        return Preview(503, code="unavailable", detail=AUDIT_DOWN)
    if refusal is not None or page is None:
        assert refusal is not None
        return Preview(refusal.status, code=refusal.code, detail=refusal.detail)
    names = page.names
    # The JSON the API answers, read back: the page shows the values the API sends.
    data = orjson.loads(orjson.dumps([dict(zip(names, r, strict=True)) for r in page.rows]))
    fields = [{"name": n, "transform": t} for n, t in zip(names, page.transforms, strict=True)]
    return Preview(200, fields=fields, rows=data)
