"""One Jinja2 environment for every portal page (autoescape on: every text a person typed
is shown escaped), and `render()`, which answers a template as `text/html` so the gateway's
SecurityHeadersMiddleware gives it the §10 headers (CSP without inline script, nosniff,
Referrer-Policy, X-Frame-Options: DENY)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import jinja2
from fastapi import Request
from fastapi.templating import Jinja2Templates
from starlette.responses import HTMLResponse

from auth.models import Role
from portal.csrf import LazyToken
from portal.homes import console_of

TEMPLATES_DIR = Path(__file__).parent / "templates"
STATIC_DIR = Path(__file__).parent / "static"
STATIC_PREFIX = "/static/portal"

_env = jinja2.Environment(
    loader=jinja2.FileSystemLoader(TEMPLATES_DIR),
    autoescape=True,
    trim_blocks=True,
    lstrip_blocks=True,
)
templates = Jinja2Templates(env=_env)

NAV = (
    ("home", "/", "首页"),
    ("datasets", "/datasets", "数据目录"),
    ("zones", "/zones", "行业专区"),
    ("products", "/products", "数据产品"),
    ("demands", "/demands", "数据需求"),
    ("cockpit", "/cockpit", "数据驾驶舱"),
)

# Who is signed in, for the header: set by the session module once it is wired in
# (portal/session.py); None means nobody.
AccountOf = Callable[[Request], Any]
_account_of: list[AccountOf] = []


def set_account_lookup(lookup: AccountOf) -> None:
    _account_of[:] = [lookup]


def account_of(request: Request) -> Any:
    return _account_of[0](request) if _account_of else None


def nav_for(account: Any) -> tuple[tuple[str, str, str], ...]:
    """The site navigation: the public pages, then a console — the signed-in account's own
    (portal/homes.py), else the developer center, where signing in starts."""
    return (*NAV, console_of(account.role if account is not None else Role.developer))


def static_url(request: Request, name: str) -> str:
    return request.scope.get("root_path", "") + f"{STATIC_PREFIX}/{name}"


def _values(request: Request, context: dict[str, Any] | None, section: str) -> dict[str, Any]:
    account = account_of(request)
    values: dict[str, Any] = {
        "request": request,
        "nav": nav_for(account),
        "account": account,
        "section": section,
        "root": request.scope.get("root_path", ""),
        "static": lambda asset: static_url(request, asset),
        # Printed by a template, the form's hidden csrf_token (portal/csrf.py).
        "csrf_token": LazyToken(request),
    }
    values.update(context or {})
    return values


def render(
    request: Request,
    name: str,
    context: dict[str, Any] | None = None,
    *,
    status_code: int = 200,
    section: str = "",
) -> HTMLResponse:
    values = _values(request, context, section)
    return templates.TemplateResponse(request, name, values, status_code=status_code)


def page_text(
    request: Request, name: str, context: dict[str, Any] | None = None, *, section: str = ""
) -> str:
    """The same page as `render`, as text: for a domain route that answers its own response
    (the OAuth consent page: portal/consent_pages.py)."""
    return _env.get_template(name).render(_values(request, context, section))
