"""What every page of the administrator console shares: the role check, the page frame
(the console's tabs, no caching) and a page for a refusal that names what went wrong."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from sqlmodel import Session
from starlette.responses import Response

from auth.models import User
from kernel.problems import Problem
from policies import grants as service
from portal.console_apps import NO_STORE
from portal.forms import need_account
from portal.templating import render

ROLE = "data_admin"


def need_admin(request: Request) -> User:
    return need_account(request, role=ROLE)


def admin_page(
    request: Request,
    name: str,
    context: dict[str, Any],
    *,
    status_code: int = 200,
    tab: str = "",
) -> Response:
    page = render(request, name, {"tab": tab, **context}, status_code=status_code, section="admin")
    page.headers.update(NO_STORE)
    return page


def problem_page(
    request: Request, problem: Problem, *, tab: str = "", back: str = "/admin"
) -> Response:
    """A refused action: the service's Chinese detail, the field it names, nothing saved."""
    context = {
        "detail": problem.detail,
        "parameter": problem.extra.get("parameter"),
        "back": back,
    }
    return admin_page(request, "admin/refused.html", context, status_code=problem.status, tab=tab)


def row_id(raw: str) -> int | None:
    """A path id as the API reads it (1 … 2³¹−1), or None: a forged id is a 404 page."""
    if not raw.isdigit() or len(raw) > 10:
        return None
    value = int(raw)
    return value if 1 <= value <= 2**31 - 1 else None


def next_grant(db: Session, client_id: str, dataset_id: str) -> dict[str, Any]:
    """The id and version the saved grant will have: the app's active grant on the dataset
    gets a new version of its terms; otherwise a new grant, whose id is known once saved."""
    current = service.active_grant(db, client_id=client_id, dataset_id=dataset_id)
    if current is None:
        return {"grant_id": None, "version": 1}
    return {"grant_id": current.id, "version": current.version + 1}
