"""Account, app and consent routes: /auth/register, /auth/login, /api/v1/me…, /api/v1/apps.

No `from __future__ import annotations`: FastAPI reads the dependency aliases defined in
`build_router` at import time.
"""

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, EmailStr, Field
from sqlalchemy.engine import Engine
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
    ConsentPage,
    ConsentSummary,
    CreatedApp,
    Registered,
    RotatedSecret,
    UserSummary,
    UserToken,
)
from auth.strict_limits import strict_limit
from auth.tokens import TokenIssuer
from catalog.models import iso_utc
from catalog.problem_schema import problem_responses
from catalog.problems import Problem
from catalog.responses import JSONResponse
from catalog.row_id import RowId

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
    engine: Engine
    issuer: TokenIssuer
    revocations: Revocations
    allow_registration: bool
    jwks_uri_allowlist: list[str]
    client_ip: object  # Callable[[Request], str]


def user_summary(user: User) -> dict:
    return {
        "id": user.id,
        "username": user.username,
        "role": user.role,
        "email": user.email,
        "organization": user.organization,
        "identity_linked": user.identity_hmac is not None,
        "identity_proof": user.identity_proof if user.identity_hmac else None,
        "identity_verified_at": iso_utc(user.identity_verified_at)
        if user.identity_hmac and user.identity_verified_at
        else None,
        "created_at": iso_utc(user.created_at),
    }


REGISTERED = (
    "注册申请已受理。如该用户名此前未被使用，账号已创建，请用该用户名和密码登录；"
    "如无法登录，说明用户名已被占用，请换一个用户名重新注册。"
)


def registration_answer(body: Registration) -> dict:
    """The same answer whether or not the name was free: registration is no way to learn
    which names exist (issue 12 finding 13). Only what the caller sent is echoed."""
    return {
        "username": body.username,
        "role": Role.developer.value,
        "email": str(body.email),
        "organization": body.organization,
        "detail": REGISTERED,
    }


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


def note_app_created(request: Request, app: App) -> dict:
    """The app.create event's facts (API and web form alike); the app's summary."""
    summary = app_service.app_summary(app)
    note(
        request,
        resource=f"apps/{app.client_id}",
        client_id=app.client_id,
        detail={
            "client_type": summary["client_type"],
            "auth_methods": summary["token_endpoint_auth_methods"],
            "redirect_uris": len(app.redirect_uris),
        },
    )
    return summary


def consent_summary(consent: Consent) -> dict:
    return {
        "id": consent.id,
        "client_id": consent.client_id,
        "dataset_id": consent.dataset_id,
        "purpose": consent.purpose,
        "scope": consent.scope,
        "created_at": iso_utc(consent.created_at),
        "expires_at": iso_utc(consent.expires_at),
        "withdrawn_at": iso_utc(consent.withdrawn_at) if consent.withdrawn_at else None,
    }


def issue_user_token(issuer: TokenIssuer, user: User, ttl: int | None = None) -> tuple[str, int]:
    return issuer.issue(
        subject=user.username,
        client_id=None,
        scope="user",
        ttl=ttl,
        extra={"role": user.role, "uid": user.id},
    )


def build_router(services: AccountServices) -> APIRouter:
    router = APIRouter(tags=["accounts"])

    def session() -> Iterator[Session]:
        with Session(services.engine) as s:
            yield s

    SessionDep = Annotated[Session, Depends(session, scope="function")]  # noqa: N806
    AnyUser = Annotated[Principal, Depends(require_role(*ALL_ROLES))]  # noqa: N806
    Developer = Annotated[Principal, Depends(require_role(Role.developer))]  # noqa: N806

    def current_user(db: Session, principal: Principal) -> User:
        user = db.get(User, principal.user_id)
        if user is None or not user.is_active:
            raise Problem(401, "unauthorized", "账号不存在或已停用")
        return user

    @router.post(
        "/auth/register",
        status_code=201,
        summary="Register a developer account",
        response_model=Registered,
        responses=problem_responses(400, 401, 403, 413, 429, 503),
    )
    @audited("user.register")
    def register(body: Registration, request: Request, db: SessionDep) -> JSONResponse:
        if not services.allow_registration:
            raise Problem(403, "forbidden", "本平台未开放自助注册，请联系管理员")
        register_developer(request, db, body)
        return JSONResponse(registration_answer(body), status_code=201)

    @router.post(
        "/auth/login",
        summary="Sign in: a user access token",
        response_model=UserToken,
        responses=problem_responses(400, 401, 413, 429, 503),
    )
    @audited("user.login")
    @strict_limit("login")
    def login(body: Credentials, request: Request, db: SessionDep) -> JSONResponse:
        note(request, actor=f"user:{body.username[:64]}")  # who tried, even when refused
        user = user_service.authenticate(
            db,
            username=body.username,
            password=body.password,
            ip=services.client_ip(request),  # type: ignore[operator]
        )
        token, expires_in = issue_user_token(services.issuer, user)
        return JSONResponse(
            {"access_token": token, "token_type": "Bearer", "expires_in": expires_in},
            headers={"Cache-Control": "no-store"},
        )

    @router.get(
        "/api/v1/me",
        summary="The signed-in account",
        response_model=UserSummary,
        responses=problem_responses(401, 403, 429, 503),
    )
    def me(principal: AnyUser, db: SessionDep) -> JSONResponse:
        return JSONResponse(user_summary(current_user(db, principal)))

    @router.get(
        "/api/v1/me/consents",
        summary="Apps you authorized to read your own data",
        response_model=ConsentPage,
        responses=problem_responses(401, 403, 429, 503),
    )
    def consents(principal: Developer, db: SessionDep) -> JSONResponse:
        rows = db.exec(
            select(Consent).where(Consent.user_id == principal.user_id).order_by(Consent.id)
        ).all()
        return JSONResponse({"data": [consent_summary(c) for c in rows], "next_cursor": None})

    @router.post(
        "/api/v1/me/consents/{consent_id}/withdraw",
        summary="Withdraw a consent",
        response_model=ConsentSummary,
        responses=problem_responses(400, 401, 403, 404, 429, 503),
    )
    @audited("consent.withdraw")
    def withdraw(consent_id: RowId, principal: Developer, db: SessionDep) -> JSONResponse:
        consent = consent_service.withdraw(
            db,
            user_id=principal.user_id,  # type: ignore[arg-type]
            consent_id=consent_id,
            revocations=services.revocations,
        )
        return JSONResponse(consent_summary(consent))

    @router.post(
        "/api/v1/apps",
        status_code=201,
        summary="Register an app (OAuth client)",
        response_model=CreatedApp,
        responses=problem_responses(400, 401, 403, 413, 429, 503),
    )
    @audited("app.create")
    def create_app(
        body: NewApp, principal: Developer, db: SessionDep, request: Request
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
        summary = note_app_created(request, app)
        return JSONResponse(
            {**summary, "client_secret": secret},
            status_code=201,
            headers={"Cache-Control": "no-store"},
        )

    @router.get(
        "/api/v1/apps",
        summary="Your apps",
        response_model=AppPage,
        responses=problem_responses(401, 403, 429, 503),
    )
    def list_apps(principal: Developer, db: SessionDep) -> JSONResponse:
        rows = app_service.list_apps(db, owner=current_user(db, principal))
        return JSONResponse(
            {"data": [app_service.app_summary(a) for a in rows], "next_cursor": None}
        )

    @router.post(
        "/api/v1/apps/{client_id}/rotate-secret",
        summary="Issue a new client secret",
        response_model=RotatedSecret,
        responses=problem_responses(401, 403, 404, 429, 503),
    )
    @audited("app.rotate_secret")
    def rotate_secret(
        client_id: str, principal: Developer, db: SessionDep, request: Request
    ) -> JSONResponse:
        app: App = app_service.own_app(db, owner=current_user(db, principal), client_id=client_id)
        note(request, resource=f"apps/{app.client_id}", client_id=app.client_id)
        secret = app_service.rotate_secret(db, app=app, revocations=services.revocations)
        return JSONResponse(
            {"client_id": app.client_id, "client_secret": secret},
            headers={"Cache-Control": "no-store"},
        )

    return router
