"""Account, app and consent routes: /auth/register, /auth/login, /api/v1/me…, /api/v1/apps.

Routes at module level; the engine is the app's (`catalog.request_state`), the rest of what
they need is `app.state.account_services`. Answers are the rows read through `auth.schemas`.
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, EmailStr, Field
from sqlmodel import Session, select

from audit.events import audited, note
from auth import apps as app_service
from auth import consents as consent_service
from auth import users as user_service
from auth.models import App, Consent, Role, User
from auth.principal import Principal, require_role
from auth.revocations import Revocations
from auth.schemas import (
    AppPage,
    AppSummary,
    ConsentPage,
    ConsentSummary,
    CreatedApp,
    Registered,
    RotatedSecret,
    SigningSecretOut,
    UserSummary,
    UserToken,
)
from auth.signing_secrets import SigningSecrets
from auth.strict_limits import strict_limit
from auth.tokens import TokenIssuer
from catalog.request_state import SessionDep
from catalog.row_id import RowId
from kernel.problem_schema import problem_responses
from kernel.problems import Problem
from kernel.responses import JSONResponse, answer

ALL_ROLES = tuple(Role)


class Registration(BaseModel):
    username: str = Field(min_length=3, max_length=64)
    password: str = Field(min_length=8, max_length=256)
    email: EmailStr
    organization: str = Field(default="", max_length=200)


class Credentials(BaseModel):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=256)


class NewApp(BaseModel):
    name: str = Field(min_length=1, max_length=100)
    redirect_uris: list[str] = Field(default_factory=list, max_length=10)
    jwks: dict | None = None
    jwks_uri: str | None = Field(default=None, max_length=500)
    # A public client (mobile app): no secret, authorization_code with PKCE S256 only.
    public: bool = False


@dataclass(frozen=True)
class AccountServices:
    """What the app factory puts on `app.state.account_services` for these routes."""

    issuer: TokenIssuer
    revocations: Revocations
    allow_registration: bool
    jwks_uri_allowlist: list[str]
    client_ip: Callable[[Request], str]
    signing_secrets: SigningSecrets | None = None  # signed calls (contract §12)


REGISTERED = (
    "注册申请已受理。如该用户名此前未被使用，账号已创建，请用该用户名和密码登录；"
    "如无法登录，说明用户名已被占用，请换一个用户名重新注册。"
)


def registration_answer(body: Registration) -> Registered:
    """The same answer whether or not the name was free: registration is no way to learn
    which names exist (issue 12 finding 13). Only what the caller sent is echoed."""
    return Registered(
        username=body.username,
        role=Role.developer.value,
        email=str(body.email),
        organization=body.organization,
        detail=REGISTERED,
    )


def register_developer(request: Request, db: Session, body: Registration) -> None:
    """Create a developer account (the API's /auth/register and the web form /register):
    a bad name or password is a 400 Problem; a taken name answers as a free one did."""
    note(request, actor=f"user:{body.username[:64]}")
    try:
        user = user_service.create_user(
            db,
            username=body.username,
            password=body.password,
            role=Role.developer,
            email=str(body.email),
            organization=body.organization,
        )
    except user_service.UsernameTaken:
        # The auditor sees it; the caller gets the answer a new name gets.
        note(request, detail={"result": "username_taken"})
        return
    except user_service.UserError as exc:
        raise Problem(400, "invalid_parameter", str(exc)) from None
    note(request, resource=f"users/{user.id}", detail={"result": "created"})


def note_app_created(request: Request, app: App) -> None:
    """The app.create event's facts (API and web form alike)."""
    note(
        request,
        resource=f"apps/{app.client_id}",
        client_id=app.client_id,
        detail={
            "client_type": app.client_type,
            "auth_methods": app.token_endpoint_auth_methods,
            "redirect_uris": len(app.redirect_uris),
        },
    )


def issue_user_token(issuer: TokenIssuer, user: User, ttl: int | None = None) -> tuple[str, int]:
    return issuer.issue(
        subject=user.username,
        client_id=None,
        scope="user",
        ttl=ttl,
        extra={"role": user.role, "uid": user.id},
    )


async def account_services(request: Request) -> AccountServices:
    return request.app.state.account_services


Services = Annotated[AccountServices, Depends(account_services)]
AnyUser = Annotated[Principal, Depends(require_role(*ALL_ROLES))]
Developer = Annotated[Principal, Depends(require_role(Role.developer))]

router = APIRouter(tags=["accounts"])


# Secrets and tokens: no cache may keep them.
NO_STORE = {"Cache-Control": "no-store"}


def current_user(db: Session, principal: Principal) -> User:
    user = db.get(User, principal.user_id)
    if user is None or not user.is_active:
        raise Problem(401, "unauthorized", "账号不存在或已停用")
    return user


@router.post(
    "/auth/register",
    status_code=201,
    summary="注册开发者账号",
    response_model=Registered,
    responses=problem_responses(400, 401, 403, 413, 429, 503),
)
@audited("user.register")
def register(
    body: Registration, request: Request, db: SessionDep, services: Services
) -> JSONResponse:
    if not services.allow_registration:
        raise Problem(403, "forbidden", "本平台未开放自助注册，请联系管理员")
    register_developer(request, db, body)
    return answer(Registered, registration_answer(body), status_code=201)


@router.post(
    "/auth/login",
    summary="登录：获取用户访问令牌",
    response_model=UserToken,
    responses=problem_responses(400, 401, 413, 429, 503),
)
@audited("user.login")
@strict_limit("login")
def login(body: Credentials, request: Request, db: SessionDep, services: Services) -> JSONResponse:
    note(request, actor=f"user:{body.username[:64]}")  # who tried, even when refused
    user = user_service.authenticate(
        db, username=body.username, password=body.password, ip=services.client_ip(request)
    )
    token, expires_in = issue_user_token(services.issuer, user)
    token_answer = UserToken(access_token=token, token_type="Bearer", expires_in=expires_in)  # noqa: S106
    return answer(UserToken, token_answer, headers=NO_STORE)


@router.get(
    "/api/v1/me",
    summary="当前登录的账号",
    response_model=UserSummary,
    responses=problem_responses(401, 403, 429, 503),
)
def me(principal: AnyUser, db: SessionDep) -> User:
    return current_user(db, principal)


@router.get(
    "/api/v1/me/consents",
    summary="我授权读取本人数据的应用",
    response_model=ConsentPage,
    responses=problem_responses(401, 403, 429, 503),
)
def consents(principal: Developer, db: SessionDep) -> dict[str, Any]:
    rows = db.exec(
        select(Consent).where(Consent.user_id == principal.user_id).order_by(Consent.id)
    ).all()
    return {"data": rows, "next_cursor": None}


@router.post(
    "/api/v1/me/consents/{consent_id}/withdraw",
    summary="撤回个人授权",
    response_model=ConsentSummary,
    responses=problem_responses(400, 401, 403, 404, 429, 503),
)
@audited("consent.withdraw")
def withdraw(
    consent_id: RowId, principal: Developer, db: SessionDep, services: Services
) -> JSONResponse:
    consent = consent_service.withdraw(
        db,
        user_id=principal.user_id,  # type: ignore[arg-type]
        consent_id=consent_id,
        revocations=services.revocations,
    )
    return answer(ConsentSummary, consent)


@router.post(
    "/api/v1/apps",
    status_code=201,
    summary="创建应用（OAuth 客户端）",
    response_model=CreatedApp,
    responses=problem_responses(400, 401, 403, 413, 429, 503),
)
@audited("app.create")
def create_app(
    body: NewApp, principal: Developer, db: SessionDep, request: Request, services: Services
) -> JSONResponse:
    app, secret = app_service.create_app(
        db,
        owner=current_user(db, principal),
        name=body.name,
        redirect_uris=body.redirect_uris,
        jwks=body.jwks,
        jwks_uri=body.jwks_uri,
        jwks_uri_allowlist=services.jwks_uri_allowlist,
        public=body.public,
    )
    note_app_created(request, app)
    created = CreatedApp(**dict(AppSummary.model_validate(app)), client_secret=secret)
    return answer(CreatedApp, created, status_code=201, headers=NO_STORE)


@router.get(
    "/api/v1/apps",
    summary="我的应用",
    response_model=AppPage,
    responses=problem_responses(401, 403, 429, 503),
)
def list_apps(principal: Developer, db: SessionDep) -> dict[str, Any]:
    return {
        "data": app_service.list_apps(db, owner=current_user(db, principal)),
        "next_cursor": None,
    }


@router.post(
    "/api/v1/apps/{client_id}/rotate-secret",
    summary="重新生成客户端密钥",
    response_model=RotatedSecret,
    responses=problem_responses(401, 403, 404, 429, 503),
)
@audited("app.rotate_secret")
def rotate_secret(
    client_id: str, principal: Developer, db: SessionDep, request: Request, services: Services
) -> JSONResponse:
    app: App = app_service.own_app(db, owner=current_user(db, principal), client_id=client_id)
    note(request, resource=f"apps/{app.client_id}", client_id=app.client_id)
    secret = app_service.rotate_secret(db, app=app, revocations=services.revocations)
    rotated = RotatedSecret(client_id=app.client_id, client_secret=secret)
    return answer(RotatedSecret, rotated, headers=NO_STORE)


@router.post(
    "/api/v1/apps/{client_id}/signing-secret",
    summary="生成接口签名密钥（签名调用，旧密钥立即失效）",
    response_model=SigningSecretOut,
    responses=problem_responses(401, 403, 404, 429, 503),
)
@audited("app.signing_secret")
def signing_secret(
    client_id: str, principal: Developer, db: SessionDep, request: Request, services: Services
) -> JSONResponse:
    app: App = app_service.own_app(db, owner=current_user(db, principal), client_id=client_id)
    note(request, resource=f"apps/{app.client_id}", client_id=app.client_id)
    if services.signing_secrets is None:
        raise Problem(503, "unavailable", "本网关未启用签名调用")
    kid, secret = services.signing_secrets.create(db, app.client_id)  # type: ignore[arg-type]
    note(request, detail={"kid": kid})
    made = SigningSecretOut(client_id=app.client_id, kid=kid, signing_secret=secret)
    return answer(SigningSecretOut, made, headers=NO_STORE)
