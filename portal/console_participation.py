"""Developer center: my 纠错 reports and my 数据需求 demands, with their status and the
administrators' answers (`/console/feedback`, `/console/demands`)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import HTMLResponse, Response

from catalog.request_state import EngineDep, SessionDep
from participation import demands, feedback
from portal.console_apps import console_page
from portal.console_data import titles
from portal.forms import need_account

router = APIRouter(include_in_schema=False)

MAX_SHOWN = 100
FEEDBACK_LABELS = {
    "submitted": "已提交，待处理",
    "accepted": "已受理",
    "rejected": "未采纳",
    "fixed": "已修正",
}
DEMAND_LABELS = {
    "open": "征集中",
    "answered": "已答复",
    "satisfied": "已满足",
    "declined": "暂不开放",
}


@router.get("/console/feedback", response_class=HTMLResponse)
def my_feedback(request: Request, engine: EngineDep, db: SessionDep) -> Response:
    user = need_account(request)
    rows = feedback.listing(engine, reporter=user.username, limit=MAX_SHOWN)
    names = titles(db, {r.dataset_id for r in rows})
    reports = [
        {
            "row": r,
            "dataset_title": names.get(r.dataset_id, r.dataset_id),
            "label": FEEDBACK_LABELS.get(r.status, r.status),
        }
        for r in rows
    ]
    return console_page(request, "console/feedback.html", {"reports": reports}, tab="feedback")


@router.get("/console/demands", response_class=HTMLResponse)
def my_demands(request: Request, engine: EngineDep) -> Response:
    user = need_account(request)
    rows = demands.listing(engine, requester=user.username, limit=MAX_SHOWN)
    mine = [{"row": r, "label": DEMAND_LABELS.get(r.status, r.status)} for r in rows]
    return console_page(request, "console/demands.html", {"demands": mine}, tab="demands")
