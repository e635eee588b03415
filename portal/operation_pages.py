"""授权运营 for the public: the industry zones (行业专区) with their datasets, products and
scenarios, and the product disclosure (数据产品与价格公开) with the approved scenarios. Read
straight from `operation`; nothing here is personal (scenarios name organizations only)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from sqlmodel import Session, col, select
from starlette.responses import HTMLResponse

from catalog.models import Dataset
from operation import products, registry
from operation.models import Operator, Product, Zone
from portal.templating import render

router = APIRouter(include_in_schema=False)


def _products(session: Session, zone_id: str | None = None) -> list[dict]:
    names = {o.id: o.name for o in session.exec(select(Operator))}
    query = select(Product).order_by(col(Product.code))
    if zone_id is not None:
        query = query.where(Product.zone_id == zone_id)
    return [products.product_view(p, names.get(p.operator_id, "")) for p in session.exec(query)]


@router.get("/zones", response_class=HTMLResponse)
def zones_page(request: Request) -> HTMLResponse:
    with Session(request.app.state.engine) as session:
        rows = registry.zone_listing(session)
    return render(request, "zones.html", {"rows": rows}, section="zones")


@router.get("/zones/{zone_id}", response_class=HTMLResponse)
def zone_page(request: Request, zone_id: str) -> HTMLResponse:
    with Session(request.app.state.engine) as session:
        zone = session.get(Zone, zone_id)
        if zone is None:
            return render(
                request,
                "not_found.html",
                {"message": f"行业专区 {zone_id} 不存在"},
                status_code=404,
            )
        datasets = session.exec(
            select(Dataset)
            .where(Dataset.zone == zone_id, Dataset.open_type != "closed")
            .order_by(col(Dataset.id))
        ).all()
        scenarios = [
            products.scenario_view(s)
            for s in products.approved_scenarios(session)
            if s.zone_id == zone_id
        ]
        listed = _products(session, zone_id)
    return render(
        request,
        "zone.html",
        {"zone": zone, "datasets": datasets, "products": listed, "scenarios": scenarios},
        section="zones",
    )


@router.get("/products", response_class=HTMLResponse)
def products_page(request: Request) -> HTMLResponse:
    with Session(request.app.state.engine) as session:
        listed = _products(session)
        scenarios = [products.scenario_view(s) for s in products.approved_scenarios(session)]
    return render(
        request, "products.html", {"products": listed, "scenarios": scenarios}, section="products"
    )
