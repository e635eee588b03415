"""The app factory: one engine, the domain routers, error rendering and middleware."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from sqlalchemy.engine import Engine

from catalog import views as catalog_views
from catalog.hosted import HostedCatalog
from catalog.responses import JSONResponse
from gateway import data_api, docs, health, problems
from gateway.database import create_engine
from gateway.middleware import RequestContextMiddleware
from gateway.settings import Settings

DESCRIPTION = """
公共数据开放与授权运营网关 — the public-data open-service and authorized-operation gateway.

Unconditional datasets (无条件开放) are open to everyone; conditional ones (有条件开放) answer
only through a grant; closed ones (不予开放) have no data API. Errors are RFC 9457
`application/problem+json` with a stable `code`.
"""


def _anonymous_sees_closed() -> bool:
    # Until callers authenticate nobody is a data_admin, so closed datasets stay hidden.
    return False


def create_app(settings: Settings | None = None, *, engine: Engine | None = None) -> FastAPI:
    settings = settings or Settings()
    engine = engine or create_engine(settings.sqlalchemy_url, pool_size=settings.db_pool_size)
    hosted_catalog = HostedCatalog(engine, ttl=settings.catalog_cache_seconds)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        engine.dispose()

    app = FastAPI(
        title="opengate",
        version="0.1.0",
        description=DESCRIPTION,
        docs_url=None,
        redoc_url=None,
        default_response_class=JSONResponse,
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.engine = engine
    app.state.hosted_catalog = hosted_catalog

    problems.install(app)
    # The data routes come first: routes are matched in order and these are the hot ones.
    app.include_router(data_api.build_router(engine, hosted_catalog))
    app.include_router(catalog_views.build_router(engine, sees_closed=_anonymous_sees_closed))
    app.include_router(health.build_router(engine, redis_url=settings.redis_url))
    docs.install(app)
    app.add_middleware(RequestContextMiddleware)
    return app
