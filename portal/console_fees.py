"""用量与费用 in the developer center (`/console/fees`): for the signed-in developer's own
apps only, a month's metered use per data product (calls, rows, billed units, the
estimated amount in 元, free-scenario lines marked), computed live from the usage ledger
by `operation.statements.compute`, and the same lines as CSV."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from sqlmodel import Session
from starlette.responses import HTMLResponse, Response

from auth import apps as app_service
from auth.models import User
from catalog.request_state import EngineDep, SessionDep
from kernel.problems import Problem
from operation import statements
from operation.views import csv_file, statement_body, statement_rows
from portal.admin_statements import labelled
from portal.console_apps import console_page
from portal.forms import need_account

router = APIRouter(include_in_schema=False)


def my_lines(db: Session, engine: Any, user: User, month: str) -> dict[str, Any]:
    """The month's lines of the user's own apps (each app asked for by its client_id, so
    no other developer's line is ever read), as one statement body."""
    apps = app_service.list_apps(db, owner=user)
    lines = [
        line for app in apps for line in statements.compute(engine, month, client_id=app.client_id)
    ]
    body = statement_body(month, lines, None)
    names = {a.client_id: a.name for a in apps}
    body["lines"] = [
        {**labelled(x), "app_name": names.get(x["client_id"], x["client_id"])} for x in lines
    ]
    return body


def _month(request: Request) -> str:
    return (request.query_params.get("month") or statements.current_month())[:7]


@router.get("/console/fees", response_class=HTMLResponse)
def fees_page(request: Request, db: SessionDep, engine: EngineDep) -> Response:
    user = need_account(request, role="developer")
    month = _month(request)
    try:
        context: dict[str, Any] = {"month": month, "body": my_lines(db, engine, user, month)}
        status = 200
    except Problem as refused:
        context, status = {"month": month, "body": None, "bad_month": refused.detail}, 400
    return console_page(request, "console/fees.html", context, status_code=status, tab="fees")


@router.get("/console/fees/csv")
def fees_csv(request: Request, db: SessionDep, engine: EngineDep) -> Response:
    user = need_account(request, role="developer")
    month = _month(request)
    try:
        body = my_lines(db, engine, user, month)
    except Problem as refused:
        context = {"month": month, "body": None, "bad_month": refused.detail}
        return console_page(request, "console/fees.html", context, status_code=400, tab="fees")
    return csv_file(statement_rows(body), f"usage-{month}.csv")
