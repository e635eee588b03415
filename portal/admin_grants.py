"""Grants in the administrator console (`/admin/grants…`): active, expiring within 7 days,
expired, suspended and revoked, filtered by dataset, app and organization; revocation with a
reason; a direct grant to an authorized operator (授权运营) through the same confirm step
as an approval. Every change goes through policies.grants and writes the API's event."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Request
from sqlmodel import Session, col, select
from starlette.responses import HTMLResponse, Response

from audit.events import audited, note
from auth.models import App, User
from catalog.request_state import HostedCatalogDep, SessionDep
from kernel.problems import Problem, not_found
from policies import grants as service
from policies.models import Grant
from policies.policy_document import proposed_policy
from policies.views import note_grant
from portal import admin_data
from portal.admin_conditions import QUOTA_LABELS, field_choices, form_values, read_conditions
from portal.admin_pages import admin_page, need_admin, next_grant, problem_page, row_id
from portal.console_access import conditional_datasets
from portal.console_data import modes_of
from portal.forms import CheckedForm, see_other, text

router = APIRouter(include_in_schema=False)

DIRECT_DAYS = 365


@router.get("/admin/grants", response_class=HTMLResponse)
def grants_page(request: Request, db: SessionDep) -> Response:
    need_admin(request)
    params = request.query_params
    view = params.get("view") or None
    if view not in admin_data.GRANT_VIEWS:
        view = None
    filters = {
        "dataset_id": (params.get("dataset") or "")[:64],
        "client_id": (params.get("app") or "")[:64],
        "organization": (params.get("organization") or "")[:200],
    }
    rows = admin_data.grants(db, view=view, **{k: v or None for k, v in filters.items()})
    context = {
        "rows": rows,
        "view": view,
        "views": admin_data.GRANT_VIEWS,
        "filters": filters,
        "datasets": conditional_datasets(db),
        "approved": params.get("approved"),
        "revoked": params.get("revoked"),
        "created": params.get("created"),
    }
    return admin_page(request, "admin/grants.html", context, tab="grants")


@router.post("/admin/grants/{grant_id}/revoke", response_class=HTMLResponse)
@audited("grant.revoke")
def revoke(grant_id: str, request: Request, form: CheckedForm, db: SessionDep) -> Response:
    user = need_admin(request)
    found = row_id(grant_id)
    row = db.get(Grant, found) if found is not None else None
    reason = text(form, "reason", limit=500)
    if row is None:
        note(request, detail={"decision": "revoke", "grant_id": grant_id[:20]})
        return problem_page(
            request,
            not_found(f"授权 {grant_id[:20]} 不存在（grant_id）"),
            tab="grants",
            back="/admin/grants",
        )
    before = row.status
    note_grant(request, row, "revoke", reason=reason, previous_status=before, via="web")
    try:
        if not reason:
            raise Problem(400, "invalid_parameter", "撤销须说明理由（reason）", parameter="reason")
        changed = service.revoke(db, grant_row=row, admin_id=user.id, reason=reason)  # type: ignore[arg-type]
    except Problem as problem:
        db.rollback()
        return problem_page(request, problem, tab="grants", back="/admin/grants")
    note_grant(request, changed, "revoke", reason=reason, previous_status=before, via="web")
    return see_other(f"/admin/grants?revoked={changed.id}#grant-{changed.id}")


def _operator_apps(db: Session) -> list[dict[str, Any]]:
    """Every active app with its owner's organization: the direct grant names one."""
    apps = list(db.exec(select(App).where(col(App.is_active).is_(True)).order_by(col(App.name))))
    users = {
        u.id: u for u in db.exec(select(User).where(col(User.id).in_({a.owner_id for a in apps})))
    }
    return [{"app": a, "owner": users.get(a.owner_id)} for a in apps]


def _direct_page(
    request: Request,
    db: Session,
    catalog: Any,
    *,
    values: dict[str, Any],
    error: Problem | None = None,
) -> Response:
    dataset_id = values.get("dataset_id") or ""
    hosted = catalog.get(dataset_id) if dataset_id else None
    if hosted is not None and hosted.open_type != "conditional":
        hosted = None
    context = {
        "apps": _operator_apps(db),
        "datasets": conditional_datasets(db),
        "dataset": hosted,
        "fields": [{"choices": field_choices(f), "requested": True} for f in hosted.fields]
        if hosted
        else [],
        "mode_labels": modes_of(hosted),
        "quota_labels": QUOTA_LABELS,
        "values": values,
        "error": error,
    }
    status = error.status if error is not None else 200
    return admin_page(request, "admin/direct.html", context, status_code=status, tab="grants")


@router.get("/admin/grants/new", response_class=HTMLResponse)
def direct_form(request: Request, db: SessionDep, catalog: HostedCatalogDep) -> Response:
    need_admin(request)
    params = request.query_params
    values = {
        "dataset_id": (params.get("dataset") or "")[:64],
        "client_id": (params.get("client_id") or "")[:64],
        "duration_days": str(DIRECT_DAYS),
    }
    return _direct_page(request, db, catalog, values=values)


def _direct_terms(db: Session, catalog: Any, form: Any) -> tuple[Any, str, str, Any, dict]:
    """The direct grant's app, dataset, purpose and validated terms (the API's checks)."""
    client_id = text(form, "client_id", limit=64)
    dataset_id = text(form, "dataset_id", limit=64)
    purpose = text(form, "purpose", limit=500)
    app = db.get(App, client_id) if client_id else None
    if app is None:
        raise Problem(
            400, "invalid_parameter", "请选择被授权的应用（client_id）", parameter="client_id"
        )
    hosted = catalog.get(dataset_id) if dataset_id else None
    if hosted is None or hosted.open_type != "conditional":
        raise Problem(
            400,
            "invalid_parameter",
            "请选择有条件开放的数据集（dataset_id）",
            parameter="dataset_id",
        )
    if not 2 <= len(purpose) <= 500:
        raise Problem(
            400, "invalid_parameter", "请说明授权用途（purpose，2–500 字）", parameter="purpose"
        )
    overrides = read_conditions(form, hosted)
    terms = service.validate_terms(
        hosted,
        modes=overrides["modes"],
        fields=overrides.get("fields"),
        transforms=overrides.get("transforms"),
        row_filter=overrides.get("row_filter"),
        quotas=overrides.get("quotas"),
        k=overrides.get("k", 5),
        epsilon=overrides.get("epsilon"),
        duration_days=overrides.get("duration_days") or DIRECT_DAYS,
    )
    return hosted, client_id, purpose, terms, overrides


def _values(form: Any) -> dict[str, Any]:
    values: dict[str, Any] = {k: v for k, v in form.multi_items() if isinstance(v, str)}
    values["modes"] = [m for m in form.getlist("modes") if isinstance(m, str)]
    values["fields"] = [f for f in form.getlist("fields") if isinstance(f, str)]
    values["transforms"] = {
        k[len("transform.") :]: v for k, v in values.items() if k.startswith("transform.")
    }
    return values


@router.post("/admin/grants/new/preview", response_class=HTMLResponse)
def direct_preview(
    request: Request, form: CheckedForm, db: SessionDep, catalog: HostedCatalogDep
) -> Response:
    need_admin(request)
    if form.get("step") == "choose":  # the dataset was chosen: show its fields
        return _direct_page(request, db, catalog, values=_values(form))
    try:
        hosted, client_id, purpose, terms, overrides = _direct_terms(db, catalog, form)
    except Problem as problem:
        return _direct_page(request, db, catalog, values=_values(form), error=problem)
    policy = proposed_policy(
        hosted,
        client_id=client_id,
        purpose=purpose,
        terms=terms,
        **next_grant(db, client_id, hosted.id),
    )
    hidden = [("client_id", client_id), ("dataset_id", hosted.id), ("purpose", purpose)]
    context = {
        "row": None,
        "dataset": hosted,
        "policy_json": json.dumps(policy, ensure_ascii=False, indent=2),
        "terms": terms,
        "hidden": hidden + form_values(overrides, hosted),
        "action": "/admin/grants/new",
        "back": f"/admin/grants/new?dataset={hosted.id}&client_id={client_id}",
    }
    return admin_page(request, "admin/confirm.html", context, tab="grants")


@router.post("/admin/grants/new", response_class=HTMLResponse)
@audited("grant.create")
def direct_grant(
    request: Request, form: CheckedForm, db: SessionDep, catalog: HostedCatalogDep
) -> Response:
    user = need_admin(request)
    note(
        request,
        resource=f"datasets/{text(form, 'dataset_id', limit=64)}",
        client_id=text(form, "client_id", limit=64) or None,
        purpose=text(form, "purpose", limit=500) or None,
        detail={"decision": "create", "via": "web"},
    )
    try:
        hosted, client_id, purpose, terms, _ = _direct_terms(db, catalog, form)
    except Problem as problem:
        return _direct_page(request, db, catalog, values=_values(form), error=problem)
    granted = service.grant(
        db,
        admin_id=user.id,  # type: ignore[arg-type]
        client_id=client_id,
        dataset_id=hosted.id,
        purpose=purpose,
        terms=terms,
        note="direct grant",
    )
    note_grant(request, granted, "create")
    return see_other(f"/admin/grants?created={granted.id}#grant-{granted.id}")
