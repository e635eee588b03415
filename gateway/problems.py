"""Every error a client sees, rendered once as RFC 9457 `application/problem+json`."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.responses import Response

from audit.events import notes
from catalog.problems import TITLES, Problem, problem_document

HTTP_CODES = {
    400: "invalid_parameter",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    429: "rate_limited",
    503: "unavailable",
}
HTTP_DETAILS = {
    404: "请求的资源不存在",
    405: "该资源不支持此请求方法",
}


def problem_response(
    request: Request,
    status: int,
    code: str,
    detail: str,
    *,
    headers: dict[str, str] | None = None,
    extra: dict[str, Any] | None = None,
) -> Response:
    request_id = request.scope.get("state", {}).get("request_id")
    notes(request.scope)["error"] = code
    document = problem_document(status, code, detail, request_id, extra)
    return Response(
        orjson.dumps(document),
        status_code=status,
        media_type="application/problem+json",
        headers=headers,
    )


async def _on_problem(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, Problem)
    return problem_response(
        request, exc.status, exc.code, exc.detail, headers=exc.headers, extra=exc.extra
    )


async def _on_http(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = HTTP_CODES.get(exc.status_code, "invalid_parameter")
    detail = HTTP_DETAILS.get(exc.status_code) or (
        exc.detail if isinstance(exc.detail, str) else TITLES.get(code, code)
    )
    return problem_response(request, exc.status_code, code, detail, headers=exc.headers)


async def _on_validation(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    first = exc.errors()[0] if exc.errors() else {}
    location = [str(p) for p in first.get("loc", ()) if p not in ("query", "body", "path")]
    parameter = ".".join(location) or "request"
    # pydantic's `msg` describes the rule, never the input value.
    detail = f"参数 {parameter} 无效：{first.get('msg', '格式错误')}"
    return problem_response(
        request, 400, "invalid_parameter", detail, extra={"parameter": parameter}
    )


def install(app: FastAPI) -> None:
    app.add_exception_handler(Problem, _on_problem)
    app.add_exception_handler(HTTPException, _on_http)
    app.add_exception_handler(RequestValidationError, _on_validation)
