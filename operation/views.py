"""The operation API (contract §13 and docs/contract-operation.md): public zones, scenarios
and the product disclosure; the data administrator's registers, agreements, prices and
statements; an app's own usage; the auditor's reconciliation."""

from __future__ import annotations

import csv
import io
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from audit.events import audited, note
from auth.models import Role
from auth.principal import Principal, principal_of, require_role, unauthorized
from catalog.request_state import EngineDep, SessionDep
from catalog.row_id import RowId
from kernel.problem_schema import problem_responses
from kernel.problems import Problem, not_found
from kernel.responses import JSONResponse
from operation import products, registry, statements
from operation.models import AgreementStatus, Operator, Product, Statement
from operation.schemas import (
    AgreementIn,
    AgreementOut,
    GrantBinding,
    OperatorAppIn,
    OperatorIn,
    OperatorOut,
    PriceIn,
    ProductIn,
    ProductList,
    ProductOut,
    Reason,
    Reconciliation,
    ScenarioIn,
    ScenarioList,
    ScenarioOut,
    StatementOut,
    ZoneIn,
    ZoneList,
    ZoneOut,
)
from policies.models import Grant

router = APIRouter(
    prefix="/api/v1", tags=["operation"], responses=problem_responses(400, 401, 404, 429, 503)
)
admin_router = APIRouter(
    prefix="/api/v1/admin",
    tags=["administration"],
    responses=problem_responses(400, 401, 403, 404, 409, 413, 429, 503),
)
AdminDep = Annotated[Principal, Depends(require_role(Role.data_admin))]
AuditorDep = Annotated[Principal, Depends(require_role(Role.auditor))]
AccountDep = Annotated[
    Principal, Depends(require_role(Role.developer, Role.data_admin, Role.auditor, Role.sysadmin))
]
BOM = "\ufeff"


@router.get("/zones", summary="行业专区列表", response_model=ZoneList)
def list_zones(db: SessionDep) -> JSONResponse:
    return JSONResponse({"data": registry.zone_listing(db)})


@router.get("/scenarios", summary="应用场景公开登记（已批准）", response_model=ScenarioList)
def list_scenarios(db: SessionDep) -> JSONResponse:
    return JSONResponse(
        {"data": [products.scenario_view(s) for s in products.approved_scenarios(db)]}
    )


@router.post(
    "/scenarios",
    responses=problem_responses(403),
    status_code=201,
    summary="登记应用场景（待审核）",
    response_model=ScenarioOut,
)
@audited("operation.scenario")
def submit_scenario(
    body: ScenarioIn, request: Request, _account: AccountDep, db: SessionDep
) -> JSONResponse:
    scenario = products.create_scenario(db, **body.model_dump())
    note(request, resource=f"scenarios/{scenario.id}")
    return JSONResponse(products.scenario_view(scenario), status_code=201)


def _operator_names(db: Session) -> dict[int, str]:
    return {o.id: o.name for o in db.exec(select(Operator)) if o.id is not None}


def csv_file(rows: list[list[Any]], name: str) -> Response:
    """Rows as a spreadsheet opens them: UTF-8 with a BOM (Chinese headers), CRLF."""
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n").writerows(rows)
    return Response(
        (BOM + buffer.getvalue()).encode(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


def disclosure_rows(rows: list[dict[str, Any]]) -> list[list[Any]]:
    """The yearly disclosure: one header row, one row per product."""
    header = ["登记编码", "产品名称", "运营机构", "专区", "数据集", "计价单位", "单价（元）",
              "价格上限（元）"]  # fmt: skip
    return [header] + [
        [r["code"], r["title"], r["operator"], r["zone_id"] or "", "、".join(r["datasets"]),
         r["unit_label"], r["price_yuan"], r["cap_yuan"]]
        for r in rows
    ]  # fmt: skip


@router.get(
    "/products",
    summary="数据产品与价格公开披露",
    description="全部已登记的数据产品、运营机构、计价单位、价格及其上限。"
    "`format=csv` 下载年度披露表（UTF-8 带 BOM）。",
    response_model=ProductList,
    responses={200: {"content": {"text/csv": {"schema": {"type": "string"}}}}},
)
def list_products(
    db: SessionDep, format: Annotated[str, Query(pattern="^(json|csv)$")] = "json"
) -> Response:
    names = _operator_names(db)
    rows = [
        products.product_view(p, names.get(p.operator_id, ""))
        for p in db.exec(select(Product).order_by(col(Product.code)))
    ]
    if format == "csv":
        return csv_file(disclosure_rows(rows), "products.csv")
    return JSONResponse({"data": rows})


@router.get(
    "/usage",
    summary="本应用的计量用量",
    description="以应用令牌（client credentials）调用：本应用当月（或 `month` 指定月份）"
    "按数据产品的调用次数、返回行数与金额。",
    response_model=StatementOut,
    responses=problem_responses(403),
)
def my_usage(request: Request, engine: EngineDep, month: str | None = None) -> JSONResponse:
    principal = principal_of(request)
    if principal is None:
        raise unauthorized("需要访问令牌", error=None)
    if principal.kind != "app" or not principal.client_id:
        raise Problem(403, "forbidden", "请使用应用令牌查询本应用的用量")
    month = month or statements.current_month()
    lines = statements.compute(engine, month, client_id=principal.client_id)
    return JSONResponse(statement_body(month, lines, None))


def statement_body(
    month: str, lines: list[dict[str, Any]], issued: Statement | None
) -> dict[str, Any]:
    """A month's statement as the API answers it: the lines, the total in fen and 元, and
    for an issued statement its digest, signature and key id."""
    total = sum(x["amount_fen"] for x in lines)
    return {
        "month": month,
        "issued": issued is not None,
        "lines": lines,
        "total_fen": total,
        "total_yuan": products.yuan(total),
        "digest": issued.digest if issued else None,
        "signature": issued.signature if issued else None,
        "key_id": issued.key_id if issued else None,
    }


@admin_router.post("/zones", status_code=201, summary="新建行业专区", response_model=ZoneOut)
@audited("operation.zone")
def create_zone(body: ZoneIn, request: Request, _admin: AdminDep, db: SessionDep) -> JSONResponse:
    zone = registry.create_zone(db, **body.model_dump())
    note(request, resource=f"zones/{zone.id}")
    return JSONResponse({**registry.zone_view(zone), "datasets": 0, "products": 0}, status_code=201)


@admin_router.post(
    "/operators", status_code=201, summary="登记运营机构", response_model=OperatorOut
)
@audited("operation.operator")
def create_operator(
    body: OperatorIn, request: Request, admin: AdminDep, db: SessionDep
) -> JSONResponse:
    row = registry.create_operator(db, **body.model_dump(), by=admin.subject)
    note(request, resource=f"operators/{row.id}")
    return JSONResponse(registry.operator_view(row), status_code=201)


@admin_router.post(
    "/operators/{operator_id}/apps", summary="登记运营机构的应用", response_model=OperatorOut
)
@audited("operation.operator_app")
def bind_operator_app(
    operator_id: RowId, body: OperatorAppIn, request: Request, _admin: AdminDep, db: SessionDep
) -> JSONResponse:
    registry.bind_app(db, operator_id=operator_id, client_id=body.client_id)
    note(request, resource=f"operators/{operator_id}", client_id=body.client_id)
    return JSONResponse(registry.operator_view(registry.operator(db, operator_id)))


@admin_router.post(
    "/agreements", status_code=201, summary="新建授权运营协议（草拟）", response_model=AgreementOut
)
@audited("operation.agreement")
def create_agreement(
    body: AgreementIn,
    request: Request,
    _admin: AdminDep,
    db: SessionDep,
) -> JSONResponse:
    datasets, services = registry.catalog_names(db)
    row = registry.create_agreement(
        db, **body.model_dump(), known_datasets=datasets, known_services=services
    )
    note(request, resource=f"agreements/{row.id}")
    return JSONResponse(registry.agreement_view(row), status_code=201)


@admin_router.get("/agreements", summary="授权运营协议列表", response_model=list[AgreementOut])
def list_agreements(_admin: AdminDep, db: SessionDep) -> JSONResponse:
    rows = db.exec(select(registry.Agreement).order_by(col(registry.Agreement.id))).all()
    return JSONResponse([registry.agreement_view(r) for r in rows])


def _move(agreement_id: int, to: str, body: Reason, request: Request, db: Session) -> JSONResponse:
    row = registry.move(db, agreement_id, to=to, reason=body.reason)
    note(request, resource=f"agreements/{agreement_id}", detail={"status": to})
    return JSONResponse(registry.agreement_view(row))


@admin_router.post(
    "/agreements/{agreement_id}/activate", summary="协议生效", response_model=AgreementOut
)
@audited("operation.agreement_status")
def activate(
    agreement_id: RowId, body: Reason, request: Request, _admin: AdminDep, db: SessionDep
) -> JSONResponse:
    return _move(agreement_id, AgreementStatus.active, body, request, db)


@admin_router.post(
    "/agreements/{agreement_id}/suspend",
    summary="暂停协议（其下全部授权在下一次请求时停止）",
    response_model=AgreementOut,
)
@audited("operation.agreement_status")
def suspend(
    agreement_id: RowId, body: Reason, request: Request, _admin: AdminDep, db: SessionDep
) -> JSONResponse:
    return _move(agreement_id, AgreementStatus.suspended, body, request, db)


@admin_router.post(
    "/agreements/{agreement_id}/terminate", summary="终止协议", response_model=AgreementOut
)
@audited("operation.agreement_status")
def terminate(
    agreement_id: RowId, body: Reason, request: Request, _admin: AdminDep, db: SessionDep
) -> JSONResponse:
    return _move(agreement_id, AgreementStatus.terminated, body, request, db)


@admin_router.post(
    "/scenarios/{scenario_id}/approve", summary="批准应用场景", response_model=ScenarioOut
)
@audited("operation.scenario_approve")
def approve_scenario(
    scenario_id: RowId, request: Request, _admin: AdminDep, db: SessionDep
) -> JSONResponse:
    note(request, resource=f"scenarios/{scenario_id}")
    return JSONResponse(products.scenario_view(products.approve_scenario(db, scenario_id)))


@admin_router.post(
    "/products", status_code=201, summary="登记数据产品（登记赋码）", response_model=ProductOut
)
@audited("operation.product")
def register_product(
    body: ProductIn, request: Request, _admin: AdminDep, db: SessionDep
) -> JSONResponse:
    row = products.register_product(db, **body.model_dump())
    note(request, resource=f"products/{row.id}")
    return JSONResponse(
        products.product_view(row, registry.operator(db, row.operator_id).name), status_code=201
    )


@admin_router.post(
    "/products/{product_id}/price", summary="调整价格或价格上限", response_model=ProductOut
)
@audited("operation.price")
def reprice(
    product_id: RowId, body: PriceIn, request: Request, _admin: AdminDep, db: SessionDep
) -> JSONResponse:
    row = products.reprice(db, product_id, price_fen=body.price_fen, cap_fen=body.cap_fen)
    note(
        request,
        resource=f"products/{product_id}",
        detail={"price_fen": row.price_fen, "cap_fen": row.cap_fen},
    )
    return JSONResponse(products.product_view(row, registry.operator(db, row.operator_id).name))


@admin_router.post(
    "/grants/{grant_id}/operation",
    summary="为授权指明应用场景与数据产品（计量依据）",
    response_model=dict[str, Any],
)
@audited("operation.grant_binding")
def bind_grant(
    grant_id: RowId, body: GrantBinding, request: Request, _admin: AdminDep, db: SessionDep
) -> JSONResponse:
    grant = db.get(Grant, grant_id)
    if grant is None:
        raise not_found(f"授权 {grant_id} 不存在")
    if grant.product_id is not None and body.product_id != grant.product_id:
        raise Problem(409, "conflict", f"授权 {grant_id} 已绑定数据产品，计量依据不可更改")
    grant.scenario_id, grant.product_id = body.scenario_id, body.product_id
    db.add(grant)
    db.commit()  # operation.gate checks the binding before anything is written
    note(request, resource=f"grants/{grant_id}", grant_id=grant_id)
    return JSONResponse(
        {"grant_id": grant_id, "scenario_id": grant.scenario_id, "product_id": grant.product_id,
         "agreement_id": grant.agreement_id}
    )  # fmt: skip


def statement_rows(body: dict[str, Any]) -> list[list[Any]]:
    header = ["账期", "应用", "登记编码", "产品名称", "运营机构", "免费场景", "调用次数",
              "返回行数", "计价单位", "计费数量", "单价（元）", "金额（元）"]  # fmt: skip
    lines = [
        [body["month"], x["client_id"], x["product_code"], x["product_title"], x["operator"],
         "是" if x["free"] else "否", x["calls"], x["rows"], x["unit"], x["units"],
         products.yuan(x["unit_price_fen"]), x["amount_yuan"]]
        for x in body["lines"]
    ]  # fmt: skip
    return [header, *lines, ["合计", *[""] * 10, body["total_yuan"]]]


def statement_of(
    db: Session, engine: Engine, month: str
) -> tuple[dict[str, Any], Statement | None]:
    """The month's statement body: the issued one's signed lines, else computed live from
    the ledger; and the issued row (None when the month has none). A bad month: a Problem."""
    statements.month_of(month)
    issued = db.exec(select(Statement).where(Statement.month == month)).first()
    lines = issued.lines if issued else statements.compute(engine, month)
    return statement_body(month, lines, issued), issued


@admin_router.get(
    "/statements",
    summary="月度账单（应用 × 数据产品）",
    description="已出具的月份返回签名后的不可变账单；未出具的月份按计量台账实时计算。"
    "`format=csv` 下载（UTF-8 带 BOM）。",
    response_model=StatementOut,
    responses={200: {"content": {"text/csv": {"schema": {"type": "string"}}}}},
)
def getstatement_body(
    _admin: AdminDep,
    db: SessionDep,
    engine: EngineDep,
    month: str,
    format: Annotated[str, Query(pattern="^(json|csv)$")] = "json",
) -> Response:
    body, _issued = statement_of(db, engine, month)
    if format == "csv":
        return csv_file(statement_rows(body), f"statement-{month}.csv")
    return JSONResponse(body)


@admin_router.post(
    "/statements/{month}/issue",
    status_code=201,
    summary="出具月度账单（已结束的月份）",
    response_model=StatementOut,
)
@audited("operation.statement_issue")
def issuestatement_body(
    month: str, request: Request, admin: AdminDep, db: SessionDep, engine: EngineDep
) -> JSONResponse:
    issued = statements.issue(
        db, engine, month, signer=request.app.state.audit_signer, by=admin.subject
    )
    note(request, resource=f"statements/{month}", detail={"total_fen": issued.total_fen})
    return JSONResponse(statement_body(month, issued.lines, issued), status_code=201)


@router.get(
    "/audit/reconciliation",
    summary="计量对账（审计员）",
    description="按审计日志重新计算该月每个应用 × 数据产品的调用次数与行数，"
    "与计量台账和已出具账单比对；一致时差异为空。",
    response_model=Reconciliation,
    responses=problem_responses(403),
    tags=["audit"],
)
@audited("audit.reconciliation")
def reconciliation(_auditor: AuditorDep, engine: EngineDep, month: str) -> JSONResponse:
    return JSONResponse({"month": month, "differences": statements.reconcile(engine, month)})
