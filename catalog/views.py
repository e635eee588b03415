"""Catalog routes (no token needed): search, detail, DCAT JSON-LD.

No `from __future__ import annotations` here: FastAPI must see the dependency aliases
defined inside `build_router` as real objects.
"""

from collections.abc import Callable, Iterator
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from sqlalchemy.engine import Engine
from sqlmodel import Session

from catalog import service
from catalog.models import OpenType
from catalog.responses import JSONLDResponse, JSONResponse


def build_router(engine: Engine, *, sees_closed: Callable[..., bool]) -> APIRouter:
    """`sees_closed` is a dependency telling whether the caller may see closed datasets."""
    router = APIRouter(prefix="/api/v1", tags=["catalog"])

    def session() -> Iterator[Session]:
        with Session(engine) as s:
            yield s

    SessionDep = Annotated[Session, Depends(session, scope="function")]  # noqa: N806 (a type alias)
    ClosedDep = Annotated[bool, Depends(sees_closed)]  # noqa: N806

    @router.get("/datasets", response_class=JSONResponse, summary="Search the catalog")
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

    @router.get("/datasets/{dataset_id}", response_class=JSONResponse, summary="Dataset detail")
    def get_dataset(dataset_id: str, db: SessionDep, include_closed: ClosedDep) -> JSONResponse:
        dataset = service.get_dataset(db, dataset_id=dataset_id, include_closed=include_closed)
        return JSONResponse(
            service.dataset_detail(dataset, service.dataset_fields(db, dataset=dataset))
        )

    @router.get("/catalog.jsonld", response_class=JSONLDResponse, summary="Catalog as DCAT")
    def catalog_jsonld(request: Request, db: SessionDep) -> JSONLDResponse:
        base_url = str(request.base_url).rstrip("/")
        return JSONLDResponse(service.dcat_catalog(db, base_url=base_url))

    return router
