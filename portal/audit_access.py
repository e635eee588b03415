"""Who may open the auditor console (`/audit…`): a signed-in `auditor`, nobody else.

The guard is a FastAPI dependency on the web session (not a bearer token: the route
table lists these routes among the web pages, `tests/gateway/test_route_table.py`; the
role walk is `tests/portal/test_audit_console.py`). It also names the account in the
page's audit event: the audit middleware sees no principal of its own for a web session.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Request
from starlette.responses import HTMLResponse, Response

from audit.events import note
from auth.models import Role, User
from portal.forms import LoginRequired, NotForRole
from portal.session import current_account
from portal.templating import render

NOT_AUDITOR = "审计台仅供审计员账号使用；系统管理员和数据管理员无权查看审计日志（三员分立）。"
NO_STORE = {"Cache-Control": "no-store"}


def auditor_page(request: Request) -> User:
    """The signed-in auditor; a stranger is sent to /login, another role gets 403."""
    user = current_account(request)
    if user is None:
        note(request, outcome="denied", detail={"via": "web", "error": "login_required"})
        raise LoginRequired()
    note(request, actor=f"user:{user.username}", detail={"via": "web"})
    if str(user.role) != Role.auditor.value:
        raise NotForRole(NOT_AUDITOR)
    return user


AuditorAccount = Annotated[User, Depends(auditor_page)]


def audit_page(
    request: Request,
    name: str,
    context: dict[str, Any],
    *,
    tab: str,
    status_code: int = 200,
) -> Response:
    """An auditor page: the console layout, never cached (it shows the log)."""
    page = render(request, name, {"tab": tab, **context}, status_code=status_code, section="audit")
    page.headers.update(NO_STORE)
    return page


def problem_page(request: Request, status: int, message: str, *, tab: str) -> HTMLResponse:
    """A refusal inside the console (bad input, an event not yet signed), in Chinese."""
    page = audit_page(
        request, "audit/problem.html", {"message": message}, tab=tab, status_code=status
    )
    assert isinstance(page, HTMLResponse)
    return page
