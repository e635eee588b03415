"""Who may open the auditor console (`/audit…`): a signed-in `auditor`, nobody else.

The guard is a FastAPI dependency that carries `required_roles`, like the API's
`require_role`, so the route-table test finds the console's role the way it finds the
API's. It also names the account in the page's audit event: a web session is not a bearer
token, so the audit middleware sees no principal of its own.
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


auditor_page.required_roles = frozenset({Role.auditor.value})  # type: ignore[attr-defined]

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
