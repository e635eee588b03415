"""Liveness and readiness probes (never rate limited, no token). The readiness check is
one object (`app.state.readiness`), so `/readyz` and the system administrator's page
(/admin/system) report the same thing. Routes at module level."""

from __future__ import annotations

from fastapi import APIRouter, Request
from sqlalchemy import text
from sqlalchemy.engine import Engine

from gateway.problems import unavailable
from gateway.schemas import Liveness, Readiness
from kernel.problem_schema import problem_responses
from kernel.responses import JSONResponse

router = APIRouter(tags=["health"])

COMPONENT_DOWN = {"database": "数据库不可用", "redis": "Redis 不可用"}


class ReadinessProbe:
    """Asks the database (and Redis, when configured) to answer, now."""

    def __init__(self, engine: Engine, *, redis_url: str | None = None) -> None:
        self.engine = engine
        self.redis_client = None
        if redis_url:
            import redis

            # Short deadlines: a probe must answer fast.
            self.redis_client = redis.Redis.from_url(
                redis_url, socket_timeout=1, socket_connect_timeout=1
            )

    def __call__(self) -> dict[str, str]:
        """Each component: "ok" or "unavailable" (Redis only when configured)."""
        checks = {"database": "ok"}
        try:
            with self.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        except Exception:
            checks["database"] = "unavailable"
        if self.redis_client is not None:
            try:
                self.redis_client.ping()
                checks["redis"] = "ok"
            except Exception:
                checks["redis"] = "unavailable"
        return checks


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
def readyz(request: Request) -> JSONResponse:
    checks = request.app.state.readiness()
    for component in ("database", "redis"):
        if checks.get(component) == "unavailable":
            raise unavailable(COMPONENT_DOWN[component], component=component)
    return JSONResponse({"status": "ready", **checks})
