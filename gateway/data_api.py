"""Data endpoints: records (paged), one record, export (streamed).

Each request: find the published version → `decide()` a plan → parse the query against
the plan → one SQL statement → render. The plan is the single source of which fields go
out and how.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Query, Request
from sqlalchemy.engine import Engine
from starlette.responses import Response, StreamingResponse

from catalog.hosted import HostedCatalog, HostedDataset
from catalog.problems import not_found
from catalog.query import FieldAccess, fetch_one, fetch_page, parse_record_query, stream_rows
from gateway.formats import MEDIA_TYPES, CsvWriter, jsonl_lines, negotiate
from policies.plan import Plan, decide

FieldsParam = Annotated[str | None, Query(description="comma-separated field names")]
OrderParam = Annotated[str | None, Query(description="e.g. `district,-aqi`")]
LimitParam = Annotated[str | None, Query(description="1–10000, default 100")]
CursorParam = Annotated[str | None, Query(description="`next_cursor` of the previous page")]
FormatParam = Annotated[str | None, Query(description="json | csv | jsonl")]


def build_router(engine: Engine, hosted_catalog: HostedCatalog) -> APIRouter:
    router = APIRouter(prefix="/api/v1/datasets", tags=["data"])
    dialect = engine.dialect.name

    def published(dataset_id: str) -> HostedDataset:
        hosted = hosted_catalog.get(dataset_id)
        if hosted is None:
            raise not_found(f"数据集 {dataset_id} 不存在")
        return hosted

    def fields_header(plan: Plan, names: tuple[str, ...]) -> list[dict[str, str]]:
        return [{"name": n, "transform": plan.transform_of(n)} for n in names]

    @router.get(
        "/{dataset_id}/records",
        summary="Query records",
        description=(
            "Filters: `name=value` or `name__op=value`, op in ne, gt, gte, lt, lte, in, "
            "contains, startswith, isnull. Keyset pages: follow `next_cursor` or the "
            "`Link: rel=next` header."
        ),
    )
    def records(
        dataset_id: str,
        request: Request,
        fields: FieldsParam = None,
        order_by: OrderParam = None,
        limit: LimitParam = None,
        cursor: CursorParam = None,
        format: FormatParam = None,
    ) -> Response:
        hosted = published(dataset_id)
        plan = decide(hosted=hosted, mode="records")
        fmt = negotiate(request)
        params = [(k, v) for k, v in request.query_params.multi_items() if k != "format"]
        query = parse_record_query(
            params, hosted, FieldAccess(plan.visible, plan.clear), dialect=dialect
        )
        with engine.connect() as conn:
            page = fetch_page(conn, hosted, query, row_filter=dict(plan.row_filter))
        headers = {"X-Dataset-Version": str(hosted.version)}
        if page.next_cursor:
            next_url = request.url.include_query_params(cursor=page.next_cursor)
            headers["Link"] = f'<{next_url}>; rel="next"'
        names = query.fields
        if fmt == "json":
            body = orjson.dumps(
                {
                    "dataset": hosted.id,
                    "version": hosted.version,
                    "fields": fields_header(plan, names),
                    "data": [dict(zip(names, row, strict=True)) for row in page.rows],
                    "next_cursor": page.next_cursor,
                }
            )
        elif fmt == "csv":
            writer = CsvWriter(hosted, names, [plan.transform_of(n) for n in names])
            body = (writer.header() + writer.rows(page.rows)).encode()
        else:
            body = jsonl_lines(names, page.rows)
        return Response(body, media_type=MEDIA_TYPES[fmt], headers=headers)

    @router.get("/{dataset_id}/records/{key}", summary="One record by primary key")
    def record(dataset_id: str, key: str, fields: FieldsParam = None) -> Response:
        hosted = published(dataset_id)
        plan = decide(hosted=hosted, mode="records")
        query = parse_record_query(
            [("fields", fields)] if fields else [],
            hosted,
            FieldAccess(plan.visible, plan.clear),
            dialect=dialect,
        )
        with engine.connect() as conn:
            row = fetch_one(conn, hosted, query.fields, key, dialect)
        if row is None:
            raise not_found(f"数据集 {dataset_id} 中没有主键为该值的记录")
        if plan.row_filter and any(
            row[query.fields.index(k)] != v for k, v in plan.row_filter.items() if k in query.fields
        ):
            raise not_found(f"数据集 {dataset_id} 中没有主键为该值的记录")
        body: dict[str, Any] = {
            "dataset": hosted.id,
            "version": hosted.version,
            "fields": fields_header(plan, query.fields),
            "data": dict(zip(query.fields, row, strict=True)),
        }
        return Response(orjson.dumps(body), media_type=MEDIA_TYPES["json"])

    @router.get("/{dataset_id}/export", summary="Every permitted row, streamed")
    def export(
        dataset_id: str,
        request: Request,
        fields: FieldsParam = None,
        order_by: OrderParam = None,
        format: FormatParam = None,
    ) -> StreamingResponse:
        hosted = published(dataset_id)
        plan = decide(hosted=hosted, mode="records")
        fmt = negotiate(request, allowed=("csv", "jsonl"))
        params = [(k, v) for k, v in request.query_params.multi_items() if k != "format"]
        query = parse_record_query(
            params, hosted, FieldAccess(plan.visible, plan.clear), dialect=dialect, paged=False
        )
        names = query.fields
        writer = CsvWriter(hosted, names, [plan.transform_of(n) for n in names])
        row_filter = dict(plan.row_filter)

        def body() -> Iterator[bytes]:
            with engine.connect() as conn:
                if fmt == "csv":
                    yield writer.header().encode()
                for batch in stream_rows(conn, hosted, query, row_filter=row_filter):
                    if fmt == "csv":
                        yield writer.rows(batch).encode()
                    else:
                        yield jsonl_lines(names, batch)

        filename = f"{hosted.id}-v{hosted.version}.{fmt}"
        return StreamingResponse(
            body(),
            media_type=MEDIA_TYPES[fmt],
            headers={
                "Content-Disposition": f'attachment; filename="{filename}"',
                "X-Dataset-Version": str(hosted.version),
            },
        )

    return router
