"""Finding events: filters on the indexed facts, newest first, keyset pages by seq."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from audit import day_counts
from audit.canonical import format_ts
from audit.models import AuditEvent
from audit.store import COLUMNS, SELECT_COLUMNS, event_from_row

MAX_LIMIT = 1000
# Events a timeline request may count into audit_day_counts (about 30 ms): the first
# requests over a long period pay a little each instead of one paying for it all.
COUNT_BUDGET = 5_000
_events = AuditEvent.__table__  # type: ignore[attr-defined]


def parse_moment(value: str, *, end: bool = False) -> str:
    """`2026-11-22` or an RFC 3339 time → the stored timestamp form. A bare date as an
    upper bound means the end of that day."""
    text = value.strip()
    try:
        if len(text) == 10:
            day = datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=UTC)
            return format_ts(day) if not end else f"{text}T23:59:59.999999Z"
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"无法识别的时间：{value[:40]}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return format_ts(moment)


@dataclass(frozen=True)
class EventQuery:
    action: str | None = None
    client_id: str | None = None
    actor: str | None = None
    dataset: str | None = None
    outcome: str | None = None
    request_id: str | None = None
    grant_id: int | None = None
    ip: str | None = None  # the auditor console's (a denial burst's address)
    since: str | None = None  # stored form, inclusive
    until: str | None = None  # stored form, inclusive
    before_seq: int | None = None  # keyset cursor
    limit: int = 100

    def conditions(self) -> list[Any]:
        c = _events.c
        where: list[Any] = []
        if self.action:
            # `data` matches every data.* action; `data.records` exactly.
            where.append(
                c.action.like(f"{self.action}.%") | (c.action == self.action)
                if "." not in self.action
                else c.action == self.action
            )
        for column, value in (
            (c.client_id, self.client_id),
            (c.actor, self.actor),
            (c.outcome, self.outcome),
            (c.request_id, self.request_id),
            (c.grant_id, self.grant_id),
            (c.ip, self.ip),
        ):
            if value is not None:
                where.append(column == value)
        if self.dataset:
            where.append(c.resource == f"datasets/{self.dataset}")
        if self.since:
            where.append(c.ts >= self.since)
        if self.until:
            where.append(c.ts <= self.until)
        if self.before_seq is not None:
            where.append(c.seq < self.before_seq)
        return where


def _seq_range(conn: Connection, query: EventQuery) -> list[Any] | None:
    """The time range as a seq range (None: no event lies in it). The writer stamps ts in
    chain order (never earlier than the head's), so the events of a period are one run
    of seqs; two index lookups find its ends, and a (…, seq) index then answers a filter
    plus the period newest first without reading the newer events of the filter."""
    c = _events.c
    where: list[Any] = []
    if query.since:
        first = conn.execute(
            sa.select(c.seq).where(c.ts >= query.since).order_by(c.ts, c.seq).limit(1)
        ).scalar()
        if first is None:
            return None
        where.append(c.seq >= first)
    if query.until:
        last = conn.execute(
            sa.select(c.seq).where(c.ts <= query.until).order_by(c.ts.desc(), c.seq.desc()).limit(1)
        ).scalar()
        if last is None:
            return None
        where.append(c.seq <= last)
    return where


def _where(conn: Connection, query: EventQuery) -> list[Any] | None:
    bounds = _seq_range(conn, query)
    return (
        None if bounds is None else [*replace(query, since=None, until=None).conditions(), *bounds]
    )


def search(engine: Engine, query: EventQuery) -> tuple[list[dict[str, Any]], int | None]:
    """A page of events, newest first, and the cursor for the next (older) page."""
    limit = max(1, min(query.limit, MAX_LIMIT))
    with engine.connect() as conn:
        where = _where(conn, query)
        if where is None:
            return [], None
        statement = (
            sa.select(sa.text(SELECT_COLUMNS))
            .select_from(_events)
            .where(*where)
            .order_by(_events.c.seq.desc())
            .limit(limit + 1)
        )
        rows = conn.execute(statement).fetchall()
    events = [event_from_row(tuple(r)) for r in rows[:limit]]
    cursor = events[-1]["seq"] if len(rows) > limit else None
    return events, cursor


def timeline(engine: Engine, query: EventQuery) -> list[tuple[str, str, int]]:
    """(UTC day, outcome, events) of every event the query matches (its cursor ignored).
    Closed days wholly inside the period come from audit_day_counts when the filters are
    ones it keeps (audit.day_counts); the days at either end that are not, and the head's
    day, are counted live."""
    query = replace(query, before_seq=None)
    if any((query.action, query.actor, query.request_id, query.grant_id is not None, query.ip)):
        return live_timeline(engine, query)
    filters = {"dataset": query.dataset, "client_id": query.client_id, "outcome": query.outcome}
    with engine.connect() as conn:
        days = day_counts.span(conn, query.since, query.until)
        if days is None:
            return live_timeline(engine, query)
        lo, hi = days
        counted = day_counts.counted_days(conn, lo, hi)
        runs = day_counts.runs_without(lo, hi, counted)
        rows = day_counts.counted(conn, counted, **filters) if not runs else []
    if runs:  # days not counted yet: a few now, the rest live for this request
        fresh = day_counts.count_some(engine, runs, COUNT_BUDGET)
        counted |= fresh
        with engine.connect() as conn:
            rows = day_counts.counted(conn, counted, **filters)
        for run in day_counts.runs_without(lo, hi, counted):
            part = replace(
                query,
                since=run[0] + day_counts.DAY_START,
                until=run[-1] + day_counts.DAY_END,
            )
            rows += live_timeline(engine, part)
        rows.sort()
    if query.since is not None and query.since < lo + day_counts.DAY_START:
        before = replace(query, until=day_counts.shift(lo, -1) + day_counts.DAY_END)
        rows = live_timeline(engine, before) + rows
    if query.until is None or query.until > hi + day_counts.DAY_END:
        after = replace(query, since=day_counts.shift(hi, 1) + day_counts.DAY_START)
        rows += live_timeline(engine, after)
    return rows


def live_timeline(engine: Engine, query: EventQuery) -> list[tuple[str, str, int]]:
    """The timeline counted from the events: one GROUP BY on the page's conditions,
    served by the same indexes as the page."""
    day = sa.func.substr(_events.c.ts, 1, 10)
    with engine.connect() as conn:
        where = _where(conn, replace(query, before_seq=None))
        if where is None:
            return []
        statement = (
            sa.select(day, _events.c.outcome, sa.func.count())
            .where(*where)
            .group_by(day, _events.c.outcome)
            .order_by(day, _events.c.outcome)
        )
        return [(d, o, int(n)) for d, o, n in conn.execute(statement)]


def get_event(engine: Engine, seq: int) -> dict[str, Any] | None:
    statement = sa.select(sa.text(SELECT_COLUMNS)).select_from(_events).where(_events.c.seq == seq)
    with engine.connect() as conn:
        row = conn.execute(statement).first()
    return event_from_row(tuple(row)) if row else None


__all__ = [
    "COLUMNS",
    "EventQuery",
    "get_event",
    "live_timeline",
    "parse_moment",
    "search",
    "timeline",
]
