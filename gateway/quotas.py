"""Per-grant daily quotas (requests, rows, verify calls), counted in `grant_usage` so they
hold across every worker and host. Rows: a request that would exceed the day's remaining
rows is trimmed to the remainder, and the answer says so (`X-Quota-Rows-Remaining`,
`X-Quota-Trimmed`); with nothing left it is refused with 429 `quota_exceeded` before any
row is sent. Days are the bureau's business days (UTC+8)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection, Engine

from catalog.problems import Problem
from policies.decide import Plan
from policies.models import GrantUsage

BUSINESS_DAY = timedelta(hours=8)
COUNTERS = {"requests_per_day": "requests", "rows_per_day": "rows", "verifies_per_day": "verifies"}


def business_day() -> date:
    return (datetime.now(UTC) + BUSINESS_DAY).date()


def _exceeded(quota: str, limit: int) -> Problem:
    return Problem(
        429,
        "quota_exceeded",
        f"今日配额 {quota} 已用完（上限 {limit}）",
        headers={"Retry-After": "3600"},
        quota=quota,
    )


def _ensure_row(conn: Connection, grant_id: int, day: date) -> None:
    """Today's row, created if missing. A write, and the first statement of the
    transaction on purpose: SQLite then takes its write lock here, waiting for it under
    `busy_timeout`, instead of failing with `database is locked` when a read-only
    transaction later tries to upgrade while another worker writes."""
    insert = sqlite_insert if conn.dialect.name == "sqlite" else postgresql_insert
    conn.execute(
        insert(GrantUsage.__table__).values(grant_id=grant_id, day=day).on_conflict_do_nothing()
    )


def _take(engine: Engine, grant_id: int, column: str, amount: int, limit: int | None) -> int:
    """Atomically add up to `amount` to today's counter without passing `limit`; how much
    was taken (0 when nothing is left)."""
    table = GrantUsage.__table__
    day = business_day()
    counter = table.c[column]
    with engine.begin() as conn:
        _ensure_row(conn, grant_id, day)
        where = (table.c.grant_id == grant_id, table.c.day == day)
        if limit is None:
            conn.execute(sa.update(table).where(*where).values({column: counter + amount}))
            return amount
        # The conditional UPDATE is the lock: concurrent requests cannot both take the rest.
        for _ in range(5):
            used = conn.execute(sa.select(counter).where(*where)).scalar_one()
            take = min(amount, limit - used)
            if take <= 0:
                return 0
            done = conn.execute(
                sa.update(table).where(*where, counter == used).values({column: counter + take})
            ).rowcount
            if done:
                return take
        return 0


def count_request(engine: Engine, plan: Plan, counter: str = "requests_per_day") -> None:
    """One request (or verify call) against the grant's daily quota."""
    if plan.grant is None:
        return
    limit = plan.grant.quotas.get(counter)
    if _take(engine, plan.grant.id, COUNTERS[counter], 1, limit) == 0:
        raise _exceeded(counter, limit or 0)


def reserve_rows(engine: Engine, plan: Plan, wanted: int) -> int:
    """Rows this request may send (≤ wanted); refuses when none are left."""
    if plan.grant is None or "rows_per_day" not in plan.grant.quotas:
        return wanted
    limit = plan.grant.quotas["rows_per_day"]
    granted = _take(engine, plan.grant.id, "rows", wanted, limit)
    if granted == 0:
        raise _exceeded("rows_per_day", limit)
    return granted


def refund_rows(engine: Engine, plan: Plan, unused: int) -> None:
    """Give back rows reserved but not sent (a page shorter than its limit)."""
    if unused <= 0 or plan.grant is None or "rows_per_day" not in plan.grant.quotas:
        return
    table = GrantUsage.__table__
    with engine.begin() as conn:
        conn.execute(
            sa.update(table)
            .where(table.c.grant_id == plan.grant.id, table.c.day == business_day())
            .values(rows=table.c.rows - unused)
        )


def rows_remaining(engine: Engine, plan: Plan) -> int | None:
    if plan.grant is None or "rows_per_day" not in plan.grant.quotas:
        return None
    table = GrantUsage.__table__
    with engine.connect() as conn:
        used = conn.execute(
            sa.select(table.c.rows).where(
                table.c.grant_id == plan.grant.id, table.c.day == business_day()
            )
        ).scalar()
    return max(0, plan.grant.quotas["rows_per_day"] - (used or 0))
