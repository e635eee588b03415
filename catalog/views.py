"""Catalog routes (no token needed): search, detail, DCAT JSON-LD.

No `from __future__ import annotations` here: FastAPI must see the dependency aliases
defined inside `build_router` as real objects.
"""

from collections.abc import Callable, Iterator
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from sqlalchemy.engine import Engine
from sqlmodel import Session

from catalog import service
from catalog.models import OpenType
from catalog.problem_schema import problem_responses
from catalog.responses import JSONLDResponse, JSONResponse
from catalog.schemas import DatasetDetail, DatasetPage, DcatCatalog


def build_router(engine: Engine, *, sees_closed: Callable[..., bool], public_url: str) -> APIRouter:
    """`sees_closed` is a dependency telling whether the caller may see closed datasets;
    `public_url` is the installation's configured address (the issuer), which absolute URLs
    are built from — never the request's `Host` header, which the client chooses."""
    base_url = public_url.rstrip("/")
    router = APIRouter(prefix="/api/v1", tags=["catalog"])

    def session() -> Iterator[Session]:
        with Session(engine) as s:
            yield s

    SessionDep = Annotated[Session, Depends(session, scope="function")]  # noqa: N806 (a type alias)
    ClosedDep = Annotated[bool, Depends(sees_closed)]  # noqa: N806

    @router.get(
        "/datasets",
        response_class=JSONResponse,
        summary="Search the catalog",
        response_model=DatasetPage,
        responses=problem_responses(400, 401, 429, 503),
    )
    def list_datasets(
        db: SessionDep,
        include_closed: ClosedDep,
        q: Annotated[str | None, Query(max_length=100, description="substring, Chinese ok")] = None,
        theme: str | None = None,
        publisher: str | None = None,
        open_type: OpenType | None = None,
        level: Annotated[int | None, Query(ge=1, le=4)] = None,
        zone: str | None = None,
        page: Annotated[int, Query(ge=1, le=100_000)] = 1,
        per_page: Annotated[int, Query(ge=1, le=service.MAX_PER_PAGE)] = 20,
    ) -> JSONResponse:
        where = service.CatalogFilter(q, theme, publisher, open_type, level, zone)
        total, rows = service.search_datasets(
            db, where=where, page=page, per_page=per_page, include_closed=include_closed
        )
        return JSONResponse(
            {
                "total": total,
                "page": page,
                "per_page": per_page,
                "data": [service.dataset_summary(d) for d in rows],
            }
        )

    @router.get(
        "/datasets/{dataset_id}",
        response_class=JSONResponse,
        summary="Dataset detail",
        response_model=DatasetDetail,
        responses=problem_responses(401, 404, 429, 503),
    )
    def get_dataset(dataset_id: str, db: SessionDep, include_closed: ClosedDep) -> JSONResponse:
        dataset = service.get_dataset(db, dataset_id=dataset_id, include_closed=include_closed)
        return JSONResponse(
            service.dataset_detail(dataset, service.dataset_fields(db, dataset=dataset))
        )

    @router.get(
        "/catalog.jsonld",
        response_class=JSONLDResponse,
        summary="Catalog as DCAT",
        response_model=DcatCatalog,
        responses=problem_responses(401, 429, 503),
    )
    def catalog_jsonld(db: SessionDep) -> JSONLDResponse:
        return JSONLDResponse(service.dcat_catalog(db, base_url=base_url))

    return router
