"""`/admin/usage`: the cockpit's public figures (participation.overview, as
`GET /api/v1/stats/overview`, computed fresh) and the per-app breakdown
(participation.app_usage: requests and rows per app per day, 30 days, from the audit log),
as charts drawn by the vendored ECharts (`admin-usage.js` reads the page's
`<script type="application/json">` block) and as tables."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import HTMLResponse, Response

from participation.app_usage import per_app
from participation.overview import compute
from portal.admin_pages import admin_page, need_admin

router = APIRouter(include_in_schema=False)


@router.get("/admin/usage", response_class=HTMLResponse)
async def usage_page(request: Request) -> Response:
    need_admin(request)
    engine = request.app.state.engine
    overview = await run_in_threadpool(compute, engine)
    usage = await run_in_threadpool(per_app, engine)
    charts = {
        "days": [d[5:] for d in usage["days"]],
        "apps": [
            {
                "name": a["name"],
                "requests": [d["requests"] for d in a["by_day"]],
                "rows": [d["rows"] for d in a["by_day"]],
            }
            for a in usage["apps"]
        ],
    }
    context = {"overview": overview, "usage": usage, "charts": charts}
    return admin_page(request, "admin/usage.html", context, tab="usage")
