"""The portal's static files, mounted by the gateway under `/static/portal/`."""

from __future__ import annotations

from fastapi import FastAPI
from starlette.staticfiles import StaticFiles

from portal.templating import STATIC_DIR, STATIC_PREFIX


def mount(app: FastAPI) -> None:
    app.mount(STATIC_PREFIX, StaticFiles(directory=STATIC_DIR), name="portal-static")
