"""Developer center: the overview and my apps (`/console`, `/console/apps…`).

Every change goes through the services the API uses (auth/apps.py) and writes the API's
audit event. A client secret is shown once, in the answer to the POST that made it (never
in a URL, never stored in clear), with `Cache-Control: no-store`.
"""

from __future__ import annotations

import json

from fastapi import APIRouter, Request
from sqlmodel import Session
from starlette.responses import HTMLResponse, Response

from audit.events import audited, note
from auth import apps as app_service
from auth.models import App, User
from auth.schemas import AppSummary
from auth.views import note_app_created
from catalog.request_state import SessionDep
from kernel.problems import Problem
from portal.console_data import overview
from portal.forms import CheckedForm, need_account, see_other, text
from portal.templating import render

router = APIRouter(include_in_schema=False)

NO_STORE = {"Cache-Control": "no-store"}


def console_page(
    request: Request, name: str, context: dict, *, status_code: int = 200, tab: str = ""
) -> Response:
    page = render(
        request, name, {"tab": tab, **context}, status_code=status_code, section="console"
    )
    page.headers.update(NO_STORE)
    return page


def _apps_page(
    request: Request, db: Session, user: User, *, status_code: int = 200, **extra: object
) -> Response:
    rows = app_service.list_apps(db, owner=user)
    apps = [{**AppSummary.model_validate(a).model_dump(mode="json"), "jwks": a.jwks} for a in rows]
    return console_page(
        request, "console/apps.html", {"apps": apps, **extra}, status_code=status_code, tab="apps"
    )


@router.get("/console", response_class=HTMLResponse)
def console_home(request: Request, db: SessionDep) -> Response:
    user = need_account(request, role="developer")
    return console_page(request, "console/home.html", overview(db, user), tab="home")


@router.get("/console/apps", response_class=HTMLResponse)
def apps_page(request: Request, db: SessionDep) -> Response:
    user = need_account(request, role="developer")
    saved = request.query_params.get("saved")
    return _apps_page(request, db, user, saved=saved)


@router.post("/console/apps", response_class=HTMLResponse)
@audited("app.create")
def create_app(request: Request, form: CheckedForm, db: SessionDep) -> Response:
    user = need_account(request, role="developer")
    name = text(form, "name", limit=200)
    try:
        app, secret = app_service.create_app(db, owner=user, name=name)
    except Problem as problem:
        return _apps_page(
            request, db, user, status_code=problem.status, error=problem.detail, name=name
        )
    note_app_created(request, app)
    return console_page(
        request, "console/secret.html", {"app": app, "secret": secret, "new": True}, tab="apps"
    )


def _own(request: Request, db: Session, user: User, client_id: str) -> App:
    app = app_service.own_app(db, owner=user, client_id=client_id[:64])
    note(request, resource=f"apps/{app.client_id}", client_id=app.client_id)
    return app


@router.post("/console/apps/{client_id}/rotate", response_class=HTMLResponse)
@audited("app.rotate_secret")
def rotate_secret(client_id: str, request: Request, form: CheckedForm, db: SessionDep) -> Response:
    user = need_account(request, role="developer")
    try:
        app = _own(request, db, user, client_id)
        secret = app_service.rotate_secret(
            db, app=app, revocations=request.app.state.security.revocations
        )
    except Problem as problem:
        return _apps_page(request, db, user, status_code=problem.status, error=problem.detail)
    return console_page(
        request, "console/secret.html", {"app": app, "secret": secret, "new": False}, tab="apps"
    )


@router.post("/console/apps/{client_id}/keys", response_class=HTMLResponse)
@audited("app.set_keys")
def set_keys(client_id: str, request: Request, form: CheckedForm, db: SessionDep) -> Response:
    user = need_account(request, role="developer")
    raw_jwks = text(form, "jwks", limit=20000)
    jwks_uri = text(form, "jwks_uri", limit=500) or None
    try:
        app = _own(request, db, user, client_id)
        jwks = None
        if raw_jwks:
            try:
                jwks = json.loads(raw_jwks)
            except ValueError:
                raise Problem(400, "invalid_parameter", "JWKS 须为 JSON 格式的 JWK Set") from None
            if not isinstance(jwks, dict):
                raise Problem(400, "invalid_parameter", "JWKS 须为 JSON 对象（JWK Set）")
        app_service.set_keys(
            db,
            app=app,
            jwks=jwks,
            jwks_uri=jwks_uri,
            jwks_uri_allowlist=request.app.state.settings.jwks_uri_prefixes,
        )
    except Problem as problem:
        db.rollback()
        return _apps_page(request, db, user, status_code=problem.status, error=problem.detail)
    note(request, detail={"jwks": jwks is not None, "jwks_uri": jwks_uri is not None})
    return see_other(f"/console/apps?saved={app.client_id}")
