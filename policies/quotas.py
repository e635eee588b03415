"""Per-grant daily quotas (requests, rows, verify calls), counted in `grant_usage` so they
hold across every worker and host. Rows: a request that would exceed the day's remaining
rows is trimmed to the remainder, and the answer says so (`X-Quota-Rows-Remaining`,
`X-Quota-Trimmed`); with nothing left it is refused with 429 `quota_exceeded` before any
row is sent. Days are the bureau's business days (UTC+8).

A counter the grant sets no limit on decides nothing, so it is not written per request:
its counts gather in the process (`Tally`) and are written at most once a second, before
any limited count of the same grant, before usage is read and at shutdown. A limited
counter is taken by a conditional UPDATE on every request, exact across workers.

Every data route passes `admit()`; verify has its brake on top (`VerifyBrake`): a daily
quota even when the reviewer set none, a limit per subject value (counted by keyed
digest in `grant_verify_subjects`), and a count of misses that suspends the grant when a
guessing sweep shows."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from weakref import WeakKeyDictionary

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection, Engine

from kernel.problems import Problem
from policies.decide import Plan
from policies.models import GrantUsage, VerifySubjectUsage

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


FLUSH_SECONDS = 1.0


class Tally:
    """Counts of unlimited counters not yet written, per (grant, day, column)."""

    def __init__(self) -> None:
        self._counts: dict[tuple[int, date, str], int] = {}
        self._lock = threading.Lock()
        self._flushed = time.monotonic()

    def add(self, engine: Engine, grant_id: int, column: str, amount: int) -> None:
        key = (grant_id, business_day(), column)
        with self._lock:
            self._counts[key] = self._counts.get(key, 0) + amount
            due = time.monotonic() - self._flushed >= FLUSH_SECONDS
        if due:
            self.flush(engine)

    def flush(self, engine: Engine, grant_id: int | None = None) -> None:
        """Write the gathered counts (only `grant_id`'s when given); on failure they stay
        gathered and the error is raised."""
        with self._lock:
            if grant_id is None:
                taken, self._counts = self._counts, {}
                self._flushed = time.monotonic()
            else:
                taken = {k: v for k, v in self._counts.items() if k[0] == grant_id}
                for k in taken:
                    del self._counts[k]
        if not taken:
            return
        table = GrantUsage.__table__
        try:
            with engine.begin() as conn:
                for (grant, day, column), amount in sorted(taken.items()):  # one lock order
                    _ensure_row(conn, grant, day)
                    conn.execute(
                        sa.update(table)
                        .where(table.c.grant_id == grant, table.c.day == day)
                        .values({column: table.c[column] + amount})
                    )
        except BaseException:
            with self._lock:
                for k, v in taken.items():
                    self._counts[k] = self._counts.get(k, 0) + v
            raise


_tallies: WeakKeyDictionary[Engine, Tally] = WeakKeyDictionary()
_tallies_lock = threading.Lock()


def tally(engine: Engine) -> Tally:
    found = _tallies.get(engine)
    if found is None:
        with _tallies_lock:
            found = _tallies.setdefault(engine, Tally())
    return found


def flush(engine: Engine, grant_id: int | None = None) -> None:
    """Write this process's gathered unlimited counts (before usage is read, at exit)."""
    found = _tallies.get(engine)
    if found is not None:
        found.flush(engine, grant_id)


def _take(engine: Engine, grant_id: int, column: str, amount: int, limit: int | None) -> int:
    """Atomically add up to `amount` to today's counter without passing `limit`; how much
    was taken (0 when nothing is left). Unlimited: gathered, written within a second."""
    if limit is None:
        tally(engine).add(engine, grant_id, column, amount)
        return amount
    flush(engine, grant_id)  # the limit counts what was gathered before it was set
    table = GrantUsage.__table__
    day = business_day()
    counter = table.c[column]
    with engine.begin() as conn:
        _ensure_row(conn, grant_id, day)
        where = (table.c.grant_id == grant_id, table.c.day == day)
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


def admit(engine: Engine, plan: Plan, *, rows: int | None) -> int:
    """The one quota gate of every data route (records, one record, export, aggregate,
    verify): count the request against the grant's `requests_per_day`, then reserve up
    to `rows` rows (`rows=None`: a route that sends no rows). How many rows may be sent;
    refuses with 429 `quota_exceeded` when nothing is left."""
    if plan.grant is None:
        return rows or 0
    count_request(engine, plan)
    if rows is None:
        return 0
    return reserve_rows(engine, plan, rows)


def count_request(
    engine: Engine, plan: Plan, counter: str = "requests_per_day", *, default: int | None = None
) -> None:
    """One request (or verify call) against the grant's daily quota (`default` when the
    grant sets none)."""
    if plan.grant is None:
        return
    limit = plan.grant.quotas.get(counter, default)
    if _take(engine, plan.grant.id, COUNTERS[counter], 1, limit) == 0:
        raise _exceeded(counter, limit or 0)


@dataclass(frozen=True, slots=True)
class VerifyBrake:
    """The installation's verify defaults (OPENGATE_VERIFY_*); a grant's own
    `verifies_per_day` / `verifies_per_subject_per_day` quotas take precedence."""

    per_day: int
    per_subject: int
    sweep_misses: int
    sweep_subjects: int

    def limits(self, quotas: Mapping[str, int]) -> dict[str, int]:
        return {
            "verifies_per_day": quotas.get("verifies_per_day", self.per_day),
            "verifies_per_subject_per_day": quotas.get(
                "verifies_per_subject_per_day", self.per_subject
            ),
        }


def count_verify(
    engine: Engine, plan: Plan, brake: VerifyBrake, subjects: Iterable[str]
) -> tuple[int, int]:
    """One verify call: the day's verify quota, then each subject value it names (keyed
    digests) at most `per subject` times a day. All or nothing per subject set: a call
    refused for one subject takes nothing from the others. How many distinct subject
    values the grant had verified today before this call, and with it."""
    if plan.grant is None:
        return 0, 0
    limits = brake.limits(plan.grant.quotas)
    count_request(engine, plan, "verifies_per_day", default=limits["verifies_per_day"])
    limit = limits["verifies_per_subject_per_day"]
    table = VerifySubjectUsage.__table__
    day = business_day()
    insert = sqlite_insert if engine.dialect.name == "sqlite" else postgresql_insert
    where = (table.c.grant_id == plan.grant.id, table.c.day == day)
    distinct = sa.select(sa.func.count()).select_from(table).where(*where)
    with engine.begin() as conn:
        before = conn.execute(distinct).scalar_one()
        for digest in sorted(set(subjects)):  # one order: two calls never deadlock
            conn.execute(
                insert(table)
                .values(grant_id=plan.grant.id, day=day, digest=digest, calls=0)
                .on_conflict_do_nothing()
            )
            done = conn.execute(
                sa.update(table)
                .where(*where, table.c.digest == digest, table.c.calls < limit)
                .values(calls=table.c.calls + 1)
            ).rowcount
            if not done:  # raising rolls the transaction back: nothing is taken
                raise _exceeded("verifies_per_subject_per_day", limit)
        after = conn.execute(distinct).scalar_one()
    return before, after


def record_miss(engine: Engine, plan: Plan) -> int:
    """A verify call answered false; the grant's misses today, this one included."""
    assert plan.grant is not None
    table = GrantUsage.__table__
    day = business_day()
    with engine.begin() as conn:
        _ensure_row(conn, plan.grant.id, day)
        where = (table.c.grant_id == plan.grant.id, table.c.day == day)
        conn.execute(sa.update(table).where(*where).values(verify_misses=table.c.verify_misses + 1))
        return conn.execute(sa.select(table.c.verify_misses).where(*where)).scalar_one()


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
