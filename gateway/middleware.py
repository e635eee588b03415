"""Pure ASGI middleware (no BaseHTTPMiddleware: it costs a task per request).

`RequestContextMiddleware` gives every request an id, puts it on every response, and is
the last line of defence: an exception nobody handled becomes a problem+json answer with
no traceback (503 for a database outage, else 500), logged once per kind and interval.
(The audit middleware, inside it, does the same for everything after it, so such an
answer is audited with the status it really had.)
"""

from __future__ import annotations

import binascii
import logging
import os
import re
import threading
import time
from typing import TYPE_CHECKING, Any

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from auth.principal import Authenticator
from gateway.database import WRITES
from gateway.logging_config import access_line_handler
from gateway.problems import failure_problem
from kernel.problems import Problem, problem_document

if TYPE_CHECKING:
    from gateway.metrics import RequestMetrics
    from gateway.signed_calls import SignedCalls

log = logging.getLogger("opengate")
# The access log names query parameters but never their values: a filter value may be an
# identity number (uvicorn's own access log, which prints the query string, is turned off).
access_log = logging.getLogger("opengate.access")

SANE_REQUEST_ID = re.compile(rb"[A-Za-z0-9._:-]{1,128}")


# A record's key may itself be sensitive (an identity number as primary key).
RECORD_KEY = re.compile(r"^(/api/v1/datasets/[^/]+/records/)[^/]+$")


def loggable_target(scope: Scope) -> str:
    """Path and query parameter names, without values or record keys."""
    path = scope["path"]
    if "/records/" in path:
        path = RECORD_KEY.sub(r"\1{key}", path)
    query = scope.get("query_string", b"")
    if not query:
        return path
    names = sorted({p.split(b"=")[0].decode("latin-1", "replace") for p in query.split(b"&") if p})
    return f"{path} ?{','.join(names)}" if names else path


def access_object(scope: Scope, status: int, seconds: float, rid: str) -> dict[str, Any]:
    """One request in the JSON log: who (client id), what (the route's template, query
    parameter names), how it ended — never a value, a record key or a token."""
    route = scope.get("route")
    template = getattr(route, "path", None)
    principal = scope.get("state", {}).get("principal")
    client = scope.get("client") or ("-", 0)
    return {
        "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()) + "Z",
        "level": "INFO",
        "logger": "opengate.access",
        "request_id": rid,
        "method": scope["method"],
        "route": template or loggable_target(scope).split(" ?", 1)[0],
        "query": loggable_target(scope).partition(" ?")[2] or None,
        "status": status,
        "duration_ms": round(seconds * 1000, 2),
        "client_id": principal.client_id if principal is not None else None,
        "ip": client[0],
    }


class _RandomIds:
    """32 random hex digits a call (what uuid4().hex gave), cut from 4 KiB of
    `os.urandom` read at a time: `os.urandom` gives up the GIL for its system call, and on
    a busy worker each such call handed the GIL to the route's or the audit writer's
    thread and queued to get it back — a switch there and back per request."""

    CHUNK = 4096

    def __init__(self) -> None:
        self._pool = b""
        self._at = 0
        self._lock = threading.Lock()  # uncontended: taken without giving up the GIL

    def __call__(self) -> bytes:
        with self._lock:
            at = self._at
            if at + 16 > len(self._pool):
                self._pool, at = os.urandom(self.CHUNK), 0
            self._at = at + 16
            return binascii.hexlify(self._pool[at : at + 16])


new_request_id = _RandomIds()


class RequestContextMiddleware:
    def __init__(
        self, app: ASGIApp, metrics: RequestMetrics | None = None, json_lines: bool = False
    ) -> None:
        self.app = app
        self.metrics = metrics
        # OPENGATE_LOG_FORMAT=json: the access line is one JSON object (see access_object).
        self.json_lines = json_lines
        # Under `serve` (logging configured before the app is built) the access line is
        # handed to the batching handler, without a LogRecord.
        self.access_lines = access_line_handler()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = b""
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                if SANE_REQUEST_ID.fullmatch(value):
                    request_id = value
                break
        if not request_id:
            request_id = new_request_id()
        rid = request_id.decode()
        scope.setdefault("state", {})["request_id"] = rid
        started = False
        status = 500
        began = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal started, status
            if message["type"] == "http.response.start":
                started = True
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), (b"x-request-id", request_id)]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception as exc:
            problem = failure_problem(exc, rid)
            if started:
                return  # the answer is under way: the server closes the connection
            await send_problem(send_with_id, problem, rid)
        finally:
            seconds = time.perf_counter() - began
            if self.metrics is not None:
                self.metrics.record(scope["path"], status, seconds)
            if access_log.isEnabledFor(logging.INFO):
                client = scope.get("client") or ("-", 0)
                if self.json_lines:
                    line = orjson.dumps(access_object(scope, status, seconds, rid)).decode()
                else:
                    line = (
                        f'{client[0]} "{scope["method"]} {loggable_target(scope)}" {status} '
                        f"{seconds * 1000:.1f}ms rid={rid}"
                    )
                if self.access_lines is not None:
                    self.access_lines.line(line)
                else:
                    access_log.info("%s", line)


async def send_problem(send: Send, problem: Problem, request_id: str | None) -> None:
    body = orjson.dumps(
        problem_document(problem.status, problem.code, problem.detail, request_id, problem.extra)
    )
    headers = [
        (b"content-type", b"application/problem+json"),
        (b"content-length", str(len(body)).encode()),
        *((k.lower().encode(), v.encode()) for k, v in problem.headers.items()),
    ]
    await send({"type": "http.response.start", "status": problem.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class WriteIntentMiddleware:
    """Innermost: marks a state-changing request (anything but GET, HEAD, OPTIONS) for the
    database layer, whose SQLite transactions then take the write lock as they begin
    (gateway.database.WRITES)."""

    READS = frozenset({"GET", "HEAD", "OPTIONS"})

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in self.READS:
            await self.app(scope, receive, send)
            return
        token = WRITES.set([0])
        try:
            await self.app(scope, receive, send)
        finally:
            WRITES.reset(token)


# The CKAN Action API's routes, where `Authorization: <token>` (no scheme) and
# `X-CKAN-API-Key: <token>` are accepted as bearer tokens (contract §11).
CKAN_PREFIXES = ("/api/3/action/", "/api/action/")
CKAN_HEADERS = frozenset({b"authorization", b"x-ckan-api-key"})


class AuthenticationMiddleware:
    """Turns `Authorization: Bearer …` into a `Principal` on the request (scope state).

    A request without a bearer token passes through anonymous (OAuth client credentials
    use Basic and are the token endpoint's business). A bad token is refused here with 401
    and `WWW-Authenticate`, on every route: a caller who sends credentials learns at once
    that they do not work.
    """

    def __init__(
        self, app: ASGIApp, authenticator: Authenticator, signed: SignedCalls | None = None
    ) -> None:
        self.app = app
        self.authenticator = authenticator
        self.signed = signed

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] != "/metrics":  # its own token
            bearer = False
            ckan = scope["path"].startswith(CKAN_PREFIXES)
            for name, value in scope["headers"]:
                if ckan and name in CKAN_HEADERS and value[:7].lower() != b"bearer ":
                    # ckanapi sends the bare token (contract §11), on these routes only
                    value = b"Bearer " + value.strip()
                    name = b"authorization"
                if name == b"authorization":
                    if value[:7].lower() == b"bearer ":
                        bearer = True
                        try:
                            principal = await self.authenticator.authenticate(
                                value.decode("latin-1")
                            )
                        except Problem as problem:
                            await send_problem(send, problem, scope["state"].get("request_id"))
                            return
                        scope["state"]["principal"] = principal
                    break
            if not bearer and self.signed is not None:
                headers = {
                    k.decode("latin-1"): v.decode("latin-1")
                    for k, v in scope["headers"]
                    if k.startswith(b"x-")
                }
                if self.signed.tried(headers):
                    try:
                        principal, receive = await self.signed.authenticate(scope, receive, headers)
                    except Problem as problem:
                        await send_problem(send, problem, scope["state"].get("request_id"))
                        return
                    scope["state"]["principal"] = principal
        await self.app(scope, receive, send)
