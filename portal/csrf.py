"""CSRF protection of every form (contract §10): a hidden `csrf_token`, checked on POST.

A signed-in form's token is bound to its session: HMAC(csrf key, session key), so it is
worthless in any other session and dies with its session. An anonymous form (sign-in,
registration, anonymous 纠错) uses a signed double-submit token: a random nonce in the
`og_csrf` cookie (HttpOnly, SameSite=Lax) and HMAC(csrf key, nonce) in the form; another
site can neither read the cookie nor compute the token. The key is derived (HKDF) from the
key ring's cursor key, so every host of the installation accepts every host's tokens.

Every checked POST also has its `Origin` (or, without one, its `Referer`) compared with the
gateway's own origin: a form posted from another site is refused even with a token.
A refusal raises `CsrfRefused`, answered by `install`'s handler with a 403 page in Chinese
before the route has changed anything.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from urllib.parse import urlsplit

from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from fastapi import FastAPI, Request
from starlette.requests import HTTPConnection
from starlette.responses import HTMLResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from portal.refusal import refusal_page
from portal.session import signed_in

FIELD = "csrf_token"
ANON_COOKIE = "og_csrf"
ANON_LIFETIME = 24 * 3600
_INFO = b"opengate web csrf v1"
_NEW_NONCE = "csrf_new_nonce"  # scope state: a nonce the response must set as a cookie

INVALID_FORM = (
    "表单已失效或缺少有效的安全校验码（csrf_token），未做任何更改。请刷新页面后重新提交。"
)
OTHER_ORIGIN = "拒绝来自其他网站的表单提交，未做任何更改。请在本站页面上操作。"


def derive_csrf_key(master: bytes) -> bytes:
    return HKDF(algorithm=SHA256(), length=32, salt=None, info=_INFO).derive(master)


class CsrfRefused(Exception):  # noqa: N818 (reads as what happened)
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class CsrfTokens:
    """`app.state.csrf`: the installation's CSRF key and the origins it answers as."""

    def __init__(self, key: bytes, *, public_origin: str, secure: bool) -> None:
        self.key = key
        self.public_origin = _origin(public_origin)
        self.secure = secure

    def _sign(self, kind: bytes, value: str) -> str:
        mac = hmac.new(self.key, kind + b"\0" + value.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac).rstrip(b"=").decode()

    def token_for(self, conn: HTTPConnection) -> str:
        session = signed_in(conn)
        if session is not None:
            return self._sign(b"session", session.token_hash)
        state = conn.scope.setdefault("state", {})
        nonce = state.get(_NEW_NONCE) or _sane_nonce(conn.cookies.get(ANON_COOKIE))
        if nonce is None:
            nonce = state[_NEW_NONCE] = secrets.token_urlsafe(24)
        return self._sign(b"anon", nonce)

    def expected(self, conn: HTTPConnection) -> str | None:
        """The one token a POST of this request may carry (None: it cannot carry any)."""
        session = signed_in(conn)
        if session is not None:
            return self._sign(b"session", session.token_hash)
        nonce = _sane_nonce(conn.cookies.get(ANON_COOKIE))
        return None if nonce is None else self._sign(b"anon", nonce)

    def origin_ok(self, conn: HTTPConnection) -> bool:
        """Origin, else Referer, names this gateway (or neither is sent: a non-browser
        client, which still needs the token)."""
        claimed = conn.headers.get("origin")
        if claimed is None:
            referer = conn.headers.get("referer")
            if referer is None:
                return True
            claimed = _origin(referer)
        else:
            claimed = _origin(claimed)
        own = _origin(f"{conn.url.scheme}://{conn.headers.get('host', '')}")
        return claimed is not None and claimed in {own, self.public_origin}

    def verify(self, conn: HTTPConnection, submitted: object) -> None:
        if not self.origin_ok(conn):
            raise CsrfRefused(OTHER_ORIGIN)
        expected = self.expected(conn)
        if (
            expected is None
            or not isinstance(submitted, str)
            or not hmac.compare_digest(expected.encode(), submitted.encode())
        ):
            raise CsrfRefused(INVALID_FORM)


def _origin(url: str | None) -> str | None:
    if not url:
        return None
    parts = urlsplit(url.strip())
    if not parts.scheme or not parts.netloc:
        return None
    return f"{parts.scheme.lower()}://{parts.netloc.lower()}"


def _sane_nonce(value: str | None) -> str | None:
    return value if value and 16 <= len(value) <= 64 and value.isascii() else None


def tokens_of(conn: HTTPConnection) -> CsrfTokens:
    return conn.app.state.csrf


def csrf_token(conn: HTTPConnection) -> str:
    """The hidden `csrf_token` value for a form on this page (templates call this)."""
    return tokens_of(conn).token_for(conn)


def refusal_of(conn: HTTPConnection, submitted: object) -> str | None:
    """Why a POST with this `csrf_token` is refused (None: it is not), for a domain route
    that checks its own form and answers in its own page (the OAuth consent page)."""
    try:
        tokens_of(conn).verify(conn, submitted)
    except CsrfRefused as refused:
        return refused.message
    return None


async def require_csrf(request: Request) -> None:
    """FastAPI dependency of every form POST: refused before the route runs."""
    form = await request.form()
    tokens_of(request).verify(request, form.get(FIELD))


async def _refused(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, CsrfRefused)
    return HTMLResponse(refusal_page(exc.message), status_code=403)


class LazyToken:
    """The form token of a page, made only if the page's template prints it (a page
    without a form sets no `og_csrf` cookie)."""

    def __init__(self, conn: HTTPConnection) -> None:
        self.conn = conn
        self._value: str | None = None

    def __str__(self) -> str:
        if self._value is None:
            self._value = csrf_token(self.conn)
        return self._value

    def __html__(self) -> str:  # a URL-safe base64 string: nothing to escape
        return str(self)


class CsrfCookieMiddleware:
    """Sets the `og_csrf` nonce cookie when a page handed out an anonymous token for a
    nonce the browser does not hold yet."""

    def __init__(self, app: ASGIApp, *, secure: bool) -> None:
        self.app = app
        self.secure = secure

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_cookie(message: Message) -> None:
            if message["type"] == "http.response.start":
                nonce = scope.get("state", {}).get(_NEW_NONCE)
                if nonce:
                    cookie = (
                        f"{ANON_COOKIE}={nonce}; Max-Age={ANON_LIFETIME}; Path=/; HttpOnly; "
                        f"SameSite=Lax{'; Secure' if self.secure else ''}"
                    )
                    message["headers"] = [
                        *message.get("headers", ()),
                        (b"set-cookie", cookie.encode()),
                    ]
            await send(message)

        await self.app(scope, receive, send_with_cookie)


def install(app: FastAPI, *, cursor_key: bytes, public_origin: str, secure: bool) -> None:
    app.state.csrf = CsrfTokens(
        derive_csrf_key(cursor_key), public_origin=public_origin, secure=secure
    )
    app.add_exception_handler(CsrfRefused, _refused)
    app.add_middleware(CsrfCookieMiddleware, secure=secure)
