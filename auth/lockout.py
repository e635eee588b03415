"""Failed sign-ins slow down one (account name, source address) pair, never the account.

A lock on the account itself lets a stranger lock out its owner (and a data_admin in the
middle of a review) with five wrong passwords. Here the first `FREE_FAILURES` failures of a
pair cost nothing; after that each further attempt from that address for that name waits
1 s, 2 s, 4 s … up to `MAX_DELAY` after the previous failure, and an attempt during the wait
is refused without checking the password. The owner at another address is not affected.
The counts live in the database (`login_failures`), so every worker and host sees them, and
fade after `WINDOW` without failures. Unknown and known names are treated alike.
"""

from __future__ import annotations

import logging
import secrets
from datetime import datetime, timedelta

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, delete

from auth.models import LoginFailure
from kernel.clock import aware, utcnow

log = logging.getLogger("opengate.auth")

FREE_FAILURES = 5
MAX_DELAY = timedelta(minutes=15)
WINDOW = timedelta(minutes=15)


def delay_after(failures: int) -> timedelta:
    """How long a pair waits after its `failures`-th failure in a row."""
    if failures < FREE_FAILURES:
        return timedelta(0)
    exponent = min(failures - FREE_FAILURES, 20)  # 2**20 s is past MAX_DELAY already
    return min(timedelta(seconds=2**exponent), MAX_DELAY)


def _key(username: str, source: str) -> tuple[str, str]:
    return username[:64], source[:64]


def wait_left(session: Session, *, username: str, source: str) -> timedelta | None:
    """The time this pair must still wait before its next attempt, or None."""
    row = session.get(LoginFailure, _key(username, source))
    if row is None:
        return None
    now = utcnow()
    if aware(row.last_failure_at) + WINDOW <= now:
        return None
    left = aware(row.next_allowed_at) - now
    return left if left > timedelta(0) else None


def record_failure(session: Session, *, username: str, source: str) -> int:
    """Count a failure of the pair; its failures in a row."""
    now = utcnow()
    for _attempt in range(2):  # a concurrent first failure of the pair may insert first
        row = session.get(LoginFailure, _key(username, source))
        if row is None:
            row = LoginFailure(username=username[:64], source=source[:64], failures=0)
        elif aware(row.last_failure_at) + WINDOW <= now:
            row.failures = 0
        row.failures += 1
        row.last_failure_at = now
        row.next_allowed_at = now + delay_after(row.failures)
        session.add(row)
        try:
            session.commit()
        except IntegrityError:
            session.rollback()
            continue
        if row.failures == FREE_FAILURES:
            log.warning("sign-in slowed down for %r from %s", username[:64], source)
        _forget_old(session, now)
        return row.failures
    return FREE_FAILURES


def record_success(session: Session, *, username: str, source: str) -> None:
    row = session.get(LoginFailure, _key(username, source))
    if row is not None:
        session.delete(row)
        session.commit()


def _forget_old(session: Session, now: datetime) -> None:
    """Pairs idle past the window are gone (bounded table under a name-spraying attack)."""
    if secrets.randbelow(50):  # about one failure in fifty does the sweep
        return
    session.exec(delete(LoginFailure).where(col(LoginFailure.last_failure_at) < now - WINDOW))
    session.commit()
