"""A ReDoc reference of the API at `/redoc`, beside Swagger UI's `/docs`: ReDoc 2 vendored
in `gateway/static/redoc` (version and license in its README.md; decision 0016), so it
works offline. The page starts ReDoc with `<redoc spec-url>` — no inline script — under
the gateway's Content-Security-Policy."""

from __future__ import annotations

from html import escape
from pathlib import Path

from fastapi import FastAPI, Request
from starlette.responses import HTMLResponse
from starlette.staticfiles import StaticFiles

ASSETS = Path(__file__).parent / "static" / "redoc"

PAGE = """<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>opengate API 参考</title>
</head><body>
<redoc spec-url="{spec}" hide-download-button="false"></redoc>
<script src="{root}/redoc-assets/redoc.standalone.js"></script>
</body></html>"""


def install(app: FastAPI) -> None:
    app.mount("/redoc-assets", StaticFiles(directory=ASSETS), name="redoc-assets")

    @app.get("/redoc", include_in_schema=False)
    def redoc(request: Request) -> HTMLResponse:
        root = escape(request.scope.get("root_path", ""))
        spec = root + escape(app.openapi_url or "/openapi.json")
        return HTMLResponse(PAGE.format(root=root, spec=spec))
