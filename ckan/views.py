"""`GET|POST /api/3/action/{action}` and `/api/action/{action}` (contract §11).

How `datastore_search` is a data route although its path names no dataset (the marks in
gateway/route_marks.py find data routes by a `{dataset_id}` segment, and a CKAN call
carries its dataset in the query or the body, which the middlewares never read):

- audited: it has routes of its own, declared before the generic `{action}` ones, whose
  endpoint is `@audited("data.records")` — the audit middleware writes that event for
  every call, whatever its outcome, and holds the answer until it is stored; the Access
  notes the dataset, fields, grant and row count into it (detail `channel: ckan`), so the
  metering trigger (migrations 0012) and operation.statements.METERED count it as the
  `/records` request it is.
- rate limited: the middleware counts it in the caller's own window like any `/api/`
  request; the endpoint adds the `data` group's window (`data_window`), the one the
  middleware would have added had it known, failing closed on conditional data.
- grants, masking, quotas: `Enforcer.enforce(…, "records")` then `Access.fetch_window`.
"""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from audit.events import audited, notes
from auth.principal import Principal, principal_of
from ckan.actions import Actions, Call
from ckan.envelope import CkanAnswer, answer, documented_failures, failure, invalid
from kernel.problem_schema import problem_responses
from kernel.problems import Problem
from policies.access import Enforcer

PREFIXES = ("/api/3/action", "/api/action")
MAX_BODY = 1 << 20

SUMMARIES = {
    "datastore_search": "CKAN 数据存储查询（datastore_search，与记录接口同一授权与脱敏）",
    "action": "CKAN 操作接口（Action API 兼容子集）",
}
DESCRIPTION = (
    "CKAN Action API compatible subset (contract §11, docs/contract-ckan.md): "
    "status_show, package_list, package_search, package_show, organization_list, "
    "organization_show, group_list, tag_list, resource_show, datastore_search. "
    "Parameters in the query string (GET) or a JSON object / form body (POST). "
    "`Authorization: <token>` (no `Bearer`) and `X-CKAN-API-Key` are accepted."
)
RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"model": CkanAnswer, "description": "`success: true` and the action's `result`"},
    **documented_failures(),
    **problem_responses(401, 429, 503),
}


async def _params(request: Request) -> dict[str, Any]:
    if request.method == "GET":
        return dict(request.query_params)
    body = await request.body()
    if len(body) > MAX_BODY:
        raise invalid("body", "请求体过大")
    if not body.strip():
        return dict(request.query_params)
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind in ("application/x-www-form-urlencoded", "multipart/form-data"):
        form = await request.form()
        return {k: v for k, v in form.items() if isinstance(v, str)}
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise invalid("body", "请求体必须是 JSON 对象或表单") from None
    if not isinstance(parsed, dict):
        raise invalid("body", "请求体必须是 JSON 对象")
    return parsed


async def data_window(request: Request, principal: Principal | None, dataset_id: str) -> None:
    """Count a datastore_search in the `data` group's window (the caller's own window was
    counted by the middleware); raises its 429, or 503 when the limiter is down and the
    dataset is conditional. `app.state.rate_limits` is the gateway's limiter, used only
    through `plan` (the caller's window first, then the group's), `rules` and `hit`."""
    limits = getattr(request.app.state, "rate_limits", None)
    if limits is None or not limits.enabled:
        return
    state = request.scope.get("state", {})
    ip = state.get("client_ip") or (request.client.host if request.client else "unknown")
    hosted = request.app.state.hosted_catalog.get(dataset_id) if dataset_id else None
    conditional = hosted is not None and hosted.open_type == "conditional"
    checks = limits.plan(principal, ip, "data")
    rule = limits.rules.get("data")
    if len(checks) == 1 and conditional and rule is not None:
        # `plan` leaves out a group window the caller's covers; the middleware's hit of
        # the caller's window did not know to fail closed, so the data key (the one
        # /records counts in) is counted here, which can never refuse before the
        # caller's own window would, and fails closed when the limiter is down.
        who = ip if principal is None else principal.client_id or f"user:{principal.subject}"
        checks = [*checks, type(checks[0])(rule, rule.key_for(who))]
    if len(checks) == 1:
        return
    verdict = await limits.hit(checks[1:], fail_closed=conditional)
    if not verdict.allowed:
        retry = max(1, verdict.reset_in)
        raise Problem(
            429,
            "rate_limited",
            f"超出“{verdict.rule.name}”限流，请 {retry} 秒后重试",
            headers={"Retry-After": str(retry)},
        )


def build_router(enforcer: Enforcer) -> APIRouter:
    router = APIRouter(tags=["ckan"])
    actions = Actions(enforcer)

    async def run(request: Request, name: str) -> Response:
        public_url = getattr(request.app.state, "public_url", "")
        help_url = f"{public_url}/api/3/action/help_show?name={name[:64]}"
        scope_notes = notes(request.scope) if name == "datastore_search" else {}
        try:
            params = await _params(request)
            principal = principal_of(request)
            if name == "datastore_search":
                resource = params.get("resource_id")
                await data_window(request, principal, resource if isinstance(resource, str) else "")
            call = Call(principal, params, public_url, scope_notes)
            result = await run_in_threadpool(actions.run, name, call)
        except Problem as problem:
            if problem.status >= 500:
                raise  # CKAN has no type for "unavailable": the gateway's 503 problem+json
            if name == "datastore_search":
                scope_notes["error"] = problem.code
            return failure(help_url, problem)
        return answer(help_url, result)

    @audited("data.records")
    async def datastore_search(request: Request) -> Response:
        return await run(request, "datastore_search")

    async def action(action: str, request: Request) -> Response:
        return await run(request, action)

    # datastore_search first: its own routes win over `{action}` (and carry its audit mark)
    for prefix in PREFIXES:
        tail = prefix.split("/")[2]  # "3" or "action": keeps the operation ids apart
        for path, endpoint, kind in (
            (f"{prefix}/datastore_search", datastore_search, "datastore_search"),
            (f"{prefix}/{{action}}", action, "action"),
        ):
            for method in ("GET", "POST"):
                router.add_api_route(
                    path,
                    endpoint,
                    methods=[method],
                    summary=SUMMARIES[kind],
                    description=DESCRIPTION,
                    responses=RESPONSES,
                    name=f"ckan_{kind}_{method.lower()}_{tail}",
                )

    return router
