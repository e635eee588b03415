"""The call route of interface services (contract §12):

    POST /api/v1/services/{service_id}/call   parse → enforce (mode `call`) → upstream → project

The decision is the enforcement door's (`policies.access.Enforcer`, the same as for a
dataset's records: token scope, grant, quotas, the transform of each response path); this
module only checks the parameters against the declaration, calls the upstream and applies
the plan's transforms to its JSON, dropping every member not declared.
"""

from __future__ import annotations

import threading

import orjson
from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from audit.events import audited, notes
from auth.principal import principal_of
from kernel.problem_schema import problem_responses
from kernel.problems import Problem
from policies.access import Access, Enforcer
from policies.decide import Plan
from services.catalog import HostedService
from services.masking import projector
from services.parameters import check_call
from services.paths import ProjectionError, Projector, returned_paths
from services.upstream import Upstreams, upstream_error

SERVICE_TAG = "data"  # the data mark (gateway.route_marks.DATA_TAG): limits and audit


class Projections:
    """The projector of each plan, compiled once (its masks are the records path's)."""

    def __init__(self) -> None:
        self._kept: dict[int, tuple[Plan, Projector]] = {}
        self._lock = threading.Lock()

    def of(self, access: Access, service: HostedService) -> Projector:
        plan = access.plan
        kept = self._kept.get(id(plan))
        if kept is not None and kept[0] is plan:
            return kept[1]
        specs = {path: plan.transform_of(path) for path in plan.visible}
        pseudonyms = "pseudonym" in specs.values() and plan.client_id
        key = access.enforcer.app_key(plan.client_id) if pseudonyms else None  # type: ignore[arg-type]
        made = projector(service.spec, specs, key=key)
        with self._lock:
            if len(self._kept) > 4096:
                self._kept.clear()
            self._kept[id(plan)] = (plan, made)
        return made


def build_router(enforcer: Enforcer, upstreams: Upstreams) -> APIRouter:
    router = APIRouter(prefix="/api/v1/services", tags=[SERVICE_TAG])
    projections = Projections()

    @router.post(
        "/{service_id}/call",
        summary="调用接口服务",
        description=(
            "请求体为服务声明的参数组成的 JSON 对象；应答为上游接口的 JSON，"
            "每个声明的应答字段按调用方授权（call 方式）处理，未声明的成员一律去除。"
        ),
        responses={
            200: {"description": "上游应答（按授权处理后）", "content": {"application/json": {}}},
            **problem_responses(400, 401, 403, 404, 413, 429, 502, 503, 504),
        },
    )
    @audited("service.call")
    async def call(service_id: str, request: Request) -> Response:
        raw = await request.body()
        access: Access = await run_in_threadpool(
            enforcer.enforce, principal_of(request), service_id, "call", notes=notes(request.scope)
        )
        service = access.hosted
        if not isinstance(service, HostedService):  # a dataset: decide() refused it already
            raise Problem(404, "not_found", f"接口服务 {service_id} 不存在")
        arguments = check_call(service.spec, raw)
        await run_in_threadpool(access.admit, None)
        document = await upstreams.call(
            service.id,
            service.title,
            service.spec.upstream,
            query=arguments.query,
            body=arguments.body,
            request_id=request.scope.get("state", {}).get("request_id"),
        )
        project = projections.of(access, service)
        try:
            shown = project(document)
        except ProjectionError:
            raise upstream_error(service.title, "返回的内容不符合服务声明") from None
        access.notes.plan(
            access.plan,
            service,  # type: ignore[arg-type]
            returned_paths(shown, project.tree),
            resource=f"services/{service.id}",
            parameters=list(arguments.names),
        )
        return Response(
            orjson.dumps(shown),
            media_type="application/json",
            headers={"X-Service-Version": str(service.version)},
        )

    return router
