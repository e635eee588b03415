"""Data endpoints: records (paged), one record, export (streamed).

Each request: find the published version → `decide()` a plan (via AccessResolver) →
parse the query against the plan → one SQL statement → mask row by row → render. The plan
is the single source of which fields go out and how.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from typing import Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Request
from sqlalchemy.engine import Engine
from starlette.responses import Response, StreamingResponse

from audit.events import audited, note
from auth.principal import principal_of
from catalog.cursors import BoundCursors, CursorBox
from catalog.hosted import HostedCatalog, HostedDataset
from catalog.problems import Problem, not_found
from catalog.query import FieldAccess, parse_key, parse_record_query
from catalog.statements import StatementCache, fetch_one, fetch_page, stream_rows
from gateway import quotas
from gateway.access import AccessResolver
from gateway.data_events import DataEvents
from gateway.exports import EXPORT_THREADS, ExportResponse, ExportSlots, StreamCount, caller_key
from gateway.renderers import RENDERERS, rendering
from gateway.route_marks import DATA_TAG
from gateway.schemas import DATA_ERRORS, OneRecord, RecordsPage, rendered_answer, streamed_answer
from gateway.settings import Settings
from policies.decide import Plan


def _documented(*names: str) -> dict[str, Any]:
    """Query parameters for the OpenAPI document only. The endpoints read the query string
    themselves (filters are open-ended), and leaving these out of the signature spares
    FastAPI's per-parameter validation on the hot path."""
    described = {
        "fields": "comma-separated field names",
        "order_by": "e.g. `district,-aqi`; the primary key always breaks ties",
        "limit": "1–10000, default 100",
        "cursor": "`next_cursor` of the previous page",
        "format": f"{' | '.join(RENDERERS.names)} (or the Accept header)",
        "csv_formulas": "escape (default: text cells starting with = + - @ tab CR get a "
        "leading ' and quotes, OWASP) | raw (cells as stored, for programs)",
    }
    return {
        "parameters": [
            {
                "name": n,
                "in": "query",
                "required": False,
                "schema": {"type": "string"},
                "description": described[n],
            }
            for n in names
        ]
    }


def next_page_reference(request: Request, cursor: str) -> str:
    """The next page as a path-absolute URI reference (RFC 8288 resolves it against the
    request URL), so the link is right behind any proxy without trusting its Host. It is
    built from the parsed parameters, each re-encoded: nothing the client sent can close
    the `<…>` or add a link of its own."""
    kept = [(k, v) for k, v in request.query_params.multi_items() if k != "cursor"]
    kept.append(("cursor", cursor))
    path = quote(request.scope.get("root_path", "") + request.scope["path"])
    return f"{path}?{urlencode(kept, quote_via=quote)}"


def cursor_binding(request: Request, plan: Plan) -> str:
    """Whom a cursor belongs to: the caller (app, account or consent, anonymous) and the
    grant version that shaped the page, so it serves nobody else and no other terms."""
    principal = principal_of(request)
    if principal is None:
        caller = "anonymous"
    else:
        caller = (
            f"{principal.kind}:{principal.client_id or ''}:{principal.user_id or ''}:"
            f"{principal.consent_id or ''}"
        )
    if plan.grant is not None:
        caller += f"|grant:{plan.grant.id}.{plan.grant.version}"
    return caller


def key_not_permitted(hosted: HostedDataset) -> Problem:
    """`/records/{pk}` when the key is not clear to the caller: a 200/404 there would be
    an oracle for the hidden key, so it is refused like filtering on the key."""
    return Problem(
        403,
        "field_not_permitted",
        f"主键 {hosted.primary_key} 未以明文提供给调用方，不能按主键读取单条记录，"
        "请使用 records 查询",
        parameter="key",
    )


def build_router(
    engine: Engine,
    hosted_catalog: HostedCatalog,
    access: AccessResolver,
    events: DataEvents,
    cursor_box: CursorBox,
    settings: Settings | None = None,
) -> APIRouter:
    router = APIRouter(prefix="/api/v1/datasets", tags=[DATA_TAG])  # the data mark
    dialect = engine.dialect.name
    statements = StatementCache(engine)
    settings = settings or Settings()
    export_slots = ExportSlots(settings.exports_per_caller)

    def published(dataset_id: str) -> HostedDataset:
        hosted = hosted_catalog.get(dataset_id)
        if hosted is None:
            raise not_found(f"数据集 {dataset_id} 不存在")
        return hosted

    def cursors_for(request: Request, hosted: HostedDataset, plan: Plan) -> BoundCursors:
        return cursor_box.bind(hosted.id, hosted.version, cursor_binding(request, plan))

    def transforms(plan: Plan, names: tuple[str, ...]) -> list[str]:
        return [plan.transform_of(n) for n in names]

    @router.get(
        "/{dataset_id}/records",
        summary="Query records",
        description=(
            "Filters: `name=value` or `name__op=value`, op in ne, gt, gte, lt, lte, in, "
            "contains, startswith, isnull. Keyset pages: follow `next_cursor` or the "
            "`Link: rel=next` header."
        ),
        openapi_extra=_documented(
            "fields", "order_by", "limit", "cursor", "format", "csv_formulas"
        ),
        responses={200: rendered_answer(RecordsPage), **DATA_ERRORS},
    )
    @audited("data.records")
    def records(dataset_id: str, request: Request) -> Response:
        hosted = published(dataset_id)
        plan = access.plan(request, hosted, "records")
        render = rendering(request, default="json")
        params = [(k, v) for k, v in request.query_params.multi_items() if k != "format"]
        cursors = cursors_for(request, hosted, plan)
        query = parse_record_query(
            params,
            hosted,
            FieldAccess(plan.visible, plan.clear),
            dialect=dialect,
            cursors=cursors,
        )
        allowed = quotas.admit(engine, plan, rows=query.limit)
        trimmed = allowed < query.limit
        if trimmed:
            query = replace(query, limit=allowed)
        page = fetch_page(
            engine, statements, hosted, query, row_filter=plan.row_filter, cursors=cursors
        )
        quotas.refund_rows(engine, plan, allowed - len(page.rows))
        names = query.fields
        events.note_plan(
            request, plan, hosted, names, filters=query.filters, format=render.renderer.name
        )
        note(request, row_count=len(page.rows))
        mask = access.row_transformer(plan, hosted, names)
        rows = mask(page.rows) if mask else page.rows
        headers = {"X-Dataset-Version": str(hosted.version)}
        if trimmed:
            headers["X-Quota-Trimmed"] = "true"
            headers["X-Quota-Rows-Remaining"] = "0"
        if page.next_cursor:
            headers["Link"] = f'<{next_page_reference(request, page.next_cursor)}>; rel="next"'
        frame = render.frame(hosted, names, transforms(plan, names))
        body = render.renderer.page(frame, rows, page.next_cursor)
        return Response(body, media_type=render.renderer.media_type, headers=headers)

    @router.get(
        "/{dataset_id}/records/{key}",
        summary="One record by primary key",
        openapi_extra=_documented("fields", "format", "csv_formulas"),
        responses={200: rendered_answer(OneRecord), **DATA_ERRORS},
    )
    @audited("data.record")
    def record(dataset_id: str, key: str, request: Request) -> Response:
        fields = request.query_params.get("fields")
        hosted = published(dataset_id)
        plan = access.plan(request, hosted, "records")
        render = rendering(request, default="json")
        query = parse_record_query(
            [("fields", fields)] if fields else [],
            hosted,
            FieldAccess(plan.visible, plan.clear),
            dialect=dialect,
        )
        events.note_plan(
            request,
            plan,
            hosted,
            query.fields,
            key=events.digest(key),
            format=render.renderer.name,
        )
        if hosted.primary_key not in plan.clear:
            raise key_not_permitted(hosted)  # before the key is even parsed: no oracle
        quotas.admit(engine, plan, rows=1)
        value = parse_key(hosted, key, dialect)
        row = None
        if value is not None:
            row = fetch_one(engine, statements, hosted, query, value, row_filter=plan.row_filter)
        if row is None:
            quotas.refund_rows(engine, plan, 1)
        note(request, row_count=0 if row is None else 1)
        if row is None:
            raise not_found(f"数据集 {dataset_id} 中没有主键为该值的记录")
        mask = access.row_transformer(plan, hosted, query.fields)
        if mask:
            row = mask([row])[0]
        frame = render.frame(hosted, query.fields, transforms(plan, query.fields))
        return Response(render.renderer.one(frame, row), media_type=render.renderer.media_type)

    @router.get(
        "/{dataset_id}/export",
        summary="Every permitted row, streamed",
        openapi_extra=_documented("fields", "order_by", "format", "csv_formulas"),
        response_class=StreamingResponse,
        responses={200: streamed_answer(), **DATA_ERRORS},
    )
    @audited("data.export")
    def export(dataset_id: str, request: Request) -> Response:
        hosted = published(dataset_id)
        plan = access.plan(request, hosted, "records")
        render = rendering(request, default="csv")
        params = [(k, v) for k, v in request.query_params.multi_items() if k != "format"]
        query = parse_record_query(
            params, hosted, FieldAccess(plan.visible, plan.clear), dialect=dialect, paged=False
        )
        names = query.fields
        renderer = render.renderer
        writer = renderer.stream(render.frame(hosted, names, transforms(plan, names)))
        mask = access.row_transformer(plan, hosted, names)

        count = StreamCount()
        events.note_plan(request, plan, hosted, names, filters=query.filters, format=renderer.name)
        release = export_slots.take(caller_key(request))  # 429 beyond the caller's limit
        note(request, stream=count)
        budget = None
        try:
            if plan.grant is not None:
                quotas.count_request(engine, plan)
                if "rows_per_day" in plan.grant.quotas:
                    budget = quotas.reserve_rows(engine, plan, plan.grant.quotas["rows_per_day"])
        except BaseException:
            release()
            raise

        def body() -> Iterator[bytes]:
            head = writer.head()
            if head:
                yield head
            for batch in stream_rows(
                engine,
                statements,
                hosted,
                query,
                row_filter=plan.row_filter,
                batch=settings.export_chunk_rows,
            ):
                if budget is not None:
                    batch = batch[: budget - count.rows]  # the day's rows quota: trim, say so
                count.rows += len(batch)
                out = mask(batch) if mask else batch
                yield writer.rows(out)
                if budget is not None and count.rows >= budget:
                    break
            tail = writer.tail()
            if tail:
                yield tail
            count.complete = True

        def close() -> None:  # however the answer ended (done, dropped, refused)
            try:
                if budget is not None:
                    quotas.refund_rows(engine, plan, budget - count.rows)
            finally:
                release()

        return ExportResponse(
            body(),
            send_timeout=settings.export_send_timeout,
            threads=None if engine.dialect.name == "sqlite" else EXPORT_THREADS,
            counter=count,
            on_close=close,
            media_type=renderer.media_type,
            headers={
                "Content-Disposition": renderer.attachment(f"{hosted.id}-v{hosted.version}"),
                "X-Dataset-Version": str(hosted.version),
            },
        )

    return router
