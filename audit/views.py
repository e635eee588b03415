"""The auditor's API (审计员). Every route here is read-only and itself audited; there is
no route that changes or deletes an event, for any role. Answers pass through the response
models of `audit.schemas`; the engine and the signer are the app's (`app.state`)."""

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import PlainTextResponse, StreamingResponse

from audit.bundle import ChainGapError, Progress, bundle_lines, plan
from audit.canonical import now_ts
from audit.checkpoints import all_checkpoints
from audit.events import audited, note
from audit.proofs import inclusion_proof
from audit.schemas import (
    JSONL_BUNDLE,
    PEM,
    AuditEvent,
    Checkpoints,
    EventPage,
    InclusionProof,
    Stats,
    VerifyReport,
)
from audit.search import EventQuery, get_event, parse_moment, search
from audit.signing import Signer, public_pem
from audit.stats import default_since, stats
from audit.verify import verify
from auth.models import Role
from auth.principal import Principal, require_role
from catalog.request_state import EngineDep
from catalog.row_id import BigRowId, RowId
from kernel.problem_schema import problem_responses


def _moment(value: str | None, *, end: bool = False) -> str | None:
    if value is None:
        return None
    try:
        return parse_moment(value, end=end)
    except ValueError as exc:
        raise HTTPException(400, str(exc)) from None


router = APIRouter(prefix="/api/v1/audit", tags=["audit"])

Auditor = Annotated[Principal, Depends(require_role(Role.auditor))]


def signer_of(request: Request) -> Signer:
    return request.app.state.audit_signer


SignerDep = Annotated[Signer, Depends(signer_of)]


@router.get(
    "/events",
    summary="检索审计事件（最新在前）",
    response_model=EventPage,
    responses=problem_responses(400, 401, 403, 429, 503),
)
@audited("audit.search")
def events(
    _: Auditor,
    engine: EngineDep,
    action: str | None = None,
    client_id: str | None = None,
    actor: str | None = None,
    dataset: str | None = None,
    outcome: Annotated[str | None, Query(pattern="^(allowed|denied|error)$")] = None,
    request_id: str | None = None,
    grant_id: RowId | None = None,
    since: str | None = None,
    until: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: BigRowId | None = None,
) -> dict[str, Any]:
    query = EventQuery(
        action=action,
        client_id=client_id,
        actor=actor,
        dataset=dataset,
        outcome=outcome,
        request_id=request_id,
        grant_id=grant_id,
        since=_moment(since),
        until=_moment(until, end=True),
        before_seq=cursor,
        limit=limit,
    )
    page, next_cursor = search(engine, query)
    return {"data": page, "next_cursor": next_cursor}


@router.get(
    "/events/{seq}",
    summary="查看一条审计事件",
    response_model=AuditEvent,
    responses=problem_responses(400, 401, 403, 404, 429, 503),
)
@audited("audit.read")
def event(seq: BigRowId, _: Auditor, engine: EngineDep) -> dict[str, Any]:
    found = get_event(engine, seq)
    if found is None:
        raise HTTPException(404, f"审计事件 {seq} 不存在")
    return found


@router.get(
    "/events/{seq}/proof",
    summary="单条事件相对已签名检查点的 Merkle 包含证明（RFC 9162）",
    response_model=InclusionProof,
    responses=problem_responses(400, 401, 403, 404, 409, 429, 503),
)
@audited("audit.proof")
def proof(
    seq: BigRowId,
    _: Auditor,
    engine: EngineDep,
    signer: SignerDep,
    tree_size: BigRowId | None = None,
) -> dict[str, Any]:
    document = inclusion_proof(engine, seq, tree_size)
    return {**document, "public_key": public_pem(signer.public_key)}


@router.get(
    "/export",
    summary="导出一段时间的审计事件（JSONL 与签名清单，可离线核验）",
    response_class=StreamingResponse,
    responses={200: JSONL_BUNDLE, **problem_responses(400, 401, 403, 409, 429, 503)},
)
@audited("audit.export")
def export(
    request: Request,
    _: Auditor,
    engine: EngineDep,
    signer: SignerDep,
    since: str | None = None,
    until: str | None = None,
) -> StreamingResponse:
    start, end = _moment(since), _moment(until, end=True)
    try:
        span = plan(engine, since=start, until=end)
    except ChainGapError:
        raise HTTPException(409, "审计链在导出范围之前不完整，请先运行校验") from None
    progress = Progress()
    note(request, stream=progress, detail={"since": start, "until": end})
    return StreamingResponse(
        bundle_lines(engine, signer, span, progress),
        media_type="application/jsonl; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="audit-export.jsonl"'},
    )


@router.get(
    "/stats",
    summary="审计统计：计数、调用最多的应用、拒绝与异常标记",
    response_model=Stats,
    responses=problem_responses(400, 401, 403, 429, 503),
)
@audited("audit.stats")
def dashboard(
    _: Auditor,
    engine: EngineDep,
    since: str | None = None,
    until: str | None = None,
    top: Annotated[int, Query(ge=1, le=100)] = 10,
) -> dict[str, Any]:
    end = _moment(until, end=True) or now_ts()
    start = _moment(since) or default_since(end)
    if start > end:
        raise HTTPException(400, "since 不能晚于 until")
    return stats(engine, since=start, until=end, top=top)


@router.get(
    "/verify",
    summary="重算哈希链并核对每个检查点",
    response_model=VerifyReport,
    responses=problem_responses(401, 403, 429, 503),
)
@audited("audit.verify")
def verify_log(_: Auditor, engine: EngineDep, signer: SignerDep) -> VerifyReport:
    return VerifyReport.model_validate(verify(engine, signer.verify_keys))


@router.get(
    "/checkpoints",
    summary="已签名的检查点（按时间先后）",
    response_model=Checkpoints,
    responses=problem_responses(401, 403, 429, 503),
)
@audited("audit.checkpoints")
def checkpoints(_: Auditor, engine: EngineDep, signer: SignerDep) -> dict[str, Any]:
    return {"public_key": public_pem(signer.public_key), "data": all_checkpoints(engine)}


@router.get(
    "/public-key",
    summary="签署检查点与导出的 Ed25519 公钥（PEM）",
    response_class=PlainTextResponse,
    responses={200: PEM, **problem_responses(401, 429)},
)
def public_key(signer: SignerDep) -> PlainTextResponse:
    return PlainTextResponse(public_pem(signer.public_key))
