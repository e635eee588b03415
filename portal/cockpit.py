"""数据驾驶舱 `/cockpit`: the public overview (participation.overview) as charts drawn by the
vendored ECharts and, for screen readers and without JavaScript, as tables of the same
figures. The page hands the figures to `cockpit.js` in a `<script type="application/json">`
block (data, never executed: the CSP allows scripts from the gateway only)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import HTMLResponse

from participation.overview import LEVEL_LABELS, OPEN_TYPE_LABELS
from portal.templating import render

router = APIRouter(include_in_schema=False)


@router.get("/cockpit", response_class=HTMLResponse)
def cockpit(request: Request) -> HTMLResponse:
    overview = request.app.state.overview.get()
    datasets = overview["datasets"]
    charts = {
        "open_type": [
            {"name": OPEN_TYPE_LABELS[k], "value": v} for k, v in datasets["by_open_type"].items()
        ],
        "level": [
            {"name": LEVEL_LABELS[int(k)], "value": v} for k, v in datasets["by_level"].items()
        ],
        "theme": [
            {"name": t["theme"] or "未分类", "value": t["count"]} for t in datasets["by_theme"]
        ],
        "department": [
            {"name": t["department"] or "未填写", "value": t["count"]}
            for t in datasets["by_department"]
        ],
        "requests": [
            {"name": d["date"][5:], "value": d["count"]} for d in overview["requests"]["by_day"]
        ],
        "top": [{"name": t["title"], "value": t["requests"]} for t in overview["top_datasets"]],
    }
    return render(
        request,
        "cockpit.html",
        {
            "overview": overview,
            "charts": charts,
            "open_type_labels": OPEN_TYPE_LABELS,
            "level_labels": LEVEL_LABELS,
        },
        section="cockpit",
    )
