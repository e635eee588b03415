"""Developer center: applying for conditional data and watching what came of it
(`/console/apply`, `/console/applications`, `/console/grants`, `/console/usage`).

An application goes through the API's service (policies.grants.apply: the same checks,
the same Chinese refusals) and writes the API's `application.create` event.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from sqlmodel import Session, col, select
from starlette.responses import HTMLResponse, Response

from audit.events import audited, note
from auth import apps as app_service
from auth.models import User
from catalog.hosted import HostedDataset
from catalog.models import Dataset
from catalog.request_state import HostedCatalogDep, SessionDep
from kernel.problems import Problem
from operation import products as operation
from policies import grants as grant_service
from policies.views import note_application
from portal.console_apps import console_page
from portal.console_data import applications, grants, modes_of, my_apps, usage_by_day
from portal.field_preview import preview
from portal.forms import CheckedForm, need_account, see_other, text

router = APIRouter(include_in_schema=False)

DEFAULT_DAYS = 90


def conditional_datasets(db: Session) -> list[Dataset]:
    return list(
        db.exec(
            select(Dataset).where(Dataset.open_type == "conditional").order_by(col(Dataset.title))
        )
    )


def _apply_page(
    request: Request,
    db: Session,
    catalog: Any,
    user: User,
    *,
    dataset_id: str | None,
    values: dict[str, Any],
    error: str | None = None,
    status_code: int = 200,
) -> Response:
    hosted: HostedDataset | None = catalog.get(dataset_id) if dataset_id else None
    if hosted is not None and hosted.open_type != "conditional":
        hosted = None
    context = {
        "datasets": conditional_datasets(db),
        "apps": list(my_apps(db, user).values()),
        "dataset": hosted,
        "fields": [preview(f) for f in hosted.fields] if hosted else [],
        "mode_labels": modes_of(hosted),
        "scenarios": operation.approved_scenarios(db),
        "categories": operation.CATEGORY_LABELS,
        "products": operation.products_on(db, hosted.id) if hosted else [],
        "values": values,
        "error": error,
    }
    return console_page(
        request, "console/apply.html", context, status_code=status_code, tab="apply"
    )


@router.get("/console/apply", response_class=HTMLResponse)
def apply_page(request: Request, db: SessionDep, catalog: HostedCatalogDep) -> Response:
    user = need_account(request, role="developer")
    params = request.query_params
    values = {
        "client_id": params.get("client_id", ""),
        "modes": ["records", "call"],  # whichever of them the dataset or service has
        "fields": None,  # None: every field ticked
        "purpose": "",
        "duration_days": DEFAULT_DAYS,
        "scenario_id": "",
        "scenario_name": "",
        "scenario_category": "industry",
        "product_id": "",
    }
    dataset_id = (params.get("dataset") or "")[:64] or None
    return _apply_page(request, db, catalog, user, dataset_id=dataset_id, values=values)


@router.post("/console/applications", response_class=HTMLResponse)
@audited("application.create")
def submit_application(
    request: Request, form: CheckedForm, db: SessionDep, catalog: HostedCatalogDep
) -> Response:
    user = need_account(request, role="developer")
    dataset_id = text(form, "dataset_id", limit=64)
    client_id = text(form, "client_id", limit=64)
    purpose = text(form, "purpose", limit=600)
    modes = [m for m in form.getlist("modes") if isinstance(m, str)][:3]
    fields = [f for f in form.getlist("fields") if isinstance(f, str)][:200]
    raw_days = text(form, "duration_days", limit=10)
    values = {
        "client_id": client_id,
        "modes": modes,
        "fields": fields,
        "purpose": purpose,
        "duration_days": raw_days,
        "scenario_id": text(form, "scenario_id", limit=12),
        "scenario_name": text(form, "scenario_name", limit=200),
        "scenario_category": text(form, "scenario_category", limit=32),
        "product_id": text(form, "product_id", limit=12),
    }
    note(
        request,
        resource=f"datasets/{dataset_id}",
        client_id=client_id or None,
        purpose=purpose or None,
        detail={"decision": "submit", "via": "web"},
    )

    def again(message: str, status: int) -> Response:
        return _apply_page(
            request,
            db,
            catalog,
            user,
            dataset_id=dataset_id,
            values=values,
            error=message,
            status_code=status,
        )

    try:
        days = int(raw_days)
    except ValueError:
        return again("申请期限须为 1–3650 之间的整数天数", 400)
    if not 1 <= days <= 3650:
        return again("申请期限须为 1–3650 之间的整数天数", 400)
    if not modes:
        return again("请至少选择一种使用方式", 400)
    if not fields:
        return again("请至少选择一个字段", 400)
    hosted = catalog.get(dataset_id) if dataset_id else None
    if hosted is None or hosted.open_type == "closed":
        return again("请选择要申请的数据集", 400)
    try:
        app = app_service.own_app(db, owner=user, client_id=client_id)
        scenario_id, product_id = _operation_choice(db, user, values)
        row = grant_service.apply(
            db,
            applicant_id=user.id,  # type: ignore[arg-type]
            client_id=app.client_id,
            hosted=hosted,
            purpose=purpose,
            modes=modes,
            # every field ticked: the application names none (all, as the API's absent list)
            fields=None if set(fields) == {f.name for f in hosted.fields} else fields,
            duration_days=days,
            scenario_id=scenario_id,
            product_id=product_id,
        )
    except Problem as problem:
        db.rollback()  # a scenario registered with a refused application goes with it
        if problem.code == "not_found":
            return again("请选择您自己的应用", 400)
        return again(problem.detail, problem.status)
    note_application(request, row, "submit")
    note(request, detail={"status": row.status})
    return see_other(f"/console/applications?submitted={row.id}")


def _choice(raw: str, what: str) -> int | None:
    if not raw:
        return None
    if not raw.isdigit() or not 1 <= int(raw) < 2**31:
        raise Problem(400, "invalid_parameter", f"请从列表中选择{what}")
    return int(raw)


def _operation_choice(
    db: Session, user: User, values: dict[str, Any]
) -> tuple[int | None, int | None]:
    """The scenario (an approved one, or a new one registered with this application, in
    its transaction) and the product the application names."""
    product_id = _choice(values["product_id"], "数据产品")
    if values["scenario_id"] != "new":
        return _choice(values["scenario_id"], "应用场景"), product_id
    scenario = operation.scenario_draft(
        db,
        name=values["scenario_name"],
        category=values["scenario_category"],
        organization=user.organization or user.username,
    )
    db.add(scenario)
    db.flush()
    return scenario.id, product_id


@router.get("/console/applications", response_class=HTMLResponse)
def applications_page(request: Request, db: SessionDep) -> Response:
    user = need_account(request, role="developer")
    submitted = request.query_params.get("submitted")
    context = {"applications": applications(db, user), "submitted": submitted}
    return console_page(request, "console/applications.html", context, tab="applications")


@router.get("/console/grants", response_class=HTMLResponse)
def grants_page(request: Request, db: SessionDep) -> Response:
    user = need_account(request, role="developer")
    return console_page(request, "console/grants.html", {"grants": grants(db, user)}, tab="grants")


@router.get("/console/usage", response_class=HTMLResponse)
def usage_page(request: Request, db: SessionDep) -> Response:
    user = need_account(request, role="developer")
    days = usage_by_day(db, user)
    peak = max([d["requests"] for d in days] + [1])
    chart = [{"name": d["day"][5:], "value": d["requests"]} for d in days]
    context = {
        "days": days,
        "peak": peak,
        "total": sum(d["requests"] for d in days),
        "chart": chart,
    }
    return console_page(request, "console/usage.html", context, tab="usage")
