"""Applications and grants over HTTP: developers apply; data_admins approve, reject, grant
directly (授权运营) and revoke. Responses are the rows read through `policies.schemas`."""

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field
from sqlmodel import Session, col, select

from audit.events import audited, note
from auth.models import App, Role
from auth.principal import Principal, require_role
from catalog.hosted import HostedCatalog, HostedDataset
from catalog.request_state import HostedCatalogDep, SessionDep
from catalog.row_id import RowId
from kernel.clock import utcnow
from kernel.problem_schema import problem_responses
from kernel.problems import Problem, not_found
from kernel.responses import JSONResponse, answer
from policies import grants as service
from policies.models import Application, Grant, Notice
from policies.schemas import (
    ApplicationPage,
    ApplicationSummary,
    GrantPage,
    GrantSummary,
    NoticePage,
    NoticeSummary,
)


class NewApplication(BaseModel):
    client_id: str = Field(max_length=64)
    dataset_id: str = Field(max_length=64)
    purpose: str = Field(min_length=2, max_length=500)
    modes: list[str] = Field(min_length=1, max_length=3)
    fields: list[str] | None = Field(default=None, max_length=200)
    duration_days: int = Field(default=90, ge=1, le=3650)
    scenario_id: RowId | None = Field(
        default=None, description="应用场景编号（授权运营，GET /api/v1/scenarios 或新登记的场景）"
    )
    product_id: RowId | None = Field(
        default=None, description="数据产品编号（授权运营：该应用的调用按此产品计量）"
    )


class Conditions(BaseModel):
    """What a data_admin may set when approving (every member optional)."""

    fields: list[str] | None = Field(default=None, max_length=200)
    transforms: dict[str, str] | None = None
    modes: list[str] | None = Field(default=None, max_length=3)
    row_filter: dict[str, Any] | None = None
    duration_days: int | None = Field(default=None, ge=1, le=3650)
    quotas: dict[str, int] | None = None
    k: int | None = None
    epsilon: float | None = None
    # ε one aggregate query may spend; defaults 0.01 and min(1, epsilon).
    epsilon_floor: float | None = None
    epsilon_ceiling: float | None = None


class DirectGrant(Conditions):
    client_id: str = Field(max_length=64)
    dataset_id: str = Field(max_length=64)
    purpose: str = Field(min_length=2, max_length=500)
    modes: list[str] = Field(min_length=1, max_length=3)  # type: ignore[assignment]


class Reason(BaseModel):
    reason: str = Field(min_length=1, max_length=500)


# The evidence of a transition (contract-audit §8.2): the actor is the signed-in account
# (`user:<name>`); the event names the app (client_id), the dataset (resource), the purpose
# and, in `detail`, the decision and the state it led to. A refused transition (409, 404…)
# says as much of this as was known before it was refused.


def note_application(request: Request, row: Application, decision: str) -> None:
    note(
        request,
        resource=f"datasets/{row.dataset_id}",
        client_id=row.client_id,
        purpose=row.purpose,
        detail={
            "decision": decision,
            "application_id": row.id,
            "modes": list(row.modes),
            "fields": list(row.fields) if row.fields is not None else None,
            "duration_days": row.duration_days,
            "scenario_id": row.scenario_id,
            "product_id": row.product_id,
        },
    )


def note_grant(request: Request, grant: Grant, decision: str, **detail: Any) -> None:
    """The grant (and version) an administrative change produced, for its audit event."""
    note(
        request,
        resource=f"datasets/{grant.dataset_id}",
        client_id=grant.client_id,
        grant_id=grant.id,
        grant_version=grant.version,
        purpose=grant.purpose,
        detail={
            "decision": decision,
            "grant_status": grant.status,
            "modes": list(grant.modes),
            "scenario_id": grant.scenario_id,
            "product_id": grant.product_id,
            **detail,
        },
    )


router = APIRouter(prefix="/api/v1", tags=["grants"])

Developer = Annotated[Principal, Depends(require_role(Role.developer))]
DataAdmin = Annotated[Principal, Depends(require_role(Role.data_admin))]


def dataset(hosted_catalog: HostedCatalog, dataset_id: str) -> HostedDataset:
    hosted = hosted_catalog.get(dataset_id)
    if hosted is None or hosted.open_type == "closed":
        raise not_found(f"数据集 {dataset_id} 不存在")
    return hosted


def existing_app(db: Session, client_id: str) -> App:
    app = db.get(App, client_id)
    if app is None:
        raise Problem(400, "invalid_parameter", f"应用 {client_id} 不存在", parameter="client_id")
    return app


def application_of(db: Session, application_id: int) -> Application:
    row = db.get(Application, application_id)
    if row is None:
        raise not_found(f"申请 {application_id} 不存在")
    return row


@router.post(
    "/applications",
    status_code=201,
    summary="申请使用有条件开放数据",
    response_model=ApplicationSummary,
    responses=problem_responses(400, 401, 403, 404, 413, 429, 503),
)
@audited("application.create")
def apply(
    body: NewApplication,
    principal: Developer,
    db: SessionDep,
    catalog: HostedCatalogDep,
    request: Request,
) -> JSONResponse:
    note(
        request,
        resource=f"datasets/{body.dataset_id}",
        client_id=body.client_id,
        purpose=body.purpose,
        detail={"decision": "submit"},
    )
    app = existing_app(db, body.client_id)
    if app.owner_id != principal.user_id:
        raise Problem(403, "forbidden", "只能为自己的应用申请")
    row = service.apply(
        db,
        applicant_id=principal.user_id,
        client_id=app.client_id,  # type: ignore[arg-type]
        hosted=dataset(catalog, body.dataset_id),
        purpose=body.purpose,
        modes=body.modes,
        fields=body.fields,
        duration_days=body.duration_days,
        scenario_id=body.scenario_id,
        product_id=body.product_id,
    )
    note_application(request, row, "submit")
    note(request, detail={"status": row.status})
    return answer(ApplicationSummary, row, status_code=201)


@router.get(
    "/applications",
    summary="我的用数申请",
    response_model=ApplicationPage,
    responses=problem_responses(401, 403, 429, 503),
)
def my_applications(principal: Developer, db: SessionDep) -> dict[str, Any]:
    rows = db.exec(
        select(Application)
        .where(Application.applicant_id == principal.user_id)
        .order_by(col(Application.id).desc())
    ).all()
    return {"data": rows, "next_cursor": None}


@router.get(
    "/applications/{application_id}",
    summary="查看我的一条申请",
    response_model=ApplicationSummary,
    responses=problem_responses(400, 401, 403, 404, 429, 503),
)
def my_application(application_id: RowId, principal: Developer, db: SessionDep) -> Application:
    row = application_of(db, application_id)
    if row.applicant_id != principal.user_id:
        raise not_found(f"申请 {application_id} 不存在")
    return row


@router.get(
    "/admin/applications",
    summary="待审核的申请",
    response_model=ApplicationPage,
    responses=problem_responses(400, 401, 403, 429, 503),
)
def review_queue(
    principal: DataAdmin,
    db: SessionDep,
    status: Annotated[str | None, Query(pattern="^(pending|approved|rejected)$")] = None,
) -> dict[str, Any]:
    query = select(Application).order_by(Application.id)
    if status:
        query = query.where(Application.status == status)
    rows = db.exec(query).all()
    return {"data": rows, "next_cursor": None}


@router.post(
    "/admin/applications/{application_id}/approve",
    summary="批准申请（可附条件）",
    response_model=GrantSummary,
    responses=problem_responses(400, 401, 403, 404, 409, 413, 429, 503),
)
@audited("application.approve")
def approve(
    application_id: RowId,
    body: Conditions,
    principal: DataAdmin,
    db: SessionDep,
    catalog: HostedCatalogDep,
    request: Request,
) -> JSONResponse:
    row = application_of(db, application_id)
    note_application(request, row, "approve")
    granted = service.approve(
        db,
        application=row,
        admin_id=principal.user_id,  # type: ignore[arg-type]
        hosted=dataset(catalog, row.dataset_id),
        overrides=body.model_dump(exclude_none=True),
    )
    note_grant(request, granted, "approve", application_id=row.id, status=row.status)
    return answer(GrantSummary, granted)


@router.post(
    "/admin/applications/{application_id}/reject",
    summary="驳回申请（须说明原因）",
    response_model=ApplicationSummary,
    responses=problem_responses(400, 401, 403, 404, 409, 413, 429, 503),
)
@audited("application.reject")
def reject(
    application_id: RowId, body: Reason, principal: DataAdmin, db: SessionDep, request: Request
) -> JSONResponse:
    row = application_of(db, application_id)
    note_application(request, row, "reject")
    note(request, detail={"reason": body.reason})
    service.reject(
        db,
        application=row,
        admin_id=principal.user_id,  # type: ignore[arg-type]
        reason=body.reason,
    )
    note(request, detail={"status": row.status})
    return answer(ApplicationSummary, row)


@router.post(
    "/admin/grants",
    status_code=201,
    summary="直接授权（授权运营）",
    response_model=GrantSummary,
    responses=problem_responses(400, 401, 403, 404, 409, 413, 429, 503),
)
@audited("grant.create")
def direct(
    body: DirectGrant,
    principal: DataAdmin,
    db: SessionDep,
    catalog: HostedCatalogDep,
    request: Request,
) -> JSONResponse:
    note(
        request,
        resource=f"datasets/{body.dataset_id}",
        client_id=body.client_id,
        purpose=body.purpose,
        detail={"decision": "create"},
    )
    existing_app(db, body.client_id)
    hosted = dataset(catalog, body.dataset_id)
    if hosted.open_type != "conditional":
        raise Problem(
            400, "invalid_parameter", "只有有条件开放数据需要授权", parameter="dataset_id"
        )
    terms = service.validate_terms(
        hosted,
        modes=body.modes,
        fields=body.fields,
        transforms=body.transforms,
        row_filter=body.row_filter,
        quotas=body.quotas,
        k=body.k if body.k is not None else 5,
        epsilon=body.epsilon,
        duration_days=body.duration_days or 365,
        epsilon_floor=body.epsilon_floor,
        epsilon_ceiling=body.epsilon_ceiling,
    )
    granted = service.grant(
        db,
        admin_id=principal.user_id,  # type: ignore[arg-type]
        client_id=body.client_id,
        dataset_id=hosted.id,
        purpose=body.purpose,
        terms=terms,
        note="direct grant",
    )
    note_grant(request, granted, "create")
    return answer(GrantSummary, granted, status_code=201)


@router.get(
    "/admin/grants",
    summary="全部授权",
    response_model=GrantPage,
    responses=problem_responses(401, 403, 429, 503),
)
def grants(principal: DataAdmin, db: SessionDep) -> dict[str, Any]:
    rows = db.exec(select(Grant).order_by(Grant.id)).all()
    return {"data": rows, "next_cursor": None}


def change_status(
    change: Callable[..., Grant],
    decision: str,
    grant_id: int,
    body: Reason,
    principal: Principal,
    db: Session,
    request: Request,
) -> Grant:
    """Revoke or reinstate a grant; the change is read on the very next request."""
    row = db.get(Grant, grant_id)
    if row is None:
        raise not_found(f"授权 {grant_id} 不存在")
    before = row.status
    note_grant(request, row, decision, reason=body.reason, previous_status=before)
    changed = change(db, grant_row=row, admin_id=principal.user_id, reason=body.reason)
    note_grant(request, changed, decision, reason=body.reason, previous_status=before)
    return changed


@router.post(
    "/admin/grants/{grant_id}/revoke",
    summary="撤销授权（立即生效）",
    response_model=GrantSummary,
    responses=problem_responses(400, 401, 403, 404, 409, 413, 429, 503),
)
@audited("grant.revoke")
def revoke(
    grant_id: RowId, body: Reason, principal: DataAdmin, db: SessionDep, request: Request
) -> JSONResponse:
    changed = change_status(service.revoke, "revoke", grant_id, body, principal, db, request)
    return answer(GrantSummary, changed)


@router.post(
    "/admin/grants/{grant_id}/reinstate",
    summary="解除授权暂停（立即生效）",
    response_model=GrantSummary,
    responses=problem_responses(400, 401, 403, 404, 409, 413, 429, 503),
)
@audited("grant.reinstate")
def reinstate(
    grant_id: RowId, body: Reason, principal: DataAdmin, db: SessionDep, request: Request
) -> JSONResponse:
    changed = change_status(service.reinstate, "reinstate", grant_id, body, principal, db, request)
    return answer(GrantSummary, changed)


@router.get(
    "/admin/notices",
    summary="数据管理员通知（如授权被暂停）",
    response_model=NoticePage,
    responses=problem_responses(400, 401, 403, 429, 503),
)
def notices(
    principal: DataAdmin,
    db: SessionDep,
    unread: Annotated[bool, Query(description="only notices not yet marked read")] = False,
) -> dict[str, Any]:
    query = select(Notice).order_by(col(Notice.id).desc())
    if unread:
        query = query.where(col(Notice.read_at).is_(None))
    rows = db.exec(query.limit(500)).all()
    return {"data": rows, "next_cursor": None}


@router.post(
    "/admin/notices/{notice_id}/read",
    summary="将通知标为已读",
    response_model=NoticeSummary,
    responses=problem_responses(400, 401, 403, 404, 429, 503),
)
@audited("notice.read")
def read_notice(notice_id: RowId, principal: DataAdmin, db: SessionDep) -> JSONResponse:
    row = db.get(Notice, notice_id)
    if row is None:
        raise not_found(f"通知 {notice_id} 不存在")
    if row.read_at is None:
        row.read_at = utcnow()
        row.read_by = principal.user_id
        db.add(row)
        db.commit()
        db.refresh(row)
    return answer(NoticeSummary, row)
