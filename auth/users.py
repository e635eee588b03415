"""People: creating accounts, signing in, disabling and changing roles.

Identity numbers reach an account only through auth/identity.py (verified sources)."""

from __future__ import annotations

import logging
import re

from sqlmodel import Session, select

from auth import lockout
from auth.models import Role, User
from auth.revocations import PrincipalState, Revocations, change_second
from auth.secrets import hash_password, verify_password
from kernel.clock import utcnow
from kernel.problems import Problem

log = logging.getLogger("opengate.auth")

USERNAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{2,63}")
MIN_PASSWORD = 8


class UserError(ValueError):
    """A user could not be created or changed; the message says why, in one line."""


class UsernameTaken(UserError):  # noqa: N818 (reads as what it is)
    """The name is in use (self-registration answers as for a new name: no disclosure)."""


def create_user(
    session: Session,
    *,
    username: str,
    password: str,
    role: Role | str,
    email: str = "",
    organization: str = "",
) -> User:
    if not USERNAME.fullmatch(username):
        raise UserError("用户名需为 3–64 位字母、数字或 . _ -，以字母或数字开头")
    try:
        role = Role(role)
    except ValueError:
        raise UserError(f"未知角色 {role}；可选：{', '.join(r.value for r in Role)}") from None
    if len(password) < MIN_PASSWORD:
        raise UserError(f"密码至少 {MIN_PASSWORD} 位")
    password_hash = hash_password(password)  # first: a taken name costs the same time
    if session.exec(select(User).where(User.username == username)).first() is not None:
        raise UsernameTaken(f"用户名 {username} 已存在")
    user = User(
        username=username,
        password_hash=password_hash,
        role=role.value,
        email=email,
        organization=organization,
    )
    session.add(user)
    session.commit()
    session.refresh(user)
    return user


def get_user(session: Session, *, username: str) -> User | None:
    return session.exec(select(User).where(User.username == username)).first()


def authenticate(session: Session, *, username: str, password: str, ip: str) -> User:
    """The user for these credentials, or a Problem. Failures are logged (never the
    password) and slow down this name from this address (auth/lockout.py). How many
    sign-ins one address may try at all is the one sign-in limiter's: the `login` window
    of every route marked `strict_limit("login")` (auth/strict_limits.py)."""
    wait = lockout.wait_left(session, username=username, source=ip)
    if wait is not None:
        log.warning("login refused: %r from %s must wait", username[:64], ip)
        raise Problem(
            429,
            "rate_limited",
            "该账号在当前网络地址的登录失败次数过多，请稍后再试",
            headers={"Retry-After": str(int(wait.total_seconds()) + 1)},
        )
    user = get_user(session, username=username)
    ok = verify_password(user.password_hash if user else None, password)
    if not ok or user is None or not user.is_active:
        lockout.record_failure(session, username=username, source=ip)
        log.info("failed login for %r from %s", username[:64], ip)
        raise Problem(401, "unauthorized", "用户名或密码错误")
    lockout.record_success(session, username=username, source=ip)
    return user


def _changed(session: Session, user: User, revocations: Revocations) -> User:
    user.state_changed_at = utcnow()
    session.add(user)
    session.commit()
    session.refresh(user)
    state = PrincipalState(
        user.is_active, role=user.role, epoch=change_second(user.state_changed_at)
    )
    revocations.publish_state(f"user:{user.id}", state)
    return user


def disable_user(session: Session, *, user: User, revocations: Revocations) -> User:
    """Disable the account: every token of it (its own, and the personal ones apps hold)
    stops on the next request on every worker; it cannot sign in or refresh."""
    user.is_active = False
    return _changed(session, user, revocations)


def enable_user(session: Session, *, user: User, revocations: Revocations) -> User:
    """Enable a disabled account again: it may sign in; tokens issued before stay ended."""
    user.is_active = True
    return _changed(session, user, revocations)


def set_role(session: Session, *, user: User, role: str, revocations: Revocations) -> User:
    """Give the account another role: tokens issued with the old role stop at once."""
    try:
        user.role = Role(role).value
    except ValueError:
        raise UserError(f"未知角色 {role}；可选：{', '.join(r.value for r in Role)}") from None
    return _changed(session, user, revocations)
