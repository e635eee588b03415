"""Data endpoints: records (paged), one record, export (streamed).

Each route is parse → `policies.access` (the one enforcement door: plan, field check,
quota, read, mask, audit notes) → render. The plan is the single source of which fields go
out and how; these routes only pick the format and write the answer.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Request
from starlette.responses import Response, StreamingResponse

from audit.events import audited, notes
from auth.principal import principal_of
from gateway.direct_route import DirectRoute
from gateway.exports import EXPORT_THREADS, ExportResponse, ExportSlots, caller_key
from gateway.renderers import RENDERERS, rendering
from gateway.route_marks import DATA_TAG
from gateway.schemas import DATA_ERRORS, OneRecord, RecordsPage, rendered_answer, streamed_answer
from gateway.settings import Settings
from kernel.problems import Problem
from policies.access import Enforcer


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


def _params(request: Request) -> list[tuple[str, str]]:
    return [(k, v) for k, v in request.query_params.multi_items() if k != "format"]


def build_router(enforcer: Enforcer, settings: Settings | None = None) -> APIRouter:
    # The data mark; the endpoints are called without FastAPI's dependency resolution.
    router = APIRouter(prefix="/api/v1/datasets", tags=[DATA_TAG], route_class=DirectRoute)
    settings = settings or Settings()
    export_slots = ExportSlots(settings.exports_per_caller)
    sqlite = enforcer.dialect == "sqlite"

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
        principal = principal_of(request)
        try:
            render = rendering(request, default="json")
        except Problem:  # a refusal of the caller comes first, as on every data route
            enforcer.enforce(principal, dataset_id, "records")
            raise
        renderer = render.renderer
        page = enforcer.records(
            principal,
            dataset_id,
            _params(request),
            format=renderer.name,
            notes=notes(request.scope),
        )
        headers = {"X-Dataset-Version": str(page.hosted.version)}
        if page.trimmed:
            headers["X-Quota-Trimmed"] = "true"
            headers["X-Quota-Rows-Remaining"] = "0"
        if page.next_cursor:
            headers["Link"] = f'<{next_page_reference(request, page.next_cursor)}>; rel="next"'
        frame = render.frame(page.hosted, page.names, page.transforms)
        body = renderer.page(frame, page.rows, page.next_cursor)
        return Response(body, media_type=renderer.media_type, headers=headers)

    @router.get(
        "/{dataset_id}/records/{key}",
        summary="One record by primary key",
        openapi_extra=_documented("fields", "format", "csv_formulas"),
        responses={200: rendered_answer(OneRecord), **DATA_ERRORS},
    )
    @audited("data.record")
    def record(dataset_id: str, key: str, request: Request) -> Response:
        fields = request.query_params.get("fields")
        access = enforcer.enforce(
            principal_of(request), dataset_id, "records", notes=notes(request.scope)
        )
        render = rendering(request, default="json")
        found = access.fetch_one(key, fields, format=render.renderer.name)
        frame = render.frame(found.hosted, found.names, found.transforms)
        return Response(
            render.renderer.one(frame, found.row), media_type=render.renderer.media_type
        )

    @router.get(
        "/{dataset_id}/export",
        summary="Every permitted row, streamed",
        openapi_extra=_documented("fields", "order_by", "format", "csv_formulas"),
        response_class=StreamingResponse,
        responses={200: streamed_answer(), **DATA_ERRORS},
    )
    @audited("data.export")
    def export(dataset_id: str, request: Request) -> Response:
        access = enforcer.enforce(
            principal_of(request), dataset_id, "records", notes=notes(request.scope)
        )
        render = rendering(request, default="csv")
        renderer = render.renderer
        job = access.export(_params(request), format=renderer.name)
        writer = renderer.stream(render.frame(job.hosted, job.names, job.transforms))
        release = export_slots.take(caller_key(request))  # 429 beyond the caller's limit
        try:
            job.start()  # counts the request, reserves the day's rows
        except BaseException:
            release()
            raise

        def body() -> Iterator[bytes]:
            head = writer.head()
            if head:
                yield head
            for batch in job.batches():
                yield writer.rows(batch)
            tail = writer.tail()
            if tail:
                yield tail
            job.count.complete = True

        def close() -> None:  # however the answer ended (done, dropped, refused)
            try:
                job.close()  # gives back reserved rows not sent
            finally:
                release()

        hosted = job.hosted
        return ExportResponse(
            body(),
            send_timeout=settings.export_send_timeout,
            threads=None if sqlite else EXPORT_THREADS,
            counter=job.count,
            on_close=close,
            media_type=renderer.media_type,
            headers={
                "Content-Disposition": renderer.attachment(f"{hosted.id}-v{hosted.version}"),
                "X-Dataset-Version": str(hosted.version),
            },
        )

    return router
