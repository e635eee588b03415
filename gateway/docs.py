"""Interactive API docs served from Swagger UI 5 vendored in `gateway/static/swagger-ui`
(version and license in its README.md; docs/decisions/0015): no CDN, so they work on an
offline government network. Swagger UI 4 could not render FastAPI's OpenAPI 3.1 document.

The page is ours rather than FastAPI's `get_swagger_ui_html`, which starts Swagger UI with
an inline script: here the starter is a script of its own (`/docs/init.js`), so the page
runs under a Content-Security-Policy that allows scripts from the gateway only
(gateway/hardening.py).
"""

from __future__ import annotations

import json
from html import escape
from pathlib import Path

from fastapi import FastAPI, Request
from starlette.responses import HTMLResponse, Response
from starlette.staticfiles import StaticFiles

ASSETS = Path(__file__).parent / "static" / "swagger-ui"

PAGE = """<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>opengate API</title>
<link rel="stylesheet" href="{root}/docs-assets/swagger-ui.css">
<link rel="icon" type="image/png" href="{root}/docs-assets/favicon-32x32.png">
</head><body><div id="swagger-ui"></div>
<script src="{root}/docs-assets/swagger-ui-bundle.js"></script>
<script src="{root}/docs/init.js"></script>
</body></html>"""

STARTER = """window.ui = SwaggerUIBundle({{
  url: {url},
  dom_id: "#swagger-ui",
  layout: "BaseLayout",
  deepLinking: true,
  showExtensions: true,
  showCommonExtensions: true,
  presets: [SwaggerUIBundle.presets.apis],
  validatorUrl: null,
}});
"""


def install(app: FastAPI) -> None:
    app.mount("/docs-assets", StaticFiles(directory=ASSETS), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    def docs(request: Request) -> HTMLResponse:
        return HTMLResponse(PAGE.format(root=escape(request.scope.get("root_path", ""))))

    @app.get("/docs/init.js", include_in_schema=False)
    def docs_starter(request: Request) -> Response:
        url = request.scope.get("root_path", "") + (app.openapi_url or "/openapi.json")
        return Response(STARTER.format(url=json.dumps(url)), media_type="text/javascript")
