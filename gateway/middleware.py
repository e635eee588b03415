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
            body = orjson.dumps(
                {
                    "type": "/problems/internal_error",
                    "title": "内部错误",
                    "status": 500,
                    "detail": "服务器内部错误，请稍后重试；如需协助请提供 request_id",
                    "code": "internal_error",
                    "request_id": request_id.decode(),
                }
            )
            await send_with_id(
                {
                    "type": "http.response.start",
                    "status": 500,
                    "headers": [
                        (b"content-type", b"application/problem+json"),
                        (b"content-length", str(len(body)).encode()),
                    ],
                }
            )
            await send_with_id({"type": "http.response.body", "body": body})
