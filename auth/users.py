"""People: creating accounts, signing in with throttling, linking an identity number."""

from __future__ import annotations

import logging
import re
import threading
import time
from datetime import timedelta

from sqlmodel import Session, select

from auth.models import Role, User
from auth.secrets import hash_password, identity_hmac, verify_password
from catalog.models import utcnow
from catalog.problems import Problem

log = logging.getLogger("opengate.auth")

USERNAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{2,63}")
MIN_PASSWORD = 8
LOCK_AFTER = 5  # failed logins in a row lock the account …
LOCK_FOR = timedelta(minutes=15)  # … for this long
IP_FAILURES = 20  # failed logins from one address within IP_WINDOW are refused
IP_WINDOW = 15 * 60.0


class UserError(ValueError):
    """A user could not be created or changed; the message says why, in one line."""


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
    if session.exec(select(User).where(User.username == username)).first() is not None:
        raise UserError(f"用户名 {username} 已存在")
    user = User(
        username=username,
        password_hash=hash_password(password),
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


class LoginThrottle:
    """Failed sign-ins per client address (per account lock-out lives on the user row)."""

    def __init__(self) -> None:
        self._failures: dict[str, list[float]] = {}
        self._lock = threading.Lock()

    def blocked(self, ip: str) -> bool:
        now = time.monotonic()
        with self._lock:
            recent = [t for t in self._failures.get(ip, []) if now - t < IP_WINDOW]
            self._failures[ip] = recent
            return len(recent) >= IP_FAILURES

    def failed(self, ip: str) -> None:
        with self._lock:
            self._failures.setdefault(ip, []).append(time.monotonic())
            if len(self._failures) > 100_000:
                self._failures.clear()


def authenticate(
    session: Session, *, username: str, password: str, ip: str, throttle: LoginThrottle
) -> User:
    """The user for these credentials, or a Problem. Failures are logged (never the
    password) and counted per account and per address."""
    if throttle.blocked(ip):
        log.warning("login refused: too many failures from %s", ip)
        raise Problem(
            429,
            "rate_limited",
            "登录失败次数过多，请稍后再试",
            headers={"Retry-After": str(int(IP_WINDOW))},
        )
    user = get_user(session, username=username)
    now = utcnow()
    locked_until = user.locked_until if user is not None else None
    if locked_until is not None and locked_until.tzinfo is None:
        locked_until = locked_until.replace(tzinfo=now.tzinfo)
    if locked_until is not None and locked_until > now:
        log.warning("login refused: account %s is locked", username)
        verify_password(None, password)  # same cost as a real attempt
        raise Problem(
            429,
            "rate_limited",
            "账号因多次登录失败已暂时锁定，请稍后再试",
            headers={"Retry-After": str(int((locked_until - now).total_seconds()) + 1)},
        )
    ok = verify_password(user.password_hash if user else None, password)
    if not ok or user is None or not user.is_active:
        throttle.failed(ip)
        if user is not None:
            user.failed_logins += 1
            if user.failed_logins >= LOCK_AFTER:
                user.locked_until = now + LOCK_FOR
                user.failed_logins = 0
                log.warning("account %s locked after %d failed logins", username, LOCK_AFTER)
            session.add(user)
            session.commit()
        log.info("failed login for %r from %s", username, ip)
        raise Problem(401, "unauthorized", "用户名或密码错误")
    if user.failed_logins or user.locked_until:
        user.failed_logins = 0
        user.locked_until = None
        session.add(user)
        session.commit()
    return user


def link_identity(session: Session, *, user: User, id_number: str, key: bytes) -> User:
    """Bind the person's identity number (stored only as an HMAC) to the account."""
    from catalog.identifiers import is_valid_id_number

    if not is_valid_id_number(id_number.strip().upper()):
        raise Problem(
            400, "invalid_parameter", "公民身份号码格式或校验位不正确", parameter="id_number"
        )
    user.identity_hmac = identity_hmac(key, id_number)
    session.add(user)
    session.commit()
    session.refresh(user)
    return user
