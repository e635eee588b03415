"""我的纠错与需求 `/console/feedback`: the signed-in account's 纠错 reports with their status
and the administrator's answer, and its 数据需求 — the rows of participation's own lists."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import HTMLResponse, Response

from participation import demands, feedback
from participation.demands import STATUS_LABELS as DEMAND_LABELS
from participation.feedback import STATUS_LABELS as FEEDBACK_LABELS
from portal.console_apps import console_page
from portal.forms import need_account

router = APIRouter(include_in_schema=False)


@router.get("/console/feedback", response_class=HTMLResponse)
def my_participation(request: Request) -> Response:
    user = need_account(request)
    engine = request.app.state.engine
    context = {
        "reports": feedback.listing(engine, reporter=user.username, limit=200),
        "demands": demands.listing(engine, requester=user.username, limit=200),
        "feedback_labels": FEEDBACK_LABELS,
        "demand_labels": DEMAND_LABELS,
    }
    return console_page(request, "console/feedback.html", context, tab="feedback")
