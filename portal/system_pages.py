"""The system administrator's page (`/admin/system`, role `sysadmin`): accounts and their
one role each (三员分立), the key ring's status, the checkpoint schedule and the readiness
of the database and Redis. A sysadmin runs the installation but reads neither audit events
nor grants: this page shows key ages and checkpoint times, never what they cover. Account
changes call auth.users, as `POST /api/v1/admin/users/…` does, and write its events."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from fastapi import APIRouter, Request
from sqlmodel import col, select
from starlette.responses import HTMLResponse, Response

from audit.checkpoints import latest
from audit.events import audited, note
from auth import users as user_service
from auth.models import Role, User
from auth.revocations import Revocations
from catalog.request_state import SessionDep
from keystore.models import KeyRingEntry
from portal.console_apps import NO_STORE
from portal.forms import CheckedForm, need_account, see_other, text
from portal.templating import render

router = APIRouter(include_in_schema=False)

ROLE = "sysadmin"
ROLE_LABELS = {
    "developer": "开发者",
    "data_admin": "数据管理员",
    "auditor": "安全审计员",
    "sysadmin": "系统管理员",
}
# How often the signing keys should be rotated (`opengate keys rotate [--audit]`); the
# other purposes never rotate (contract-keyring: stored data depends on them).
ROTATION_DAYS = {"token-signing": 90, "audit-signing": 365}
PURPOSE_LABELS = {
    "ring": "主密钥校验值",
    "token-signing": "令牌签名",
    "audit-signing": "审计检查点签名",
    "pseudonym": "假名化",
    "identity-hmac": "身份号摘要",
    "audit-digest": "审计敏感值摘要",
    "cursor": "分页游标",
}


def _page(request: Request, context: dict, *, status_code: int = 200) -> Response:
    page = render(request, "admin/system.html", context, status_code=status_code, section="admin")
    page.headers.update(NO_STORE)
    return page


def _keys(db: SessionDep) -> list[dict]:
    now = datetime.now(UTC)
    rows = db.exec(
        select(KeyRingEntry).order_by(col(KeyRingEntry.purpose), col(KeyRingEntry.created_at))
    )
    answer = []
    for k in rows:
        created = datetime.fromtimestamp(k.created_at, UTC)
        days = ROTATION_DAYS.get(k.purpose)
        due = created + timedelta(days=days) if days and k.state == "active" else None
        answer.append(
            {
                "purpose": k.purpose,
                "purpose_label": PURPOSE_LABELS.get(k.purpose, k.purpose),
                "kid": k.kid,
                "alg": k.alg,
                "state": k.state,
                "created": created,
                "age_days": (now - created).days,
                "retired": datetime.fromtimestamp(k.retired_at, UTC) if k.retired_at else None,
                "next_rotation": due,
                "overdue": due is not None and due <= now,
            }
        )
    return answer


def _checkpoints(request: Request) -> dict:
    every = float(request.app.state.settings.audit_checkpoint_seconds)
    with request.app.state.engine.connect() as conn:
        last = latest(conn)
    when = None
    if last is not None:
        when = datetime.strptime(last.ts, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    return {
        "every_seconds": every,
        "last_at": when,
        "last_kind": last.kind if last else None,
        "next_at": when + timedelta(seconds=every) if when else None,
    }


def _system_page(
    request: Request, db: SessionDep, *, error: str | None = None, status_code: int = 200
) -> Response:
    users = list(db.exec(select(User).order_by(col(User.role), col(User.username))))
    counts = {r.value: sum(1 for u in users if u.role == r.value) for r in Role}
    context = {
        "users": users,
        "counts": counts,
        "role_labels": ROLE_LABELS,
        "keys": _keys(db),
        "checkpoints": _checkpoints(request),
        "readiness": request.app.state.readiness(),
        "database": {"postgresql": "PostgreSQL", "sqlite": "SQLite"}.get(
            request.app.state.engine.dialect.name, request.app.state.engine.dialect.name
        ),
        "error": error,
        "done": request.query_params.get("done"),
    }
    return _page(request, context, status_code=status_code)


@router.get("/admin/system", response_class=HTMLResponse)
def system_page(request: Request, db: SessionDep) -> Response:
    need_account(request, role=ROLE)
    return _system_page(request, db)


def _account(request: Request, db: SessionDep, username: str, me: User) -> User | str:
    """The account to change, or why it cannot be changed (in Chinese)."""
    found = user_service.get_user(db, username=username[:64])
    if found is None:
        return f"账号 {username[:64]} 不存在（username）"
    note(request, resource=f"users/{found.id}", detail={"via": "web"})
    if found.id == me.id:
        return "不能停用或变更当前登录的系统管理员账号（username）"
    return found


def _revocations(request: Request) -> Revocations:
    return request.app.state.security.revocations


@router.post("/admin/system/users/{username}/role", response_class=HTMLResponse)
@audited("user.set_role")
def set_role(username: str, request: Request, form: CheckedForm, db: SessionDep) -> Response:
    me = need_account(request, role=ROLE)
    found = _account(request, db, username, me)
    if isinstance(found, str):
        return _system_page(request, db, error=found, status_code=400)
    role = text(form, "role", limit=20)
    if role not in ROLE_LABELS:
        message = f"未知角色“{role[:20]}”（role）；可选：{', '.join(ROLE_LABELS)}"
        return _system_page(request, db, error=message, status_code=400)
    before = found.role
    user_service.set_role(db, user=found, role=role, revocations=_revocations(request))
    note(request, detail={"from": before, "to": role})
    return see_other(f"/admin/system?done={found.username}#accounts")


def _set_active(request: Request, db: SessionDep, username: str, active: bool) -> Response:
    me = need_account(request, role=ROLE)
    found = _account(request, db, username, me)
    if isinstance(found, str):
        return _system_page(request, db, error=found, status_code=400)
    change = user_service.enable_user if active else user_service.disable_user
    change(db, user=found, revocations=_revocations(request))
    return see_other(f"/admin/system?done={found.username}#accounts")


@router.post("/admin/system/users/{username}/disable", response_class=HTMLResponse)
@audited("user.disable")
def disable(username: str, request: Request, form: CheckedForm, db: SessionDep) -> Response:
    return _set_active(request, db, username, False)


@router.post("/admin/system/users/{username}/enable", response_class=HTMLResponse)
@audited("user.enable")
def enable(username: str, request: Request, form: CheckedForm, db: SessionDep) -> Response:
    return _set_active(request, db, username, True)
