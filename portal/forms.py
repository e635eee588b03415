"""What every web form route shares: the checked form body, the account it needs, and
where to send the browser next."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import parse_qsl, quote

from fastapi import Depends, Request
from starlette.datastructures import FormData
from starlette.responses import RedirectResponse

from auth.models import User
from portal.csrf import FIELD, tokens_of
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


def signed_in_user(request: Request) -> User | None:
    return current_account(request)
