"""Liveness and readiness probes (never rate limited, no token).

Routes at module level: the engine from `app.state` (catalog.request_state), the Redis
client to ping from `app.state.readiness_redis` (None when no Redis is configured)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from sqlalchemy import text

from catalog.request_state import EngineDep
from gateway.problems import unavailable
from gateway.schemas import Liveness, Readiness
from kernel.problem_schema import problem_responses
from kernel.responses import JSONResponse

router = APIRouter(tags=["health"])


def redis_client(redis_url: str | None) -> Any:
    """The client `/readyz` pings, with short deadlines (a probe must answer fast)."""
    if not redis_url:
        return None
    import redis

    return redis.Redis.from_url(redis_url, socket_timeout=1, socket_connect_timeout=1)


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
def readyz(engine: EngineDep, request: Request) -> JSONResponse:
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception:
        raise unavailable("数据库不可用", component="database") from None
    checks = {"status": "ready", "database": "ok"}
    client = request.app.state.readiness_redis
    if client is not None:
        try:
            client.ping()
        except Exception:
            raise unavailable("Redis 不可用", component="redis") from None
        checks["redis"] = "ok"
    return JSONResponse(checks)
