"""账单 in the administrator console (`/admin/statements…`): a month's statement lines —
the issued statement's signed lines, else computed live from the usage ledger
(`operation.views.statement_of`, as the API answers) — its CSV on the web session, the
出具账单 action for a closed month (`operation.statements.issue`, the API's event), and a
printable A4 page (styles in `statement-print.css`, no inline style or script)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from sqlmodel import Session
from starlette.responses import HTMLResponse, Response

from audit.events import audited, note
from catalog.request_state import EngineDep, SessionDep
from kernel.problems import Problem
from operation import statements
from operation.models import PriceUnit
from operation.products import UNIT_LABELS, yuan
from operation.views import csv_file, statement_of, statement_rows
from portal.admin_pages import admin_page, need_admin
from portal.forms import CheckedForm, see_other

router = APIRouter(include_in_schema=False)

TITLE = "公共数据授权运营月度账单"
# What a line's billed quantity counts, by price unit (calls, rows, months of use).
BILLED = {PriceUnit.call: "次", PriceUnit.rows_1000: "行", PriceUnit.month: "月"}


def labelled(line: dict[str, Any]) -> dict[str, Any]:
    """A statement line with what the pages print beside its figures: the unit price's
    unit, what the billed quantity counts and the unit price in 元."""
    unit = line["unit"]
    known = unit in set(PriceUnit)
    return {
        **line,
        "unit_label": UNIT_LABELS[PriceUnit(unit)] if known else unit,
        "billed_label": BILLED[PriceUnit(unit)] if known else "",
        "unit_price_yuan": yuan(line["unit_price_fen"]),
    }


def statement_context(db: Session, engine: Any, month: str) -> dict[str, Any]:
    """What the billing and print pages show of `month` (a Problem for a bad month)."""
    body, issued = statement_of(db, engine, month)
    lines = [labelled(x) for x in body["lines"]]
    return {
        "month": month,
        "statement": body,
        "lines": lines,
        "issued": issued,
        "free_lines": sum(1 for x in lines if x["free"]),
        "closed": month < statements.current_month(),
        "title": TITLE,
    }


def _month(request: Request) -> str:
    return (request.query_params.get("month") or statements.current_month())[:7]


def _page(
    request: Request, db: Session, engine: Any, month: str, *, status_code: int = 200, **extra: Any
) -> Response:
    try:
        context = statement_context(db, engine, month)
    except Problem as refused:
        context = {"month": month, "lines": [], "bad_month": refused.detail, "title": TITLE}
        status_code = refused.status
    context.update(extra)
    return admin_page(
        request, "admin/statements.html", context, status_code=status_code, tab="statements"
    )


@router.get("/admin/statements", response_class=HTMLResponse)
def statements_page(request: Request, db: SessionDep, engine: EngineDep) -> Response:
    need_admin(request)
    return _page(request, db, engine, _month(request), done=request.query_params.get("issued"))


@router.get("/admin/statements/{month}/csv")
def statement_csv(month: str, request: Request, db: SessionDep, engine: EngineDep) -> Response:
    """The same CSV as `GET /api/v1/admin/statements?format=csv`, on the web session."""
    need_admin(request)
    try:
        body, _ = statement_of(db, engine, month[:7])
    except Problem as refused:
        return _page(request, db, engine, month[:7], status_code=refused.status)
    return csv_file(statement_rows(body), f"statement-{body['month']}.csv")


@router.post("/admin/statements/{month}/issue", response_class=HTMLResponse)
@audited("operation.statement_issue")
def issue_statement(
    month: str, request: Request, _form: CheckedForm, db: SessionDep, engine: EngineDep
) -> Response:
    user = need_admin(request)
    month = month[:7]
    note(request, resource=f"statements/{month}", detail={"via": "web"})
    try:
        issued = statements.issue(
            db, engine, month, signer=request.app.state.audit_signer, by=user.username
        )
    except Problem as problem:
        db.rollback()
        error = {"detail": problem.detail, "parameter": problem.extra.get("parameter")}
        return _page(request, db, engine, month, status_code=problem.status, error=error)
    note(request, detail={"total_fen": issued.total_fen})
    return see_other(f"/admin/statements?month={month}&issued={month}")


@router.get("/admin/statements/{month}/print", response_class=HTMLResponse)
def print_statement(month: str, request: Request, db: SessionDep, engine: EngineDep) -> Response:
    need_admin(request)
    month = month[:7]
    try:
        context = statement_context(db, engine, month)
    except Problem as refused:
        return _page(request, db, engine, month, status_code=refused.status)
    return admin_page(request, "admin/statement_print.html", context, tab="statements")
