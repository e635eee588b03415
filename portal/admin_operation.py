"""授权运营 in the administrator console (`/admin/operators`, `/admin/agreements`,
`/admin/products`, `/admin/scenarios`): the registers of operators and their apps, the
agreements and their workflow, the products and their prices, the scenarios awaiting
approval. Every change goes through `operation.registry` / `operation.products` (the API's
services, with their Chinese refusals) and writes the API's audit event, marked `via: web`;
a refusal shows the form again with its error, nothing saved."""

from __future__ import annotations

from datetime import date
from typing import Any

from fastapi import APIRouter, Request
from sqlmodel import Session, col, select
from starlette.datastructures import FormData
from starlette.responses import HTMLResponse, Response

from audit.events import audited, note
from auth.models import App
from catalog.models import Dataset
from catalog.request_state import SessionDep
from kernel.problems import Problem, invalid_parameter, not_found
from operation import products, registry
from operation.models import Agreement, AgreementStatus, PriceUnit, Product, Scenario, Zone
from portal.admin_pages import admin_page, need_admin, row_id
from portal.console_data import MODE_LABELS
from portal.forms import CheckedForm, see_other, text

router = APIRouter(include_in_schema=False)

ALL_MODES = MODE_LABELS  # agreements and products may name `call` (services)
ACTIONS = {
    AgreementStatus.active: "生效",
    AgreementStatus.suspended: "暂停",
    AgreementStatus.terminated: "终止",
}


def _values(form: FormData) -> dict[str, Any]:
    """What the person typed, to show the form again after a refusal."""
    values: dict[str, Any] = {k: v for k, v in form.multi_items() if isinstance(v, str)}
    for many in ("datasets", "modes"):
        values[many] = [v for v in form.getlist(many) if isinstance(v, str)]
    return values


def _id(form: FormData, name: str, label: str) -> int:
    found = row_id(text(form, name, limit=12))
    if found is None:
        raise invalid_parameter(name, f"请选择{label}")
    return found


def _day(form: FormData, name: str, label: str) -> date:
    try:
        return date.fromisoformat(text(form, name, limit=10))
    except ValueError:
        raise invalid_parameter(name, f"请填写{label}（YYYY-MM-DD）") from None


def _error(problem: Problem) -> dict[str, Any]:
    return {"detail": problem.detail, "parameter": problem.extra.get("parameter")}


def _operator_names(db: Session) -> dict[int, str]:
    return {o["id"]: o["name"] for o in registry.operator_listing(db)}


# -- 运营机构 -------------------------------------------------------------------------


def _operators_page(
    request: Request, db: Session, *, status_code: int = 200, **extra: Any
) -> Response:
    apps = list(db.exec(select(App).where(col(App.is_active).is_(True)).order_by(col(App.name))))
    context = {
        "operators": registry.operator_listing(db),
        "apps": apps,
        "app_names": {a.client_id: a.name for a in apps},
        "values": {},
        **extra,
    }
    return admin_page(
        request, "admin/operators.html", context, status_code=status_code, tab="operators"
    )


@router.get("/admin/operators", response_class=HTMLResponse)
def operators_page(request: Request, db: SessionDep) -> Response:
    need_admin(request)
    params = request.query_params
    return _operators_page(request, db, saved=params.get("saved"), bound=params.get("bound"))


@router.post("/admin/operators", response_class=HTMLResponse)
@audited("operation.operator")
def create_operator(request: Request, form: CheckedForm, db: SessionDep) -> Response:
    user = need_admin(request)
    note(request, detail={"via": "web"})
    try:
        row = registry.create_operator(
            db,
            name=text(form, "name", limit=300),
            credit_code=text(form, "credit_code", limit=40),
            contact=text(form, "contact", limit=300),
            by=user.username,
        )
    except Problem as problem:
        db.rollback()
        return _operators_page(
            request,
            db,
            status_code=problem.status,
            error=_error(problem),
            form="operator",
            values=_values(form),
        )
    note(request, resource=f"operators/{row.id}")
    return see_other(f"/admin/operators?saved={row.id}#operator-{row.id}")


@router.post("/admin/operators/{operator_id}/apps", response_class=HTMLResponse)
@audited("operation.operator_app")
def bind_operator_app(
    operator_id: str, request: Request, form: CheckedForm, db: SessionDep
) -> Response:
    need_admin(request)
    client_id = text(form, "client_id", limit=64)
    found = row_id(operator_id)
    note(request, resource=f"operators/{operator_id[:12]}", client_id=client_id or None,
         detail={"via": "web"})  # fmt: skip
    try:
        if found is None:
            raise not_found(f"运营机构 {operator_id[:12]} 不存在")
        if not client_id:
            raise invalid_parameter("client_id", "请选择归属该运营机构的应用（client_id）")
        registry.bind_app(db, operator_id=found, client_id=client_id)
    except Problem as problem:
        db.rollback()
        return _operators_page(
            request,
            db,
            status_code=problem.status,
            error=_error(problem),
            form=f"bind-{found}",
        )
    return see_other(f"/admin/operators?bound={client_id}#operator-{found}")


# -- 授权运营协议 ---------------------------------------------------------------------


def _datasets(db: Session) -> list[Dataset]:
    return list(db.exec(select(Dataset).where(Dataset.kind == "table").order_by(col(Dataset.id))))


def _agreements_page(
    request: Request, db: Session, *, status_code: int = 200, **extra: Any
) -> Response:
    rows = db.exec(select(Agreement).order_by(col(Agreement.id))).all()
    names = _operator_names(db)
    held = registry.grants_held(db)
    agreements = [
        {
            **registry.agreement_view(r),
            "operator": names.get(r.operator_id, ""),
            "moves": [(to, ACTIONS[AgreementStatus(to)]) for to in registry.MOVES[r.status]],
            "held": held.get(r.id or 0, 0),
        }
        for r in rows
    ]
    context = {
        "agreements": agreements,
        "operators": registry.operator_listing(db),
        "datasets": _datasets(db),
        "mode_labels": ALL_MODES,
        "values": {},
        **extra,
    }
    return admin_page(
        request, "admin/agreements.html", context, status_code=status_code, tab="agreements"
    )


@router.get("/admin/agreements", response_class=HTMLResponse)
def agreements_page(request: Request, db: SessionDep) -> Response:
    need_admin(request)
    params = request.query_params
    moved_id = row_id(params.get("moved") or "")
    moved = db.get(Agreement, moved_id) if moved_id else None
    return _agreements_page(
        request,
        db,
        saved=params.get("saved"),
        moved=registry.agreement_view(moved) if moved else None,
        held=params.get("held"),
    )


@router.post("/admin/agreements", response_class=HTMLResponse)
@audited("operation.agreement")
def create_agreement(request: Request, form: CheckedForm, db: SessionDep) -> Response:
    need_admin(request)
    note(request, detail={"via": "web"})
    try:
        row = registry.create_agreement(
            db,
            operator_id=_id(form, "operator_id", "运营机构"),
            title=text(form, "title", limit=300),
            datasets=_values(form)["datasets"],
            services=[],
            modes=_values(form)["modes"],
            starts_on=_day(form, "starts_on", "起始日期"),
            ends_on=_day(form, "ends_on", "终止日期"),
            known_datasets=registry.catalog_names(db)[0],
        )
    except Problem as problem:
        db.rollback()
        return _agreements_page(
            request, db, status_code=problem.status, error=_error(problem), values=_values(form)
        )
    note(request, resource=f"agreements/{row.id}")
    return see_other(f"/admin/agreements?saved={row.id}#agreement-{row.id}")


@router.post("/admin/agreements/{agreement_id}/status", response_class=HTMLResponse)
@audited("operation.agreement_status")
def move_agreement(
    agreement_id: str, request: Request, form: CheckedForm, db: SessionDep
) -> Response:
    need_admin(request)
    to = text(form, "to", limit=16)
    found = row_id(agreement_id)
    note(request, resource=f"agreements/{agreement_id[:12]}",
         detail={"status": to[:16], "via": "web"})  # fmt: skip
    try:
        if found is None:
            raise not_found(f"授权运营协议 {agreement_id[:12]} 不存在")
        if to not in ACTIONS:
            raise invalid_parameter("to", "请选择生效、暂停或终止")
        registry.move(db, found, to=to, reason=text(form, "reason", limit=600))
    except Problem as problem:
        db.rollback()
        return _agreements_page(
            request, db, status_code=problem.status, error=_error(problem), form=f"move-{found}"
        )
    held = registry.grants_held(db).get(found, 0)
    return see_other(f"/admin/agreements?moved={found}&held={held}#agreement-{found}")


# -- 数据产品 -------------------------------------------------------------------------


def _products_page(
    request: Request, db: Session, *, status_code: int = 200, **extra: Any
) -> Response:
    names = _operator_names(db)
    rows = [
        products.product_view(p, names.get(p.operator_id, ""))
        for p in db.exec(select(Product).order_by(col(Product.code)))
    ]
    context = {
        "products": rows,
        "operators": registry.operator_listing(db),
        "datasets": _datasets(db),
        "zones": list(db.exec(select(Zone).order_by(col(Zone.id)))),
        "mode_labels": ALL_MODES,
        "unit_labels": {str(k): v for k, v in products.UNIT_LABELS.items()},
        "values": {"unit": PriceUnit.call},
        **extra,
    }
    return admin_page(
        request, "admin/products.html", context, status_code=status_code, tab="products"
    )


@router.get("/admin/products", response_class=HTMLResponse)
def products_page(request: Request, db: SessionDep) -> Response:
    need_admin(request)
    params = request.query_params
    return _products_page(request, db, saved=params.get("saved"), priced=params.get("priced"))


@router.post("/admin/products", response_class=HTMLResponse)
@audited("operation.product")
def register_product(request: Request, form: CheckedForm, db: SessionDep) -> Response:
    need_admin(request)
    note(request, detail={"via": "web"})
    values = _values(form)
    try:
        row = products.register_product(
            db,
            code=text(form, "code", limit=80),
            operator_id=_id(form, "operator_id", "运营机构"),
            title=text(form, "title", limit=300),
            description=text(form, "description"),
            zone_id=text(form, "zone_id", limit=64) or None,
            datasets=values["datasets"],
            modes=values["modes"],
            unit=text(form, "unit", limit=16),
            price_fen=products.fen_of("price", "单价", text(form, "price", limit=20)),
            cap_fen=products.fen_of("cap", "价格上限", text(form, "cap", limit=20)),
        )
    except Problem as problem:
        db.rollback()
        return _products_page(
            request, db, status_code=problem.status, error=_error(problem), values=values
        )
    note(request, resource=f"products/{row.id}")
    return see_other(f"/admin/products?saved={row.code}#product-{row.id}")


@router.post("/admin/products/{product_id}/price", response_class=HTMLResponse)
@audited("operation.price")
def reprice(product_id: str, request: Request, form: CheckedForm, db: SessionDep) -> Response:
    need_admin(request)
    found = row_id(product_id)
    note(request, resource=f"products/{product_id[:12]}", detail={"via": "web"})
    price, cap = text(form, "price", limit=20), text(form, "cap", limit=20)
    try:
        if found is None:
            raise not_found(f"数据产品 {product_id[:12]} 不存在")
        row = products.reprice(
            db,
            found,
            price_fen=products.fen_of("price", "单价", price) if price else None,
            cap_fen=products.fen_of("cap", "价格上限", cap) if cap else None,
        )
    except Problem as problem:
        db.rollback()
        return _products_page(
            request, db, status_code=problem.status, error=_error(problem), form=f"price-{found}"
        )
    note(request, detail={"price_fen": row.price_fen, "cap_fen": row.cap_fen})
    return see_other(f"/admin/products?priced={row.code}#product-{row.id}")


# -- 应用场景 -------------------------------------------------------------------------


def _scenarios_page(
    request: Request, db: Session, *, status_code: int = 200, **extra: Any
) -> Response:
    pending = db.exec(
        select(Scenario).where(col(Scenario.approved).is_(False)).order_by(col(Scenario.id))
    ).all()
    context = {
        "pending": [products.scenario_view(s) for s in pending],
        "approved": [products.scenario_view(s) for s in products.approved_scenarios(db)],
        **extra,
    }
    return admin_page(
        request, "admin/scenarios.html", context, status_code=status_code, tab="scenarios"
    )


@router.get("/admin/scenarios", response_class=HTMLResponse)
def scenarios_page(request: Request, db: SessionDep) -> Response:
    need_admin(request)
    return _scenarios_page(request, db, done=request.query_params.get("approved"))


@router.post("/admin/scenarios/{scenario_id}/approve", response_class=HTMLResponse)
@audited("operation.scenario_approve")
def approve_scenario(
    scenario_id: str, request: Request, _form: CheckedForm, db: SessionDep
) -> Response:
    need_admin(request)
    found = row_id(scenario_id)
    note(request, resource=f"scenarios/{scenario_id[:12]}", detail={"via": "web"})
    try:
        if found is None:
            raise not_found(f"应用场景 {scenario_id[:12]} 不存在")
        products.approve_scenario(db, found)
    except Problem as problem:
        db.rollback()
        return _scenarios_page(request, db, status_code=problem.status, error=_error(problem))
    return see_other(f"/admin/scenarios?approved={found}#scenario-{found}")
