"""Catalog routes (no token needed): search, detail, DCAT JSON-LD. Routes at module level;
the rows are answered through `catalog.schemas`."""

from typing import Annotated, Any

from fastapi import APIRouter, Query

from catalog import service
from catalog.models import OpenType
from catalog.request_state import PublicUrlDep, SeesClosedDep, SessionDep
from catalog.schemas import DatasetDetail, DatasetPage, DatasetSummary, DcatCatalog
from kernel.problem_schema import problem_responses
from kernel.responses import JSONLDResponse, JSONResponse

router = APIRouter(prefix="/api/v1", tags=["catalog"])


@router.get(
    "/datasets",
    response_class=JSONResponse,
    summary="检索数据目录",
    response_model=DatasetPage,
    responses=problem_responses(400, 401, 429, 503),
)
def list_datasets(
    db: SessionDep,
    include_closed: SeesClosedDep,
    q: Annotated[str | None, Query(max_length=100, description="substring, Chinese ok")] = None,
    theme: str | None = None,
    publisher: str | None = None,
    open_type: OpenType | None = None,
    level: Annotated[int | None, Query(ge=1, le=4)] = None,
    zone: str | None = None,
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
    per_page: Annotated[int, Query(ge=1, le=service.MAX_PER_PAGE)] = 20,
) -> dict[str, Any]:
    where = service.CatalogFilter(q, theme, publisher, open_type, level, zone)
    total, rows = service.search_datasets(
        db, where=where, page=page, per_page=per_page, include_closed=include_closed
    )
    return {"total": total, "page": page, "per_page": per_page, "data": rows}


@router.get(
    "/datasets/{dataset_id}",
    response_class=JSONResponse,
    summary="数据集详情（元数据与字段字典）",
    response_model=DatasetDetail,
    responses=problem_responses(401, 404, 429, 503),
)
def get_dataset(dataset_id: str, db: SessionDep, include_closed: SeesClosedDep) -> DatasetDetail:
    dataset = service.get_dataset(db, dataset_id=dataset_id, include_closed=include_closed)
    fields = service.dataset_fields(db, dataset=dataset)
    return DatasetDetail(
        **dict(DatasetSummary.model_validate(dataset)),
        primary_key=next((f.name for f in fields if f.primary_key), None),
        fields=fields,
    )


@router.get(
    "/catalog.jsonld",
    response_class=JSONLDResponse,
    summary="以 DCAT（JSON-LD）发布的数据目录",
    response_model=DcatCatalog,
    responses=problem_responses(401, 429, 503),
)
def catalog_jsonld(db: SessionDep, base_url: PublicUrlDep) -> JSONLDResponse:
    # Built by hand: JSON-LD keys are not identifiers (DcatCatalog only describes it).
    return JSONLDResponse(service.dcat_catalog(db, base_url=base_url))
