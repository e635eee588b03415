"""The web session (contract §10): the `og_session` cookie and its server-side row.

The cookie holds a random token; the database keeps only its SHA-256 (`web_sessions`), so
a copy of the table signs nobody in. A session is alive while its row is not ended, its
absolute expiry has not passed, and its account exists, is active and has not changed
state (disabled, re-enabled, role changed) since the session began — the rule the access
tokens follow (auth/revocations.py), so every host agrees on the very next request.
Sign-out ends the row; a stolen cookie is dead after it.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Column, ForeignKey, Integer
from sqlalchemy.engine import Engine
from sqlmodel import Field, Session, SQLModel, col, delete, update
from starlette.concurrency import run_in_threadpool
from starlette.requests import HTTPConnection
from starlette.responses import Response
from starlette.types import Scope

from auth.models import User
from kernel.clock import aware, utcnow

log = logging.getLogger("opengate.web")

COOKIE = "og_session"
DEFAULT_LIFETIME = timedelta(hours=8)
STATE_KEY = "web_account"  # request.state: the signed-in account, looked up once


class WebSession(SQLModel, table=True):
    __tablename__ = "web_sessions"

    token_hash: str = Field(primary_key=True, max_length=64)
    # A deleted account takes its sessions with it.
    user_id: int = Field(
        sa_column=Column(
            Integer, ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True
        )
    )
    created_at: datetime = Field(default_factory=utcnow)
    expires_at: datetime = Field(index=True)
    ended_at: datetime | None = None


@dataclass(frozen=True)
class SignedIn:
    """The account of a live session (a detached copy of the row) and the session's key."""

    user: User
    token_hash: str
    expires_at: datetime


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class WebSessions:
    """Sessions of one installation: `app.state.web_sessions`."""

    def __init__(
        self, engine: Engine, *, secure: bool, lifetime: timedelta = DEFAULT_LIFETIME
    ) -> None:
        self.engine = engine
        self.secure = secure
        self.lifetime = lifetime

    def start(self, db: Session, user: User, response: Response) -> str:
        """A new session for `user`, written in the request's own database session (on
        SQLite a POST's transaction holds the write lock); its cookie set on `response`.
        Returns its key."""
        token = secrets.token_urlsafe(32)
        row = WebSession(
            token_hash=_digest(token),
            user_id=user.id,  # type: ignore[arg-type]
            expires_at=utcnow() + self.lifetime,
        )
        db.add(row)
        # Expired rows go when someone signs in (bounded table, no sweeper process).
        db.exec(delete(WebSession).where(col(WebSession.expires_at) < utcnow()))  # type: ignore[call-overload]
        db.commit()
        response.set_cookie(
            COOKIE,
            token,
            max_age=int(self.lifetime.total_seconds()),
            path="/",
            httponly=True,
            samesite="lax",
            secure=self.secure,
        )
        return row.token_hash

    def lookup(self, token: str | None) -> SignedIn | None:
        if not token or len(token) > 100:
            return None
        token_hash = _digest(token)
        with Session(self.engine) as db:
            row = db.get(WebSession, token_hash)
            if row is None or row.ended_at is not None:
                return None
            if aware(row.expires_at) <= utcnow():
                return None
            user = db.get(User, row.user_id)
            if user is None or not user.is_active:
                return None
            changed = user.state_changed_at
            if changed is not None and aware(changed) > aware(row.created_at):
                return None  # disabled (and perhaps enabled again) or given another role
            db.expunge(user)
            return SignedIn(user, token_hash, row.expires_at)

    def end(self, token: str | None, response: Response) -> None:
        """Sign out: the session's row ends (on every host at once) and the cookie goes."""
        if token and len(token) <= 100:
            with Session(self.engine) as db:
                db.exec(
                    update(WebSession)  # type: ignore[call-overload]
                    .where(col(WebSession.token_hash) == _digest(token))
                    .where(col(WebSession.ended_at).is_(None))
                    .values(ended_at=utcnow())
                )
                db.commit()
        response.delete_cookie(COOKIE, path="/", httponly=True, samesite="lax", secure=self.secure)

    def end_all(self, user_id: int) -> int:
        """End every session of an account (e.g. after its password changes)."""
        with Session(self.engine) as db:
            result = db.exec(
                update(WebSession)  # type: ignore[call-overload]
                .where(col(WebSession.user_id) == user_id)
                .where(col(WebSession.ended_at).is_(None))
                .values(ended_at=utcnow())
            )
            db.commit()
            return int(result.rowcount or 0)


def sessions_of(conn: HTTPConnection) -> WebSessions:
    return conn.app.state.web_sessions


def signed_in(conn: HTTPConnection) -> SignedIn | None:
    """The live session of this request, or None (looked up once per request)."""
    state = conn.scope.setdefault("state", {})
    if STATE_KEY not in state:
        state[STATE_KEY] = sessions_of(conn).lookup(conn.cookies.get(COOKIE))
    return state[STATE_KEY]


def current_account(conn: HTTPConnection) -> User | None:
    """The signed-in account of this request, or None. Usable as a FastAPI dependency."""
    found = signed_in(conn)
    return found.user if found is not None else None


async def account_key(scope: Scope) -> str | None:
    """Whose page this is, for the rate limiter's `web` window: `user:<id>` of the live
    session, or None (anonymous: counted by address). The lookup runs in a worker thread and
    is the request's one (the route reads it from the request state)."""
    conn = HTTPConnection(scope)
    if not conn.cookies.get(COOKIE):
        return None
    try:
        found = await run_in_threadpool(signed_in, conn)
    except Exception:  # the database is away: count by address, the page reports the rest
        log.warning("web session lookup failed before the page limit", exc_info=True)
        return None
    return None if found is None else f"user:{found.user.id}"
