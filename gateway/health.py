"""Liveness and readiness probes (never rate limited, no token)."""

from __future__ import annotations

from fastapi import APIRouter
from sqlalchemy import text
from sqlalchemy.engine import Engine

from gateway.problems import unavailable
from gateway.schemas import Liveness, Readiness
from kernel.problem_schema import problem_responses
from kernel.responses import JSONResponse


def build_router(engine: Engine, *, redis_url: str | None = None) -> APIRouter:
    router = APIRouter(tags=["health"])
    redis_client = None
    if redis_url:
        import redis

        redis_client = redis.Redis.from_url(redis_url, socket_timeout=1, socket_connect_timeout=1)

    @router.get(
        "/healthz",
        summary="存活探针：进程在运行",
        response_model=Liveness,
        responses=problem_responses(401),
    )
    async def healthz() -> JSONResponse:
        return JSONResponse({"status": "ok"})

    @router.get(
        "/readyz",
        summary="就绪探针：数据库（及已配置的 Redis）可用",
        response_model=Readiness,
        responses=problem_responses(401, 503),
    )
    def readyz() -> JSONResponse:
        try:
            with engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        except Exception:
            raise unavailable("数据库不可用", component="database") from None
        checks = {"status": "ready", "database": "ok"}
        if redis_client is not None:
            try:
                redis_client.ping()
            except Exception:
                raise unavailable("Redis 不可用", component="redis") from None
            checks["redis"] = "ok"
        return JSONResponse(checks)

    return router
