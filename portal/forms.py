"""What every web form route shares: the checked form body, the account it needs, and
where to send the browser next."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Annotated
from urllib.parse import parse_qsl, quote

from fastapi import Depends, FastAPI, Request
from starlette.datastructures import FormData
from starlette.responses import HTMLResponse, RedirectResponse, Response

from auth.models import User
from portal.csrf import FIELD, INVALID_FORM, OTHER_ORIGIN, CsrfRefused, tokens_of
from portal.refusal import refusal_page
from portal.session import current_account

MAX_FIELDS = 200
FORM_TYPE = "application/x-www-form-urlencoded"


async def checked_form(request: Request) -> FormData:
    """The POSTed form, once its csrf_token and origin are checked (403 before the route
    runs, nothing changed, otherwise). The pages' forms are url-encoded (no file upload):
    parsed here, so no multipart parser is needed; any other body carries no token."""
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    pairs: list[tuple[str, str]] = []
    if media == FORM_TYPE:
        try:
            text = (await request.body()).decode("utf-8")
            pairs = parse_qsl(text, keep_blank_values=True, max_num_fields=MAX_FIELDS)
        except (UnicodeDecodeError, ValueError):
            pairs = []
    form = FormData(pairs)
    tokens_of(request).verify(request, form.get(FIELD))
    return form


CheckedForm = Annotated[FormData, Depends(checked_form)]

UPLOAD_TYPE = "multipart/form-data"


def checked_upload(role: str) -> Callable[[Request], AsyncIterator[FormData]]:
    """The dependency of a multipart form with one file (the package upload) for accounts
    of `role`: the account, the origin and whether this request can carry a token at all
    are checked before a byte of the body is read (nobody else makes the gateway parse a
    large body); the body is parsed once (python-multipart, the file spooled to a
    temporary file), the csrf_token read from it; the file is closed after the route."""

    async def upload_form(request: Request) -> AsyncIterator[FormData]:
        need_account(request, role=role)
        tokens = tokens_of(request)
        if not tokens.origin_ok(request):
            raise CsrfRefused(OTHER_ORIGIN)
        media = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if tokens.expected(request) is None or media != UPLOAD_TYPE:
            raise CsrfRefused(INVALID_FORM)
        form = await request.form(max_files=1, max_fields=MAX_FIELDS)
        try:
            tokens.verify(request, form.get(FIELD))
            yield form
        finally:
            await form.close()

    return upload_form


def text(form: FormData, name: str, *, limit: int = 2000) -> str:
    value = form.get(name)
    return value.strip()[:limit] if isinstance(value, str) else ""


def safe_next(value: str | None, default: str = "/console") -> str:
    """A path on this gateway only: never another host (`//evil`, `https://…`, `/\\evil`)."""
    if not value or not value.startswith("/") or value.startswith(("//", "/\\")):
        return default
    if any(c in value for c in "\r\n\\") or len(value) > 500:
        return default
    return value


def see_other(location: str) -> RedirectResponse:
    return RedirectResponse(location, status_code=303)


def to_login(request: Request) -> RedirectResponse:
    here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return see_other("/login?next=" + quote(here, safe="/"))


class LoginRequired(Exception):  # noqa: N818 (reads as what the page needs)
    """The page needs a signed-in account: answered with a redirect to /login."""


class NotForRole(Exception):  # noqa: N818
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def need_account(request: Request, *, role: str | None = None) -> User:
    """The signed-in account (with `role`, when given), or a redirect to /login."""
    user = current_account(request)
    if user is None:
        raise LoginRequired()
    if role is not None and user.role != role:
        raise NotForRole(ROLE_PAGES.get(role, "该账号无权访问此页面"))
    return user


ROLE_PAGES = {
    "developer": "开发者中心仅供开发者账号使用；请用开发者账号登录。",
    "data_admin": "管理控制台仅供数据管理员账号使用（三员分立）；请用数据管理员账号登录。",
    "sysadmin": "系统管理页面仅供系统管理员账号使用（三员分立）；请用系统管理员账号登录。",
}


async def _login_required(request: Request, _exc: Exception) -> Response:
    return to_login(request)


async def _not_for_role(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, NotForRole)
    return HTMLResponse(refusal_page(exc.message, title="无权访问"), status_code=403)


def install(app: FastAPI) -> None:
    app.add_exception_handler(LoginRequired, _login_required)
    app.add_exception_handler(NotForRole, _not_for_role)
