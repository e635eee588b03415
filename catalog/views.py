"""Catalog routes (no token needed): search, detail, the DCAT-AP catalog and its themes.
Routes at module level; the rows are answered through `catalog.schemas`."""

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, Query, Request, Response
from rdflib import Graph

from catalog import dcat, service
from catalog.models import OpenType
from catalog.request_state import PublicUrlDep, SeesClosedDep, SessionDep
from catalog.schemas import DatasetDetail, DatasetPage, DatasetSummary, DcatCatalog
from kernel.problem_schema import problem_responses
from kernel.problems import Problem
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


RDF_FORMAT = Annotated[
    Literal["jsonld", "ttl", "rdf"] | None,
    Query(alias="format", description="jsonld、ttl 或 rdf；给出时优先于 Accept 头"),
]
# The serializations documented on each RDF route (JSON-LD is the response model's).
RDF_CONTENT = {
    200: {
        "description": "DCAT-AP 目录：JSON-LD、Turtle 或 RDF/XML（按 Accept 头或 format 参数）",
        "content": {
            "text/turtle": {"schema": {"type": "string"}},
            "application/rdf+xml": {"schema": {"type": "string"}},
        },
    },
    **problem_responses(400, 401, 406, 429, 503),
}


async def catalog_info(request: Request) -> dcat.CatalogInfo:
    # The settings are the gateway's; catalog reads the four it publishes by name.
    settings = request.app.state.settings
    return dcat.CatalogInfo(
        title=settings.catalog_title,
        description=settings.catalog_description,
        publisher=settings.catalog_publisher,
        contact_email=settings.catalog_contact_email,
    )


CatalogInfoDep = Annotated[dcat.CatalogInfo, Depends(catalog_info)]


def _rdf_answer(graph: Graph, fmt: str | None, accept: str | None) -> Response:
    chosen = fmt or dcat.negotiate(accept)
    if chosen is None:
        raise Problem(
            406,
            "not_acceptable",
            "目录只提供 application/ld+json、text/turtle 和 application/rdf+xml 三种格式，"
            "请修改 Accept 头或使用 format 参数（jsonld、ttl、rdf）",
        )
    media = dcat.FORMATS[chosen][0]
    return Response(
        dcat.serialize(graph, chosen),
        media_type=media,
        headers={"Vary": "Accept"},
    )


@router.get(
    "/catalog",
    response_class=JSONLDResponse,
    summary="以 DCAT-AP 发布的数据目录（按 Accept 头协商 JSON-LD、Turtle 或 RDF/XML）",
    response_model=DcatCatalog,
    responses=RDF_CONTENT,
)
# The first address of the catalog: the same graph, the same negotiation, JSON-LD by default.
@router.get(
    "/catalog.jsonld",
    response_class=JSONLDResponse,
    summary="以 DCAT-AP 发布的数据目录（默认 JSON-LD，亦可协商 Turtle 或 RDF/XML）",
    response_model=DcatCatalog,
    responses=RDF_CONTENT,
)
def catalog_rdf(
    db: SessionDep,
    base_url: PublicUrlDep,
    info: CatalogInfoDep,
    fmt: RDF_FORMAT = None,
    accept: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> Response:
    graph = dcat.catalog_graph(db, base_url=base_url, info=info)
    return _rdf_answer(graph, fmt, accept)


@router.get(
    "/themes",
    response_class=JSONLDResponse,
    summary="数据目录主题分类（SKOS 概念体系）",
    response_model=DcatCatalog,
    responses=RDF_CONTENT,
)
def themes(
    db: SessionDep,
    base_url: PublicUrlDep,
    fmt: RDF_FORMAT = None,
    accept: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> Response:
    # dcat:theme IRIs are hash IRIs of this document.
    return _rdf_answer(dcat.themes_graph(db, base_url=base_url), fmt, accept)
