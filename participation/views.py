"""The participation API: 纠错 reports, 数据需求, their administration by a `data_admin`, and
the public overview of the cockpit. Routes read the engine, the hosted catalog, the quote
digest and the overview cache from `app.state` (set by the gateway's app factory)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request

from audit.events import audited, note
from auth.models import Role
from auth.principal import Principal, principal_of, require_role
from catalog.hosted import HostedDataset
from catalog.request_state import EngineDep, HostedCatalogDep
from catalog.row_id import RowId
from kernel.problem_schema import problem_responses
from kernel.problems import invalid_parameter, not_found
from kernel.responses import JSONResponse
from participation import demands, feedback
from participation.models import DemandStatus, FeedbackStatus
from participation.schemas import (
    DemandAnswer,
    DemandDecline,
    DemandIn,
    DemandOut,
    DemandPage,
    DemandSatisfy,
    FeedbackFixed,
    FeedbackIn,
    FeedbackNote,
    FeedbackOut,
    FeedbackPage,
    FeedbackReject,
    Overview,
)

# Every refusal a participation route can give, documented once for all of them.
router = APIRouter(
    prefix="/api/v1",
    tags=["participation"],
    responses=problem_responses(400, 401, 403, 404, 409, 413, 429, 503),
)

# The data administrator's handling of them, listed with the other administration routes.
admin_router = APIRouter(
    prefix="/api/v1/admin",
    tags=["administration"],
    responses=problem_responses(400, 401, 403, 404, 409, 413, 429, 503),
)

AnyAccount = Depends(require_role(Role.developer, Role.data_admin, Role.auditor, Role.sysadmin))
AccountDep = Annotated[Principal, AnyAccount]
AdminDep = Annotated[Principal, Depends(require_role(Role.data_admin))]


def quote_digest(request: Request) -> Callable[[str], str]:
    return request.app.state.quote_digest


def source_of(request: Request) -> str:
    """The keyed digest of the client's address (as the rate limiter saw it)."""
    state = request.scope.get("state", {})
    address = state.get("client_ip") or (request.client.host if request.client else "")
    return request.app.state.quote_digest("address:" + address)


def reporter_of(request: Request, username: str | None) -> feedback.Reporter:
    return feedback.Reporter(username or "", source_of(request))


def visible_dataset(
    hosted_catalog: Any, dataset_id: str, principal: Principal | None
) -> HostedDataset:
    """The published dataset, closed ones only to a data administrator (like the catalog)."""
    hosted = hosted_catalog.get(dataset_id)
    admin = principal is not None and principal.kind == "user" and principal.role == "data_admin"
    if hosted is None or (hosted.open_type == "closed" and not admin):
        raise not_found(f"数据集 {dataset_id} 不存在")
    return hosted


def _account_name(principal: Principal | None) -> str | None:
    return principal.subject if principal is not None and principal.kind == "user" else None


@router.post(
    "/datasets/{dataset_id}/feedback",
    response_model=FeedbackOut,
    status_code=201,
    summary="提交数据纠错",
    description="对数据集的字段或记录报告数据质量问题（纠错）。可匿名提交"
    "（按来源地址限每小时 10 条），登录后提交可在开发者中心查看处理进度。",
)
@audited("feedback.submit")
def submit_feedback(
    dataset_id: str,
    body: FeedbackIn,
    request: Request,
    engine: EngineDep,
    hosted_catalog: HostedCatalogDep,
) -> JSONResponse:
    principal = principal_of(request)
    hosted = visible_dataset(hosted_catalog, dataset_id, principal)
    note(request, resource=f"datasets/{dataset_id}")
    row = feedback.submit(
        engine,
        hosted,
        field=body.field,
        record=body.record,
        message=body.message,
        reporter=reporter_of(request, _account_name(principal)),
        digest=quote_digest(request),
    )
    note(request, detail={"feedback_id": row.id, "redacted": row.redacted})
    return JSONResponse(feedback.public_view(row), status_code=201)


@router.get("/me/feedback", response_model=FeedbackPage, summary="我提交的纠错")
def my_feedback(principal: AccountDep, engine: EngineDep) -> JSONResponse:
    rows = feedback.listing(engine, reporter=principal.subject, limit=200)
    return JSONResponse({"data": [feedback.public_view(r) for r in rows], "next_cursor": None})


def _page(rows: list[Any], view: Callable[[Any], dict[str, Any]], limit: int) -> JSONResponse:
    more = len(rows) > limit
    rows = rows[:limit]
    cursor = str(rows[-1].id) if more and rows else None
    return JSONResponse({"data": [view(r) for r in rows], "next_cursor": cursor})


def _cursor(raw: str | None) -> int | None:
    if raw is None:
        return None
    if not raw.isdigit() or len(raw) > 18:
        raise invalid_parameter("cursor", "cursor 无效，请使用上一页返回的 next_cursor")
    return int(raw)


@admin_router.get("/feedback", response_model=FeedbackPage, summary="纠错列表（数据管理员）")
def admin_feedback(
    _admin: AdminDep,
    engine: EngineDep,
    status: FeedbackStatus | None = None,
    dataset_id: str | None = None,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> JSONResponse:
    rows = feedback.listing(
        engine, status=status, dataset_id=dataset_id, after=_cursor(cursor), limit=limit + 1
    )
    return _page(rows, feedback.public_view, limit)


@admin_router.post("/feedback/{feedback_id}/accept", response_model=FeedbackOut, summary="受理纠错")
@audited("feedback.accept")
def accept_feedback(
    feedback_id: RowId, body: FeedbackNote, request: Request, admin: AdminDep, engine: EngineDep
) -> JSONResponse:
    note(request, resource=f"feedback/{feedback_id}")
    row = feedback.accept(engine, feedback_id, by=admin.subject, note=body.response)
    return JSONResponse(feedback.public_view(row))


@admin_router.post(
    "/feedback/{feedback_id}/reject",
    response_model=FeedbackOut,
    summary="不予采纳纠错（须说明理由）",
)
@audited("feedback.reject")
def reject_feedback(
    feedback_id: RowId, body: FeedbackReject, request: Request, admin: AdminDep, engine: EngineDep
) -> JSONResponse:
    note(request, resource=f"feedback/{feedback_id}")
    row = feedback.reject(engine, feedback_id, by=admin.subject, reason=body.reason)
    return JSONResponse(feedback.public_view(row))


@admin_router.post(
    "/feedback/{feedback_id}/fixed", response_model=FeedbackOut, summary="纠错已在新版本中修正"
)
@audited("feedback.fixed")
def fixed_feedback(
    feedback_id: RowId,
    body: FeedbackFixed,
    request: Request,
    admin: AdminDep,
    engine: EngineDep,
    hosted_catalog: HostedCatalogDep,
) -> JSONResponse:
    note(request, resource=f"feedback/{feedback_id}")

    def current_version(dataset_id: str) -> int | None:
        hosted = hosted_catalog.get(dataset_id)
        return hosted.version if hosted is not None else None

    row = feedback.mark_fixed(
        engine, feedback_id, by=admin.subject, version=body.version, current_version=current_version
    )
    return JSONResponse(feedback.public_view(row))


@router.post(
    "/demands",
    response_model=DemandOut,
    status_code=201,
    summary="提出数据需求",
    description="申请开放尚未开放的数据（供需对接）。需登录；每个账号每天最多 20 条。",
)
@audited("demand.create")
def create_demand(
    body: DemandIn, request: Request, principal: AccountDep, engine: EngineDep
) -> JSONResponse:
    row = demands.create(
        engine,
        requester=principal.subject,
        title=body.title,
        description=body.description,
        department=body.department,
        scenario=body.scenario,
    )
    note(request, resource=f"demands/{row.id}")
    return JSONResponse(demands.public_view(row), status_code=201)


@router.get("/demands", response_model=DemandPage, summary="数据需求公开列表")
def list_demands(
    engine: EngineDep,
    status: DemandStatus | None = None,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> JSONResponse:
    rows = demands.listing(engine, status=status, after=_cursor(cursor), limit=limit + 1)
    return _page(rows, demands.public_view, limit)


@router.get("/demands/{demand_id}", response_model=DemandOut, summary="数据需求详情")
def get_demand(demand_id: RowId, engine: EngineDep) -> JSONResponse:
    return JSONResponse(demands.public_view(demands.get(engine, demand_id)))


@router.post(
    "/demands/{demand_id}/second", response_model=DemandOut, summary="附议数据需求（每个账号一次）"
)
@audited("demand.second")
def second_demand(
    demand_id: RowId, request: Request, principal: AccountDep, engine: EngineDep
) -> JSONResponse:
    note(request, resource=f"demands/{demand_id}")
    return JSONResponse(
        demands.public_view(demands.second(engine, demand_id, account=principal.subject))
    )


@router.get("/me/demands", response_model=DemandPage, summary="我提出的数据需求")
def my_demands(principal: AccountDep, engine: EngineDep) -> JSONResponse:
    rows = demands.listing(engine, requester=principal.subject, limit=200)
    return JSONResponse({"data": [demands.public_view(r) for r in rows], "next_cursor": None})


@admin_router.post("/demands/{demand_id}/answer", response_model=DemandOut, summary="答复数据需求")
@audited("demand.answer")
def answer_demand(
    demand_id: RowId, body: DemandAnswer, request: Request, admin: AdminDep, engine: EngineDep
) -> JSONResponse:
    note(request, resource=f"demands/{demand_id}")
    row = demands.answer(engine, demand_id, by=admin.subject, response=body.response)
    return JSONResponse(demands.public_view(row))


@admin_router.post(
    "/demands/{demand_id}/satisfy", response_model=DemandOut, summary="数据需求已满足（指明数据集）"
)
@audited("demand.satisfy")
def satisfy_demand(
    demand_id: RowId,
    body: DemandSatisfy,
    request: Request,
    admin: AdminDep,
    engine: EngineDep,
    hosted_catalog: HostedCatalogDep,
) -> JSONResponse:
    note(request, resource=f"demands/{demand_id}")

    def published(dataset_id: str) -> bool:
        hosted = hosted_catalog.get(dataset_id)
        return hosted is not None and hosted.open_type != "closed"

    row = demands.satisfy(
        engine,
        demand_id,
        by=admin.subject,
        dataset_id=body.dataset_id,
        response=body.response,
        published=published,
    )
    return JSONResponse(demands.public_view(row))


@admin_router.post(
    "/demands/{demand_id}/decline",
    response_model=DemandOut,
    summary="数据需求未能满足（须说明理由）",
)
@audited("demand.decline")
def decline_demand(
    demand_id: RowId, body: DemandDecline, request: Request, admin: AdminDep, engine: EngineDep
) -> JSONResponse:
    note(request, resource=f"demands/{demand_id}")
    row = demands.decline(engine, demand_id, by=admin.subject, reason=body.reason)
    return JSONResponse(demands.public_view(row))


@router.get(
    "/stats/overview",
    response_model=Overview,
    summary="数据驾驶舱总览（公开）",
    description="开放数据集按开放属性、分级、主题、部门、专区的数量；数据需求的受理与满足；纠错处理；"
    "近 30 天每日数据调用量与最常用数据集。只有总数，不含任何应用或个人的数字。",
)
def stats_overview(request: Request) -> JSONResponse:
    return JSONResponse(request.app.state.overview.get())
