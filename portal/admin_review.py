"""The review queue of the administrator console (`/admin`, `/admin/applications…`):
each application beside the app, its owner's organization and account, the fields it asks
for with their level and default transform, and the applicant's history; approval with
conditions through a confirm step that shows the exact `policy` the app will get, or
rejection with a reason. Approving and rejecting call the API's service functions and
write the API's audit events (`application.approve`, `application.reject`)."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Request
from sqlmodel import Session, col, func, select
from starlette.responses import HTMLResponse, Response

from audit.events import audited, note
from catalog.hosted import HostedDataset
from catalog.request_state import HostedCatalogDep, SessionDep
from kernel.problems import Problem, not_found
from operation.models import Product, Scenario
from operation.products import CATEGORY_LABELS
from participation.models import Demand, Feedback
from policies import grants as service
from policies.models import Application, Grant, Notice
from policies.policy_document import proposed_policy
from policies.views import note_application, note_grant
from portal import admin_data
from portal.admin_conditions import (
    QUOTA_LABELS,
    field_choices,
    form_values,
    read_conditions,
)
from portal.admin_pages import admin_page, need_admin, next_grant, problem_page, row_id
from portal.console_data import modes_of
from portal.field_preview import preview
from portal.forms import CheckedForm, see_other, text

router = APIRouter(include_in_schema=False)


@router.get("/admin", response_class=HTMLResponse)
def admin_home(request: Request, db: SessionDep) -> Response:
    need_admin(request)

    def count(query: Any) -> int:
        return int(db.exec(query).one())

    figures = {
        "pending": count(
            select(func.count()).select_from(Application).where(Application.status == "pending")
        ),
        "active": count(select(func.count()).select_from(Grant).where(Grant.status == "active")),
        "feedback": count(
            select(func.count()).select_from(Feedback).where(Feedback.status == "submitted")
        ),
        "demands": count(select(func.count()).select_from(Demand).where(Demand.status == "open")),
        "notices": count(
            select(func.count()).select_from(Notice).where(col(Notice.read_at).is_(None))
        ),
    }
    expiring = [g for g in admin_data.grants(db, view="expiring")]
    context = {
        "figures": figures,
        "queue": admin_data.applications(db)[:10],
        "expiring": expiring[:10],
    }
    return admin_page(request, "admin/home.html", context, tab="home")


@router.get("/admin/applications", response_class=HTMLResponse)
def review_queue(request: Request, db: SessionDep) -> Response:
    need_admin(request)
    status = request.query_params.get("status", "pending")
    if status not in ("pending", "approved", "rejected", "all"):
        status = "pending"
    rows = admin_data.applications(db, status=None if status == "all" else status)
    return admin_page(
        request, "admin/applications.html", {"rows": rows, "status": status}, tab="applications"
    )


def _application(db: Session, raw_id: str) -> Application:
    found = row_id(raw_id)
    row = db.get(Application, found) if found is not None else None
    if row is None:
        raise not_found(f"申请 {raw_id[:20]} 不存在（application_id）")
    return row


def _hosted(catalog: Any, dataset_id: str) -> HostedDataset:
    hosted = catalog.get(dataset_id)
    if hosted is None or hosted.open_type == "closed":
        raise not_found(f"数据集 {dataset_id} 不存在或不予开放")
    return hosted


def _detail_page(
    request: Request,
    db: Session,
    catalog: Any,
    row: Application,
    *,
    values: dict[str, Any] | None = None,
    error: Problem | None = None,
) -> Response:
    hosted = catalog.get(row.dataset_id)
    info = admin_data.applications(db, status=row.status)
    entry = next((a for a in info if a["row"].id == row.id), None)
    requested = set(row.fields) if row.fields is not None else None
    fields = []
    if hosted is not None:
        for f in hosted.fields:
            fields.append(
                {
                    "preview": preview(f),
                    "choices": field_choices(f),
                    "requested": requested is None or f.name in requested,
                }
            )
    context = {
        "entry": entry,
        "row": row,
        "dataset": hosted,
        "fields": fields,
        "history": admin_data.history(db, row),
        "scenario": db.get(Scenario, row.scenario_id) if row.scenario_id else None,
        "product": db.get(Product, row.product_id) if row.product_id else None,
        "categories": CATEGORY_LABELS,
        "mode_labels": modes_of(hosted),
        "quota_labels": QUOTA_LABELS,
        "values": values or {},
        "error": error,
    }
    status = error.status if error is not None else 200
    return admin_page(
        request, "admin/application.html", context, status_code=status, tab="applications"
    )


@router.get("/admin/applications/{application_id}", response_class=HTMLResponse)
def application_page(
    application_id: str, request: Request, db: SessionDep, catalog: HostedCatalogDep
) -> Response:
    need_admin(request)
    try:
        row = _application(db, application_id)
    except Problem as problem:
        return problem_page(request, problem, tab="applications", back="/admin/applications")
    return _detail_page(request, db, catalog, row)


def _submitted(form: Any) -> dict[str, Any]:
    """What the reviewer typed, to fill the form in again after a refusal."""
    return {
        "modes": [m for m in form.getlist("modes") if isinstance(m, str)],
        "fields": [f for f in form.getlist("fields") if isinstance(f, str)],
        "transforms": {
            k[len("transform.") :]: v
            for k, v in form.multi_items()
            if k.startswith("transform.") and isinstance(v, str)
        },
        **{
            k: v
            for k, v in form.multi_items()
            if isinstance(v, str)
            and (k in ("row_filter", "k", "epsilon", "duration_days") or k.startswith("quota."))
        },
    }


@router.post("/admin/applications/{application_id}/preview", response_class=HTMLResponse)
def approval_preview(
    application_id: str,
    request: Request,
    form: CheckedForm,
    db: SessionDep,
    catalog: HostedCatalogDep,
) -> Response:
    """The confirm step: the terms validated by the service, the policy the app will read;
    nothing is saved until the reviewer confirms."""
    need_admin(request)
    try:
        row = _application(db, application_id)
    except Problem as problem:
        return problem_page(request, problem, tab="applications", back="/admin/applications")
    try:
        hosted = _hosted(catalog, row.dataset_id)
        overrides = read_conditions(form, hosted)
        terms = service.approval_terms(application=row, hosted=hosted, overrides=overrides)
    except Problem as problem:
        return _detail_page(request, db, catalog, row, values=_submitted(form), error=problem)
    policy = proposed_policy(
        hosted,
        client_id=row.client_id,
        purpose=row.purpose,
        terms=terms,
        **next_grant(db, row.client_id, hosted.id),
    )
    context = {
        "row": row,
        "dataset": hosted,
        "policy_json": json.dumps(policy, ensure_ascii=False, indent=2),
        "terms": terms,
        "hidden": form_values(overrides, hosted),
        "action": f"/admin/applications/{row.id}/approve",
        "back": f"/admin/applications/{row.id}",
    }
    return admin_page(request, "admin/confirm.html", context, tab="applications")


@router.post("/admin/applications/{application_id}/approve", response_class=HTMLResponse)
@audited("application.approve")
def approve(
    application_id: str,
    request: Request,
    form: CheckedForm,
    db: SessionDep,
    catalog: HostedCatalogDep,
) -> Response:
    user = need_admin(request)
    try:
        row = _application(db, application_id)
    except Problem as problem:
        note(request, detail={"decision": "approve", "application_id": application_id[:20]})
        return problem_page(request, problem, tab="applications", back="/admin/applications")
    note_application(request, row, "approve")
    note(request, detail={"via": "web"})
    try:
        hosted = _hosted(catalog, row.dataset_id)
        granted = service.approve(
            db,
            application=row,
            admin_id=user.id,  # type: ignore[arg-type]
            hosted=hosted,
            overrides=read_conditions(form, hosted),
        )
    except Problem as problem:
        db.rollback()
        return _detail_page(request, db, catalog, row, values=_submitted(form), error=problem)
    note_grant(request, granted, "approve", application_id=row.id, status=row.status)
    return see_other(f"/admin/grants?approved={granted.id}#grant-{granted.id}")


@router.post("/admin/applications/{application_id}/reject", response_class=HTMLResponse)
@audited("application.reject")
def reject(
    application_id: str,
    request: Request,
    form: CheckedForm,
    db: SessionDep,
    catalog: HostedCatalogDep,
) -> Response:
    user = need_admin(request)
    try:
        row = _application(db, application_id)
    except Problem as problem:
        note(request, detail={"decision": "reject", "application_id": application_id[:20]})
        return problem_page(request, problem, tab="applications", back="/admin/applications")
    reason = text(form, "reason", limit=500)
    note_application(request, row, "reject")
    note(request, detail={"reason": reason, "via": "web"})
    try:
        if not reason:
            raise Problem(400, "invalid_parameter", "驳回须说明理由（reason）", parameter="reason")
        service.reject(db, application=row, admin_id=user.id, reason=reason)  # type: ignore[arg-type]
    except Problem as problem:
        db.rollback()
        return _detail_page(request, db, catalog, row, error=problem)
    note(request, detail={"status": row.status})
    return see_other(f"/admin/applications?rejected={row.id}")
