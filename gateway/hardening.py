"""Browser-facing headers on every answer, and the limits every request's input is held to
before any route parses it.

`SecurityHeadersMiddleware` (outermost, so 401/429/503 answers of other middleware get them
too): `X-Content-Type-Options: nosniff` and a Content-Security-Policy on everything, HSTS
when the installation is https, and for HTML a policy that lets a page load scripts, styles
and images from the gateway itself only (no inline style or script on any portal page, the
consent page included: it is drawn on the portal's templates), plus `X-Frame-Options: DENY`
and `Referrer-Policy: same-origin`.

`InputGuardMiddleware` (innermost, after authentication and rate limits): a NUL character in
the path or query string is refused with 400 before routing (PostgreSQL cannot store one
and SQLite would); a request body longer than `max_body_bytes` is refused with 413
`payload_too_large` (the upload routes, `upload_paths`, have their own `max_upload_bytes`)
— by its Content-Length before a byte is read, or, chunked, as soon as
the count passes the limit; a NUL in a JSON string (`\\u0000`) or form value (`%00`) is
refused with 400 when the body is complete, before the route parses it. Refusals raise
FastAPI's HTTPException from `receive`, so they are rendered as problem+json and audited
like any other error of the route.
"""

from __future__ import annotations

import re
from typing import Any

from fastapi import HTTPException
from starlette.routing import BaseRoute, Match, Router
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.middleware import send_problem
from gateway.route_marks import routes_in
from kernel.problems import invalid_parameter

# Swagger UI (/docs) needs its bundle, its stylesheet, data: images from that stylesheet
# and fetches of /openapi.json: all from 'self'. No inline script anywhere. No
# form-action: the consent page's POST answers with a redirect to the app, which a
# `form-action 'self'` would block.
HTML_POLICY = (
    b"default-src 'none'; script-src 'self'; "
    b"style-src 'self'; img-src 'self' data:; font-src 'self'; "
    b"connect-src 'self'; base-uri 'none'; frame-ancestors 'none'"
)
# ReDoc (/redoc) styles itself with styled-components, which writes <style> elements from
# script: that one page allows inline styles. Scripts stay 'self' only; the page renders
# the gateway's own OpenAPI document and nothing a user typed.
REFERENCE_POLICY = (
    b"default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    b"img-src 'self' data:; font-src 'self'; connect-src 'self'; worker-src 'self' blob:; "
    b"base-uri 'none'; frame-ancestors 'none'"
)
INLINE_STYLE_PAGES = frozenset({"/redoc"})
# Anything else (JSON, CSV, …) is never a document: it may load nothing and not be framed.
API_POLICY = b"default-src 'none'; frame-ancestors 'none'"
HSTS = b"max-age=31536000; includeSubDomains"


class SecurityHeadersMiddleware:
    def __init__(self, app: ASGIApp, *, https: bool) -> None:
        self.app = app
        self.https = https
        base = [(b"x-content-type-options", b"nosniff")]
        self.plain = base
        self.secure = [*base, (b"strict-transport-security", HSTS)]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        common = self.secure if self.https or scope.get("scheme") == "https" else self.plain

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", ()))
                names = {name.lower() for name, _ in headers}
                html = any(
                    name.lower() == b"content-type" and value.startswith(b"text/html")
                    for name, value in headers
                )
                # A route's own policy stays; a browser enforces every policy it is given.
                headers += common
                if not html:
                    policy = API_POLICY
                elif scope["path"] in INLINE_STYLE_PAGES:
                    policy = REFERENCE_POLICY
                else:
                    policy = HTML_POLICY
                headers.append((b"content-security-policy", policy))
                if html:
                    if b"x-frame-options" not in names:
                        headers.append((b"x-frame-options", b"DENY"))
                    if b"referrer-policy" not in names:
                        # same-origin, not no-referrer: under no-referrer a browser sends
                        # `Origin: null` with a form's POST, and the CSRF check (portal/
                        # csrf.py) must see the page's own origin. Other hosts get nothing.
                        headers.append((b"referrer-policy", b"same-origin"))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)


# `\u0000` in JSON text, unless its backslash is itself escaped (`\\u0000` is six
# characters of text, not a NUL).
JSON_NUL = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000")
BODYLESS = frozenset({"GET", "HEAD", "OPTIONS"})
NUL_DETAIL = "请求中不能包含 NUL 字符（\\u0000）"


class InputGuardMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        max_body_bytes: int,
        router: Router,
        upload_paths: frozenset[str] = frozenset(),
        max_upload_bytes: int = 0,
    ) -> None:
        self.app = app
        self.max_body = max_body_bytes
        self.router = router
        self.upload_paths = upload_paths
        self.max_upload = max_upload_bytes or max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        query = scope.get("query_string", b"")
        if b"%00" in query or b"\x00" in query or "\x00" in scope["path"]:
            await self._refuse_nul(scope, send)
            return
        if scope["method"] in BODYLESS:
            await self.app(scope, receive, send)
            return
        await self.app(scope, self._guarded(scope, receive), send)

    async def _refuse_nul(self, scope: Scope, send: Send) -> None:
        # Not routed yet: find the route, so the audit middleware records the refusal as
        # that route's event (an audited route, a data request) like its other errors.
        endpoint = _endpoint(self.router.routes, scope)
        if endpoint is not None:
            scope["endpoint"] = endpoint
        problem = invalid_parameter("query", NUL_DETAIL)
        await send_problem(send, problem, scope.get("state", {}).get("request_id"))

    def _guarded(self, scope: Scope, receive: Receive) -> Receive:
        limit = self.max_upload if scope["path"] in self.upload_paths else self.max_body
        too_large = f"请求体超过 {limit} 字节的上限"
        declared = b""
        kind = b""
        for name, value in scope["headers"]:
            if name == b"content-length":
                declared = value
            elif name == b"content-type":
                kind = value.split(b";", 1)[0].strip().lower()
        scan_json = kind == b"application/json" or kind.endswith(b"+json")
        scan_form = kind == b"application/x-www-form-urlencoded"
        body = bytearray()
        received = 0

        async def guarded_receive() -> Message:
            nonlocal received
            if declared and (not declared.isdigit() or int(declared) > limit):
                raise HTTPException(413, detail=too_large)  # before reading a byte
            message = await receive()
            if message["type"] != "http.request":
                return message
            chunk = message.get("body", b"")
            received += len(chunk)
            if received > limit:
                raise HTTPException(413, detail=too_large)
            if scan_json or scan_form:
                body.extend(chunk)
                if not message.get("more_body", False) and _has_nul(bytes(body), scan_json):
                    raise HTTPException(400, detail=NUL_DETAIL)
            return message

        return guarded_receive


def _endpoint(routes: list[BaseRoute], scope: Scope) -> Any:
    """The endpoint routing would choose."""
    for route in routes_in(routes):
        match, child = route.matches(scope)
        if match is Match.FULL:
            return child.get("endpoint")
    return None


def _has_nul(body: bytes, json: bool) -> bool:
    if b"\x00" in body:
        return True
    if json:
        return b"\\u0000" in body and JSON_NUL.search(body) is not None
    return b"%00" in body
