"""The routes of interface services (contract §12):

    GET  /api/v1/services                     the published services (parameters, paths)
    GET  /api/v1/services/{service_id}        one of them
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
from sqlmodel import select
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from audit.events import audited, notes
from auth.principal import principal_of
from catalog.models import Dataset, OpenType
from catalog.request_state import HostedCatalogDep, SeesClosedDep, SessionDep
from kernel.problem_schema import problem_responses
from kernel.problems import not_found
from policies.access import Access, Enforcer
from policies.decide import Plan
from services.catalog import HostedService
from services.masking import projector
from services.parameters import check_call
from services.paths import ProjectionError, Projector, returned_paths
from services.registry import KIND
from services.schemas import ServiceList, ServiceOut
from services.upstream import Upstreams, upstream_error

SERVICE_TAG = "data"  # the data mark (gateway.route_marks.DATA_TAG): limits and audit

router = APIRouter(prefix="/api/v1/services", tags=["services"])


def described(service: HostedService) -> dict[str, object]:
    spec = service.spec
    return {
        "id": service.id,
        "title": service.title,
        "description": spec.description,
        "publisher": spec.publisher,
        "open_type": service.open_type,
        "level": service.level,
        "version": service.version,
        "method": spec.upstream.method,
        "timeout_ms": spec.upstream.timeout_ms,
        "call": f"/api/v1/services/{service.id}/call",
        "parameters": [
            {"name": p.name, "location": p.location, "type": p.type, "required": p.required,
             "level": p.level, "pii": p.pii, "title": p.title}
            for p in spec.parameters
        ],
        "response": [
            {"path": f.path, "type": f.type, "level": f.level, "pii": f.pii, "title": f.title}
            for f in spec.fields
        ],
    }  # fmt: skip


@router.get(
    "",
    summary="接口服务目录",
    response_model=ServiceList,
    response_model_by_alias=True,
    responses=problem_responses(429, 503),
)
def list_services(
    db: SessionDep, catalog: HostedCatalogDep, include_closed: SeesClosedDep
) -> dict[str, object]:
    ids = db.exec(select(Dataset.id).where(Dataset.kind == KIND).order_by(Dataset.id)).all()
    found = [catalog.get(i) for i in ids]
    return {
        "data": [
            described(s)
            for s in found
            if isinstance(s, HostedService) and (include_closed or s.open_type != OpenType.closed)
        ]
    }


@router.get(
    "/{service_id}",
    summary="查看接口服务（参数与应答字段）",
    response_model=ServiceOut,
    response_model_by_alias=True,
    responses=problem_responses(404, 429, 503),
)
def get_service(
    service_id: str, catalog: HostedCatalogDep, include_closed: SeesClosedDep
) -> dict[str, object]:
    service = catalog.get(service_id)
    if not isinstance(service, HostedService) or (
        service.open_type == OpenType.closed and not include_closed
    ):
        raise not_found(f"接口服务 {service_id} 不存在")
    return described(service)


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
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "description": (
                                "服务声明的参数（GET /api/v1/services/{service_id} 的 parameters）"
                            ),
                        }
                    }
                },
            }
        },
        responses={
            200: {
                "description": "上游应答（按授权处理后）",
                "content": {
                    "application/json": {
                        "schema": {
                            "oneOf": [{"type": "object"}, {"type": "array"}],
                            "description": "形状由服务声明的 response 字段决定；未声明的成员已去除",
                        }
                    }
                },
            },
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
            raise not_found(f"接口服务 {service_id} 不存在")
        arguments = check_call(service.spec, raw)
        upstreams.refuse_if_full(service.id, service.title)  # a refused call costs no quota
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
