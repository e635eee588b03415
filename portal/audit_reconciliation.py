"""The auditor's reconciliation page (`/audit/reconciliation`, issue 17 point 6): for one
month, the statement lines recomputed from the audit log beside the usage ledger and the
issued statement, and every difference (none when they agree). An audit event itself."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from audit.events import audited, note
from catalog.request_state import EngineDep
from kernel.problems import Problem
from operation import statements
from portal.audit_access import AuditorAccount, audit_page, problem_page

router = APIRouter(include_in_schema=False)


@router.get("/audit/reconciliation")
@audited("audit.reconciliation")
def reconciliation_page(request: Request, _: AuditorAccount, engine: EngineDep) -> Response:
    month = request.query_params.get("month") or statements.current_month()
    try:
        differences = statements.reconcile(engine, month)
        lines = statements.compute(engine, month)
    except Problem as refused:
        return problem_page(request, 400, refused.detail, tab="reconciliation")
    note(request, resource=f"statements/{month}", detail={"differences": len(differences)})
    return audit_page(
        request,
        "audit/reconciliation.html",
        {"month": month, "lines": lines, "differences": differences},
        tab="reconciliation",
    )
