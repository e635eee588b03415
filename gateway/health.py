"""Liveness and readiness probes (never rate limited, no token)."""

from __future__ import annotations

from fastapi import APIRouter
from sqlalchemy import text
from sqlalchemy.engine import Engine

from catalog.problems import Problem
from catalog.responses import JSONResponse


def build_router(engine: Engine) -> APIRouter:
    router = APIRouter(tags=["health"])

    @router.get("/healthz", summary="The process is up")
    async def healthz() -> JSONResponse:
        return JSONResponse({"status": "ok"})

    @router.get("/readyz", summary="The database is reachable")
    def readyz() -> JSONResponse:
        try:
            with engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        except Exception:
            raise Problem(503, "unavailable", "数据库不可用") from None
        return JSONResponse({"status": "ready", "database": "ok"})

    return router
