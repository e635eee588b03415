"""Every error a client sees, rendered once as RFC 9457 `application/problem+json`.

Database failures are sorted here too: an outage, a lock or a full pool is the service
being unavailable (503 with `Retry-After`), a statement the database will not take for
its size is the client's query being too complex (400); only the rest is a 500.
"""

from __future__ import annotations

import logging
import sqlite3
from typing import Any

import orjson
import psycopg
import sqlalchemy as sa
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.responses import Response

from audit.events import notes
from kernel.problem_codes import BY_STATUS
from kernel.problems import TITLES, Problem, problem_document

log = logging.getLogger("opengate")

HTTP_CODES = BY_STATUS  # the code of a bare framework error, by status
HTTP_DETAILS = {
    404: "请求的资源不存在",
    405: "该资源不支持此请求方法",
}


RETRY_AFTER_SECONDS = 5
INTERNAL_ERROR_DETAIL = "服务器内部错误，请稍后重试；如需协助请提供 request_id"
# SQLite primary result codes that mean "not now" rather than "never".
SQLITE_UNAVAILABLE = {5: "busy", 6: "locked", 7: "nomem", 10: "ioerr", 13: "full", 14: "cantopen"}
# SQLite refusals of a statement for its size (SQLITE_ERROR carries them by message).
SQLITE_TOO_COMPLEX = (
    "expression tree is too large",
    "like or glob pattern too complex",
    "too many sql variables",
    "too many terms",
    "parser stack overflow",
)
# PostgreSQL SQLSTATE classes: connection, insufficient resources, operator intervention,
# system error; and single states worth retrying (serialization, deadlock, lock timeout).
PG_UNAVAILABLE_CLASSES = ("08", "53", "57", "58")
PG_UNAVAILABLE_STATES = ("40001", "40P01", "55P03")


def unavailable(detail: str, *, retry_after: int = RETRY_AFTER_SECONDS, **extra: Any) -> Problem:
    return Problem(503, "unavailable", detail, headers={"Retry-After": str(retry_after)}, **extra)


def too_complex() -> Problem:
    return Problem(
        400,
        "invalid_parameter",
        "查询过于复杂，数据库无法执行；请减少筛选条件或缩短筛选值",
        parameter="query",
    )


def database_failure(exc: BaseException) -> tuple[str, Problem] | None:
    """(a short kind for the log, the answer) for a database error the client is not to
    see as a 500; None for anything else (a bug)."""
    if isinstance(exc, sa.exc.TimeoutError):  # no pooled connection came free in time
        return "pool_timeout", unavailable("数据库连接已满，请稍后重试")
    if isinstance(exc, sa.exc.DBAPIError):
        if exc.connection_invalidated:
            return "disconnected", unavailable("数据库暂时不可用，请稍后重试")
        exc = exc.orig if exc.orig is not None else exc
    if isinstance(exc, sqlite3.Error):
        code = getattr(exc, "sqlite_errorcode", 1) & 0xFF
        if code in SQLITE_UNAVAILABLE:
            return f"sqlite_{SQLITE_UNAVAILABLE[code]}", unavailable("数据库繁忙，请稍后重试")
        if code == 18 or any(m in str(exc).lower() for m in SQLITE_TOO_COMPLEX):  # TOOBIG
            return "too_complex", too_complex()
        return None
    if isinstance(exc, psycopg.Error):
        state = exc.sqlstate or ""
        if state.startswith("54"):  # program limit exceeded: statement too complex
            return "too_complex", too_complex()
        if (
            not state  # no answer from the server at all: the connection is gone
            or state[:2] in PG_UNAVAILABLE_CLASSES
            or state in PG_UNAVAILABLE_STATES
        ):
            return f"postgres_{state or 'connection'}", unavailable("数据库暂时不可用，请稍后重试")
        return None
    if isinstance(exc, sa.exc.InterfaceError | sa.exc.DisconnectionError):
        return "disconnected", unavailable("数据库暂时不可用，请稍后重试")
    return None


def failure_problem(exc: BaseException, request_id: str | None) -> Problem:
    """The answer for an exception nobody handled, logged once per kind and interval
    (the repeat filter of gateway.logging_config): a traceback only for a real 500."""
    if isinstance(exc, Problem):
        return exc
    known = database_failure(exc)
    if known is None and exc.__cause__ is not None:
        # Starlette re-raises an error of a response already under way as a RuntimeError
        known = database_failure(exc.__cause__)
    if known is not None:
        kind, problem = known
        log.warning(
            "database failure (%s): answering %d, request %s",
            kind,
            problem.status,
            request_id,
            # one kind per answer: an outage is several errors at once (refused, reset, …)
            extra={"repeat_key": f"database:{problem.status}"},
        )
        return problem
    log.error("unhandled error in request %s", request_id, exc_info=exc)
    return Problem(500, "internal_error", INTERNAL_ERROR_DETAIL)


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


async def _on_database(request: Request, exc: Exception) -> Response:
    request_id = request.scope.get("state", {}).get("request_id")
    problem = failure_problem(exc, request_id)
    return problem_response(
        request,
        problem.status,
        problem.code,
        problem.detail,
        headers=problem.headers,
        extra=problem.extra,
    )


def install(app: FastAPI) -> None:
    app.add_exception_handler(Problem, _on_problem)
    for database_error in (sa.exc.SQLAlchemyError, sqlite3.Error, psycopg.Error):
        app.add_exception_handler(database_error, _on_database)
    app.add_exception_handler(HTTPException, _on_http)
    app.add_exception_handler(RequestValidationError, _on_validation)
