"""The timeline's indexed aggregate: events per closed UTC day, dataset, app and outcome.

A day is closed once the chain head's ts lies on a later day: the writer never stamps an
event earlier than the head (audit.writer._chain_ts), so no event of that day can still
come. The first timeline that needs a closed day counts it, with one GROUP BY over the
day's run of seqs, into audit_day_counts, and marks it in audit_days_counted; every later
timeline reads the few rows of the days it spans (index (resource, client_id, day)).
Partial days at either end of a period, and the head's own day, are counted live by
audit.search. Only filters the table keeps (dataset, app, outcome) can use it; any other
filter counts live. An archive (audit.archive) forgets the days it cuts into.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError

from audit.models import AuditDayCount, AuditDayCounted, AuditEvent

DAY_START = "T00:00:00.000000Z"
DAY_END = "T23:59:59.999999Z"

_events = AuditEvent.__table__  # type: ignore[attr-defined]
_counts = AuditDayCount.__table__  # type: ignore[attr-defined]
_counted = AuditDayCounted.__table__  # type: ignore[attr-defined]


def shift(day: str, days: int) -> str:
    return (date.fromisoformat(day) + timedelta(days=days)).isoformat()


def span(conn: Connection, since: str | None, until: str | None) -> tuple[str, str] | None:
    """The closed days lying wholly inside [since, until] (stored forms, inclusive; None:
    unbounded), first and last, or None when there is none."""
    head = conn.execute(sa.text("SELECT ts FROM audit_head WHERE id = 1")).scalar()
    if head is None:
        return None
    last_closed = shift(head[:10], -1)
    if since is None:
        first = conn.execute(sa.select(sa.func.min(_events.c.ts))).scalar()
        if first is None:
            return None
        lo = first[:10]
    else:
        lo = since[:10] if since == since[:10] + DAY_START else shift(since[:10], 1)
    if until is None:
        hi = last_closed
    else:
        hi = until[:10] if until == until[:10] + DAY_END else shift(until[:10], -1)
        hi = min(hi, last_closed)
    return (lo, hi) if lo <= hi else None


def counted_days(conn: Connection, lo: str, hi: str) -> set[str]:
    return set(
        conn.execute(
            sa.select(_counted.c.day).where(_counted.c.day >= lo, _counted.c.day <= hi)
        ).scalars()
    )


def runs_without(lo: str, hi: str, counted: set[str]) -> list[list[str]]:
    """The days in [lo, hi] not in `counted`, as runs of consecutive days."""
    runs: list[list[str]] = []
    day = lo
    while day <= hi:
        if day not in counted:
            if runs and runs[-1][-1] == shift(day, -1):
                runs[-1].append(day)
            else:
                runs.append([day])
        day = shift(day, 1)
    return runs


def _seq_bounds(conn: Connection, since: str, until: str) -> tuple[int, int] | None:
    c = _events.c
    first = conn.execute(
        sa.select(c.seq).where(c.ts >= since).order_by(c.ts, c.seq).limit(1)
    ).scalar()
    last = conn.execute(
        sa.select(c.seq).where(c.ts <= until).order_by(c.ts.desc(), c.seq.desc()).limit(1)
    ).scalar()
    return (first, last) if first is not None and last is not None and first <= last else None


def count_run(engine: Engine, days: list[str]) -> bool:
    """Count a run of consecutive closed days, in one transaction with their marks (True);
    a concurrent request counting the same days makes this one a no-op (False)."""
    c = _events.c
    day = sa.func.substr(c.ts, 1, 10)
    dataset = sa.case((c.resource.like("datasets/%"), c.resource), else_=None)
    try:
        with engine.begin() as conn:
            # The marks first: a second counter blocks here, then fails on the key.
            conn.execute(sa.insert(_counted), [{"day": d} for d in days])
            bounds = _seq_bounds(conn, days[0] + DAY_START, days[-1] + DAY_END)
            if bounds is None:
                return True
            grouped = (
                sa.select(day, dataset, c.client_id, c.outcome, sa.func.count())
                .where(c.seq >= bounds[0], c.seq <= bounds[1])
                .group_by(day, dataset, c.client_id, c.outcome)
            )
            conn.execute(
                sa.insert(_counts).from_select(
                    ["day", "resource", "client_id", "outcome", "events"], grouped
                )
            )
    except IntegrityError:
        return False
    return True


def count_some(engine: Engine, runs: list[list[str]], budget: int) -> set[str]:
    """Count, newest first, the runs (or single days of them) holding at most `budget`
    events in all, so that a request never pays for counting a long period: the rest
    stays live until later requests (or `count_all`) count it. The days counted."""
    done: set[str] = set()
    for run in reversed(runs):
        with engine.connect() as conn:
            bounds = _seq_bounds(conn, run[0] + DAY_START, run[-1] + DAY_END)
        size = 0 if bounds is None else bounds[1] - bounds[0] + 1
        if size <= budget:
            if count_run(engine, run):
                done.update(run)
            budget -= size
            continue
        for day in reversed(run):  # a run too big: its newest days that fit
            with engine.connect() as conn:
                bounds = _seq_bounds(conn, day + DAY_START, day + DAY_END)
            size = 0 if bounds is None else bounds[1] - bounds[0] + 1
            if size > budget:
                return done
            if count_run(engine, [day]):
                done.add(day)
            budget -= size
    return done


def count_all(engine: Engine) -> int:
    """Count every closed day not counted yet (what the requests would do over time, at
    once); the number of days counted."""
    with engine.connect() as conn:
        days = span(conn, None, None)
        if days is None:
            return 0
        runs = runs_without(*days, counted_days(conn, *days))
    return sum(len(run) for run in runs if count_run(engine, run))


def counted(
    conn: Connection,
    days: set[str],
    *,
    dataset: str | None,
    client_id: str | None,
    outcome: str | None,
) -> list[tuple[str, str, int]]:
    """(day, outcome, events) of `days` (counted ones) under the filters. Only the days
    the caller knows counted: one counted meanwhile by another request is counted live
    by the caller, so it must not be read here too."""
    if not days:
        return []
    c = _counts.c
    where: list[Any] = [c.day.in_(sorted(days))]
    if dataset:
        where.append(c.resource == f"datasets/{dataset}")
    if client_id is not None:
        where.append(c.client_id == client_id)
    if outcome is not None:
        where.append(c.outcome == outcome)
    statement = (
        sa.select(c.day, c.outcome, sa.func.sum(c.events))
        .where(*where)
        .group_by(c.day, c.outcome)
        .order_by(c.day, c.outcome)
    )
    return [(d, o, int(n)) for d, o, n in conn.execute(statement)]


def forget_through(conn: Connection, last_day: str) -> None:
    """Drop the counts of every day up to `last_day` (an archive removed some or all of
    their events; what is left of the last one is counted again when asked)."""
    conn.execute(sa.delete(_counts).where(_counts.c.day <= last_day))
    conn.execute(sa.delete(_counted).where(_counted.c.day <= last_day))
