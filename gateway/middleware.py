"""Pure ASGI middleware (no BaseHTTPMiddleware: it costs a task per request).

`RequestContextMiddleware` gives every request an id, puts it on every response, and is
the last line of defence: an exception nobody handled becomes a problem+json 500 with no
traceback, and is logged with the request id.
"""

from __future__ import annotations

import logging
import re
import uuid

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from auth.principal import Authenticator
from catalog.problems import Problem, problem_document

log = logging.getLogger("opengate")

SANE_REQUEST_ID = re.compile(rb"[A-Za-z0-9._:-]{1,128}")


class RequestContextMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

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
            request_id = uuid.uuid4().hex.encode()
        scope.setdefault("state", {})["request_id"] = request_id.decode()
        started = False

        async def send_with_id(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                message["headers"] = [*message.get("headers", ()), (b"x-request-id", request_id)]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            log.exception("unhandled error in request %s", request_id.decode())
            if started:
                raise
            problem = Problem(
                500, "internal_error", "服务器内部错误，请稍后重试；如需协助请提供 request_id"
            )
            await send_problem(send_with_id, problem, request_id.decode())


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


class AuthenticationMiddleware:
    """Turns `Authorization: Bearer …` into a `Principal` on the request (scope state).

    A request without a bearer token passes through anonymous (OAuth client credentials
    use Basic and are the token endpoint's business). A bad token is refused here with 401
    and `WWW-Authenticate`, on every route: a caller who sends credentials learns at once
    that they do not work.
    """

    def __init__(self, app: ASGIApp, authenticator: Authenticator) -> None:
        self.app = app
        self.authenticator = authenticator

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            for name, value in scope["headers"]:
                if name == b"authorization":
                    if value[:7].lower() == b"bearer ":
                        try:
                            principal = await self.authenticator.authenticate(
                                value.decode("latin-1")
                            )
                        except Problem as problem:
                            await send_problem(send, problem, scope["state"].get("request_id"))
                            return
                        scope["state"]["principal"] = principal
                    break
        await self.app(scope, receive, send)
