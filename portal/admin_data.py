"""What the administrator console reads: the review queue with who is behind each app,
an applicant's history, and every grant sorted into what a reviewer acts on."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlmodel import Session, col, select

from auth.models import App, User
from kernel.clock import aware, utcnow
from participation.models import Feedback
from policies.models import Application, Grant
from portal.console_data import MODE_LABELS, STATUS_LABELS, titles

EXPIRING_WITHIN = timedelta(days=7)
GRANT_VIEWS = {
    "active": "生效中",
    "expiring": "7 天内到期",
    "expired": "已到期",
    "revoked": "已撤销",
    "suspended": "已暂停",
}


def owners(db: Session, client_ids: set[str]) -> dict[str, tuple[App, User | None]]:
    """Each app with its owner's account (organization and username)."""
    if not client_ids:
        return {}
    apps = list(db.exec(select(App).where(col(App.client_id).in_(client_ids))))
    users = {
        u.id: u for u in db.exec(select(User).where(col(User.id).in_({a.owner_id for a in apps})))
    }
    return {a.client_id: (a, users.get(a.owner_id)) for a in apps}


def applications(db: Session, *, status: str | None = "pending") -> list[dict[str, Any]]:
    query = select(Application).order_by(col(Application.id))
    if status:
        query = query.where(Application.status == status)
    rows = list(db.exec(query))
    who = owners(db, {r.client_id for r in rows})
    names = titles(db, {r.dataset_id for r in rows})
    return [
        {
            "row": r,
            "app": who.get(r.client_id, (None, None))[0],
            "owner": who.get(r.client_id, (None, None))[1],
            "dataset_title": names.get(r.dataset_id, r.dataset_id),
            "status_label": STATUS_LABELS.get(r.status, r.status),
            "modes": [MODE_LABELS.get(m, m) for m in r.modes],
        }
        for r in rows
    ]


def history(db: Session, application: Application) -> dict[str, Any]:
    """The applicant's earlier applications, the grants of their apps, and their 纠错."""
    earlier = list(
        db.exec(
            select(Application)
            .where(Application.applicant_id == application.applicant_id)
            .where(col(Application.id) != application.id)
            .order_by(col(Application.id).desc())
        )
    )
    apps = [
        a.client_id for a in db.exec(select(App).where(App.owner_id == application.applicant_id))
    ]
    grants = (
        list(
            db.exec(
                select(Grant).where(col(Grant.client_id).in_(apps)).order_by(col(Grant.id).desc())
            )
        )
        if apps
        else []
    )
    applicant = db.get(User, application.applicant_id)
    reports = (
        list(
            db.exec(
                select(Feedback)
                .where(Feedback.reporter == applicant.username)
                .order_by(col(Feedback.id).desc())
                .limit(50)
            )
        )
        if applicant is not None
        else []
    )
    names = titles(db, {r.dataset_id for r in earlier} | {g.dataset_id for g in grants})
    now = utcnow()
    return {
        "applications": [
            {
                "row": r,
                "title": names.get(r.dataset_id, r.dataset_id),
                "status_label": STATUS_LABELS.get(r.status, r.status),
            }
            for r in earlier
        ],
        "grants": [
            {
                "row": g,
                "title": names.get(g.dataset_id, g.dataset_id),
                "view_label": GRANT_VIEWS[grant_view(g, now)],
            }
            for g in grants
        ],
        "feedback": reports,
    }


def grant_view(grant: Grant, now: datetime) -> str:
    if grant.status in ("revoked", "suspended"):
        return grant.status
    expires = aware(grant.expires_at)
    if expires <= now:
        return "expired"
    return "expiring" if expires - now <= EXPIRING_WITHIN else "active"


def grants(
    db: Session,
    *,
    view: str | None = None,
    dataset_id: str | None = None,
    client_id: str | None = None,
    organization: str | None = None,
) -> list[dict[str, Any]]:
    query = select(Grant).order_by(col(Grant.id).desc())
    if dataset_id:
        query = query.where(Grant.dataset_id == dataset_id)
    if client_id:
        query = query.where(Grant.client_id == client_id)
    rows = list(db.exec(query))
    who = owners(db, {g.client_id for g in rows})
    names = titles(db, {g.dataset_id for g in rows})
    now = utcnow()
    answer = []
    for g in rows:
        app, owner = who.get(g.client_id, (None, None))
        org = owner.organization if owner is not None else ""
        if organization and organization not in org:
            continue
        shown = grant_view(g, now)
        if view and shown != view:
            continue
        answer.append(
            {
                "row": g,
                "app": app,
                "owner": owner,
                "dataset_title": names.get(g.dataset_id, g.dataset_id),
                "view": shown,
                "view_label": GRANT_VIEWS[shown],
                "modes": [MODE_LABELS.get(m, m) for m in g.modes],
            }
        )
    return answer
