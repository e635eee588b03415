"""数据需求 `/demands`: the public list, the form to ask for data (signed in), and +1
(附议) buttons — the same checks as the API (participation.demands); every form carries
its csrf_token, checked before anything changes."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from starlette.responses import HTMLResponse, Response

from catalog.problems import Problem
from participation import demands
from participation.demands import STATUS_LABELS
from participation.models import DemandStatus
from portal.forms import CheckedForm, need_account, see_other, text
from portal.session import current_account
from portal.templating import render

router = APIRouter(include_in_schema=False)

PER_PAGE = 20
FIELDS = ("title", "description", "department", "scenario")


def _page(
    request: Request,
    *,
    status: DemandStatus | None,
    before: int | None,
    error: str | None = None,
    form: dict[str, str] | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    engine = request.app.state.engine
    rows = demands.listing(engine, status=status, after=before, limit=PER_PAGE + 1)
    more = len(rows) > PER_PAGE
    rows = rows[:PER_PAGE]
    account = current_account(request)
    seconded = (
        demands.seconded_by(engine, account.username, [r.id for r in rows if r.id is not None])
        if account is not None
        else set()
    )
    older = None
    if more and rows:
        older = f"/demands?before={rows[-1].id}" + (f"&status={status.value}" if status else "")
    return render(
        request,
        "demands.html",
        {
            "rows": rows,
            "labels": STATUS_LABELS,
            "statuses": list(DemandStatus),
            "status": status.value if status else "",
            "older": older,
            "seconded": seconded,
            "error": error,
            "form": form or {},
            "created": request.query_params.get("created"),
            "notice": request.query_params.get("seconded"),
        },
        status_code=status_code,
        section="demands",
    )


@router.get("/demands", response_class=HTMLResponse)
def demands_page(
    request: Request,
    status: DemandStatus | None = None,
    before: Annotated[int | None, Query(ge=1)] = None,
) -> HTMLResponse:
    return _page(request, status=status, before=before)


@router.post("/demands", response_class=HTMLResponse)
def demand_submit(request: Request, form: CheckedForm) -> Response:
    account = need_account(request)
    values = {name: text(form, name, limit=20_000) for name in FIELDS}
    try:
        row = demands.create(request.app.state.engine, requester=account.username, **values)
    except Problem as problem:
        return _page(
            request,
            status=None,
            before=None,
            error=problem.detail,
            form=values,
            status_code=problem.status,
        )
    return see_other(f"/demands?created={row.id}#demand-{row.id}")


@router.post("/demands/{demand_id}/second", response_class=HTMLResponse)
def demand_second(request: Request, demand_id: int, form: CheckedForm) -> Response:
    del form  # checked (csrf_token) by the dependency; the form holds nothing else
    account = need_account(request)
    try:
        demands.second(request.app.state.engine, demand_id, account=account.username)
    except Problem as problem:
        return _page(
            request, status=None, before=None, error=problem.detail, status_code=problem.status
        )
    return see_other(f"/demands?seconded={demand_id}#demand-{demand_id}")
