"""我的授权 (`/me/consents`): the consents a person gave apps to read their own rows, and
withdrawing one with one click (auth/consents.withdraw: the API's rule, its revocation of
the consent's tokens on every worker, its `consent.withdraw` event)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from sqlmodel import col, select
from starlette.responses import HTMLResponse, Response

from audit.events import audited, note
from auth import consents as consent_service
from auth.models import App, Consent, User
from catalog.models import aware, utcnow
from catalog.problems import Problem
from catalog.request_state import SessionDep
from portal.console_apps import console_page
from portal.console_data import titles
from portal.forms import CheckedForm, need_account, see_other

router = APIRouter(include_in_schema=False)


@router.get("/me/consents", response_class=HTMLResponse)
def my_consents(request: Request, db: SessionDep) -> Response:
    user = need_account(request)
    rows = db.exec(
        select(Consent, App, User)
        .join(App, col(App.client_id) == col(Consent.client_id))
        .join(User, col(User.id) == col(App.owner_id))
        .where(Consent.user_id == user.id)
        .order_by(col(Consent.id).desc())
    ).all()
    names = titles(db, {c.dataset_id for c, _a, _o in rows if c.dataset_id})
    now = utcnow()
    consents = []
    for consent, app, owner in rows:
        if consent.withdrawn_at is not None:
            state, label = "withdrawn", "已撤回"
        elif aware(consent.expires_at) <= now:
            state, label = "expired", "已到期"
        else:
            state, label = "active", "生效中"
        consents.append(
            {
                "row": consent,
                "app_name": app.name,
                "organization": owner.organization,
                "dataset_title": names.get(consent.dataset_id, consent.dataset_id)
                if consent.dataset_id
                else "仅无条件开放数据（不含个人数据）",
                "state": state,
                "state_label": label,
            }
        )
    context = {"consents": consents, "withdrawn": request.query_params.get("withdrawn")}
    return console_page(request, "me/consents.html", context, tab="consents")


@router.post("/me/consents/{consent_id}/withdraw", response_class=HTMLResponse)
@audited("consent.withdraw")
def withdraw(consent_id: int, request: Request, form: CheckedForm, db: SessionDep) -> Response:
    user = need_account(request)
    note(request, resource=f"consents/{consent_id}", detail={"via": "web"})
    try:
        consent_service.withdraw(
            db,
            user_id=user.id,  # type: ignore[arg-type]
            consent_id=consent_id,
            revocations=request.app.state.security.revocations,
        )
    except Problem as problem:
        return console_page(
            request,
            "me/consents.html",
            {"consents": [], "error": problem.detail},
            status_code=problem.status,
            tab="consents",
        )
    return see_other(f"/me/consents?withdrawn={consent_id}")
