"""Account and app administration for the `sysadmin` role (系统管理员): disable an account,
change its role, disable an app — the HTTP twins of `opengate users disable`, `users
set-role` and `apps disable`. Each change reaches every worker and host on the next request
(auth/revocations.py) and writes one audit event.

Routes at module level: the session from `catalog.request_state`, the revocations from the
account services the app factory puts on `app.state` (auth/views.py).
"""

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel
from sqlmodel import Session

from audit.events import audited, note
from auth import apps as app_service
from auth import users as user_service
from auth.models import App, Role, User
from auth.principal import Principal, require_role
from auth.schemas import AccountState, AppSummary
from auth.views import Services
from catalog.request_state import SessionDep
from kernel.problem_schema import problem_responses
from kernel.problems import Problem
from kernel.responses import JSONResponse, answer


class NewRole(BaseModel):
    role: Role


SysAdmin = Annotated[Principal, Depends(require_role(Role.sysadmin))]

router = APIRouter(prefix="/api/v1/admin", tags=["administration"])


def account(db: Session, username: str, principal: Principal, request: Request) -> User:
    user = user_service.get_user(db, username=username)
    if user is None:
        raise Problem(404, "not_found", f"账号 {username} 不存在")
    note(request, resource=f"users/{user.id}")
    if user.id == principal.user_id:
        raise Problem(400, "invalid_parameter", "不能停用或变更当前登录的系统管理员账号")
    return user


@router.post(
    "/users/{username}/disable",
    summary="停用账号（系统管理员）",
    response_model=AccountState,
    responses=problem_responses(400, 401, 403, 404, 429, 503),
)
@audited("user.disable")
def disable_user(
    username: str, request: Request, principal: SysAdmin, db: SessionDep, services: Services
) -> JSONResponse:
    user = account(db, username, principal, request)
    user = user_service.disable_user(db, user=user, revocations=services.revocations)
    return answer(AccountState, user)


@router.post(
    "/users/{username}/role",
    summary="变更账号角色（系统管理员）",
    response_model=AccountState,
    responses=problem_responses(400, 401, 403, 404, 413, 429, 503),
)
@audited("user.set_role")
def set_role(
    username: str,
    body: NewRole,
    request: Request,
    principal: SysAdmin,
    db: SessionDep,
    services: Services,
) -> JSONResponse:
    user = account(db, username, principal, request)
    before = user.role
    user = user_service.set_role(db, user=user, role=body.role, revocations=services.revocations)
    note(request, detail={"from": before, "to": user.role})
    return answer(AccountState, user)


@router.post(
    "/apps/{client_id}/disable",
    summary="停用应用（系统管理员）",
    response_model=AppSummary,
    responses=problem_responses(401, 403, 404, 429, 503),
)
@audited("app.disable")
def disable_app(
    client_id: str, request: Request, principal: SysAdmin, db: SessionDep, services: Services
) -> JSONResponse:
    app = db.get(App, client_id)
    if app is None:
        raise Problem(404, "not_found", f"应用 {client_id} 不存在")
    note(request, resource=f"apps/{client_id}", client_id=client_id)
    app = app_service.disable_app(db, app=app, revocations=services.revocations)
    return answer(AppSummary, app)
