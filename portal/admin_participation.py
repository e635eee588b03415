"""The 纠错 and 数据需求 queues of the administrator console (`/admin/feedback`,
`/admin/demands`): accept / reject / fixed in version N; answer / satisfied by a dataset /
decline. Each form calls the participation workflow the API calls and writes its event."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import APIRouter, Request
from starlette.responses import HTMLResponse, Response

from audit.events import audited, note
from catalog.request_state import EngineDep, HostedCatalogDep
from kernel.problems import Problem
from participation import demands, feedback
from participation.models import DemandStatus, FeedbackStatus
from portal.admin_pages import admin_page, need_admin, problem_page, row_id
from portal.forms import CheckedForm, see_other, text

router = APIRouter(include_in_schema=False)


@router.get("/admin/feedback", response_class=HTMLResponse)
def feedback_queue(request: Request, engine: EngineDep) -> Response:
    need_admin(request)
    status = request.query_params.get("status") or None
    if status not in {s.value for s in FeedbackStatus}:
        status = None
    rows = [feedback.public_view(r) for r in feedback.listing(engine, status=status, limit=200)]
    context = {"rows": rows, "status": status, "done": request.query_params.get("done")}
    return admin_page(request, "admin/feedback.html", context, tab="feedback")


@router.get("/admin/demands", response_class=HTMLResponse)
def demand_queue(request: Request, engine: EngineDep) -> Response:
    need_admin(request)
    status = request.query_params.get("status") or None
    if status not in {s.value for s in DemandStatus}:
        status = None
    rows = [demands.public_view(r) for r in demands.listing(engine, status=status, limit=200)]
    context = {"rows": rows, "status": status, "done": request.query_params.get("done")}
    return admin_page(request, "admin/demands.html", context, tab="demands")


def _act(
    request: Request, kind: str, raw_id: str, change: Callable[[int], object], back: str
) -> Response:
    found = row_id(raw_id)
    note(request, resource=f"{kind}/{raw_id[:20]}", detail={"via": "web"})
    try:
        if found is None:
            raise Problem(404, "not_found", f"编号 {raw_id[:20]} 不存在")
        change(found)
    except Problem as problem:
        return problem_page(request, problem, tab=kind, back=back)
    return see_other(f"{back}?done={found}#{kind}-{found}")


@router.post("/admin/feedback/{feedback_id}/accept", response_class=HTMLResponse)
@audited("feedback.accept")
def accept_feedback(
    feedback_id: str, request: Request, form: CheckedForm, engine: EngineDep
) -> Response:
    user = need_admin(request)
    note_text = text(form, "response", limit=500) or None
    return _act(
        request,
        "feedback",
        feedback_id,
        lambda i: feedback.accept(engine, i, by=user.username, note=note_text),
        "/admin/feedback",
    )


@router.post("/admin/feedback/{feedback_id}/reject", response_class=HTMLResponse)
@audited("feedback.reject")
def reject_feedback(
    feedback_id: str, request: Request, form: CheckedForm, engine: EngineDep
) -> Response:
    user = need_admin(request)
    reason = text(form, "reason", limit=500) or None
    return _act(
        request,
        "feedback",
        feedback_id,
        lambda i: feedback.reject(engine, i, by=user.username, reason=reason),
        "/admin/feedback",
    )


@router.post("/admin/feedback/{feedback_id}/fixed", response_class=HTMLResponse)
@audited("feedback.fixed")
def fixed_feedback(
    feedback_id: str,
    request: Request,
    form: CheckedForm,
    engine: EngineDep,
    catalog: HostedCatalogDep,
) -> Response:
    user = need_admin(request)
    raw = text(form, "version", limit=10)

    def current_version(dataset_id: str) -> int | None:
        hosted = catalog.get(dataset_id)
        return hosted.version if hosted is not None else None

    def change(i: int) -> object:
        if not raw.isdigit():
            raise Problem(
                400, "invalid_parameter", "修正版本（version）须为整数版本号", parameter="version"
            )
        return feedback.mark_fixed(
            engine, i, by=user.username, version=int(raw), current_version=current_version
        )

    return _act(request, "feedback", feedback_id, change, "/admin/feedback")


@router.post("/admin/demands/{demand_id}/answer", response_class=HTMLResponse)
@audited("demand.answer")
def answer_demand(
    demand_id: str, request: Request, form: CheckedForm, engine: EngineDep
) -> Response:
    user = need_admin(request)
    reply = text(form, "response", limit=2000) or None
    return _act(
        request,
        "demands",
        demand_id,
        lambda i: demands.answer(engine, i, by=user.username, response=reply),
        "/admin/demands",
    )


@router.post("/admin/demands/{demand_id}/satisfy", response_class=HTMLResponse)
@audited("demand.satisfy")
def satisfy_demand(
    demand_id: str,
    request: Request,
    form: CheckedForm,
    engine: EngineDep,
    catalog: HostedCatalogDep,
) -> Response:
    user = need_admin(request)
    dataset_id = text(form, "dataset_id", limit=64) or None
    reply = text(form, "response", limit=2000) or None

    def published(name: str) -> bool:
        hosted = catalog.get(name)
        return hosted is not None and hosted.open_type != "closed"

    return _act(
        request,
        "demands",
        demand_id,
        lambda i: demands.satisfy(
            engine, i, by=user.username, dataset_id=dataset_id, response=reply, published=published
        ),
        "/admin/demands",
    )


@router.post("/admin/demands/{demand_id}/decline", response_class=HTMLResponse)
@audited("demand.decline")
def decline_demand(
    demand_id: str, request: Request, form: CheckedForm, engine: EngineDep
) -> Response:
    user = need_admin(request)
    reason = text(form, "reason", limit=2000) or None
    return _act(
        request,
        "demands",
        demand_id,
        lambda i: demands.decline(engine, i, by=user.username, reason=reason),
        "/admin/demands",
    )
