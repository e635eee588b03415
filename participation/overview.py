"""The public figures of the cockpit (数据驾驶舱, `GET /api/v1/stats/overview`): the open
catalog by open type, level, theme, department and zone; demands received, answered and
satisfied and the 供需满足率 (satisfied ÷ closed); 纠错 received and handled, and how many
within `HANDLED_WITHIN_DAYS`; data requests per day over 30 days and the most used
datasets, from the audit log. Only totals: no figure names an app or a person.

Closed datasets (不予开放) appear as one count: their metadata is the administrators'.
The audit counts are one GROUP BY over the ts index; the whole overview is cached per
process for `CACHE_SECONDS`, so a busy cockpit costs the database little, and refreshed off
the request path (`OverviewCache`), so no page waits for the GROUP BYs but the very first."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from audit.canonical import format_ts
from participation.demands import CLOSED

log = logging.getLogger("opengate.overview")

DAYS = 30
TOP = 10
HANDLED_WITHIN_DAYS = 7
CACHE_SECONDS = 30.0
OPEN_TYPES = ("unconditional", "conditional", "closed")
OPEN_TYPE_LABELS = {
    "unconditional": "无条件开放",
    "conditional": "有条件开放",
    "closed": "不予开放",
}
LEVEL_LABELS = {1: "一级（公开）", 2: "二级（内部）", 3: "三级（敏感）", 4: "四级（高度敏感）"}
# Data reads: every data route's event but the completion notes of streamed exports.
DATA_READ = "action LIKE 'data.%' AND action NOT LIKE '%.completed' AND outcome = 'allowed'"


def _pairs(conn: Connection, sql: str, **params: Any) -> list[tuple[Any, int]]:
    return [(r[0], int(r[1])) for r in conn.execute(sa.text(sql), params)]


def _ranked(pairs: list[tuple[Any, int]], key: str) -> list[dict[str, Any]]:
    return [
        {key: name, "count": count}
        for name, count in sorted(pairs, key=lambda p: (-p[1], str(p[0])))
    ]


def _datasets(conn: Connection) -> dict[str, Any]:
    by_type = dict(_pairs(conn, "SELECT open_type, count(*) FROM datasets GROUP BY open_type"))
    # Column names are constants of this module, never input.
    group = "SELECT {0}, count(*) FROM datasets WHERE open_type != 'closed' GROUP BY {0}"
    by_level = dict(_pairs(conn, group.format("level")))
    return {
        "total": sum(by_type.get(t, 0) for t in OPEN_TYPES if t != "closed"),
        "by_open_type": {t: by_type.get(t, 0) for t in OPEN_TYPES},
        "by_level": {str(level): by_level.get(level, 0) for level in LEVEL_LABELS},
        "by_theme": _ranked(_pairs(conn, group.format("theme")), "theme"),
        "by_department": _ranked(_pairs(conn, group.format("publisher")), "department"),
        "by_zone": _ranked(_pairs(conn, group.format("zone")), "zone"),
    }


def _demands(conn: Connection) -> dict[str, Any]:
    by_status = dict(_pairs(conn, "SELECT status, count(*) FROM demands GROUP BY status"))
    received = sum(by_status.values())
    satisfied = by_status.get("satisfied", 0)
    closed = sum(by_status.get(s, 0) for s in CLOSED)
    return {
        "received": received,
        # answered: every demand the administrators replied to, closed ones included
        "answered": received - by_status.get("open", 0),
        "satisfied": satisfied,
        "declined": by_status.get("declined", 0),
        "open": by_status.get("open", 0),
        "satisfaction_rate": round(satisfied / closed, 4) if closed else None,
    }


def _feedback(conn: Connection) -> dict[str, Any]:
    rows = conn.execute(sa.text("SELECT status, created_at, handled_at FROM feedback")).all()
    limit = timedelta(days=HANDLED_WITHIN_DAYS)
    handled = [r for r in rows if r.handled_at is not None]
    in_time = sum(1 for r in handled if _moment(r.handled_at) - _moment(r.created_at) <= limit)
    return {
        "received": len(rows),
        "handled": len(handled),
        "fixed": sum(1 for r in rows if r.status == "fixed"),
        "handled_within_days": HANDLED_WITHIN_DAYS,
        "handled_in_time": in_time,
        "handled_in_time_rate": round(in_time / len(handled), 4) if handled else None,
    }


def _moment(value: Any) -> datetime:
    if isinstance(value, str):  # SQLite hands text back through a raw query
        value = datetime.fromisoformat(value)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _requests(
    conn: Connection, today: datetime
) -> tuple[list[dict[str, Any]], list[tuple[str, int]]]:
    first = (today - timedelta(days=DAYS - 1)).replace(hour=0, minute=0, second=0, microsecond=0)
    since = format_ts(first)
    per_day = dict(
        _pairs(
            conn,
            f"SELECT substr(ts, 1, 10), count(*) FROM audit_events WHERE ts >= :since "  # noqa: S608
            f"AND {DATA_READ} GROUP BY 1",
            since=since,
        )
    )
    days = [(first + timedelta(days=i)).strftime("%Y-%m-%d") for i in range(DAYS)]
    series = [{"date": d, "count": per_day.get(d, 0)} for d in days]
    used = _pairs(
        conn,
        f"SELECT substr(resource, 10), count(*) FROM audit_events WHERE ts >= :since "  # noqa: S608
        f"AND {DATA_READ} AND resource LIKE 'datasets/%' GROUP BY 1",
        since=since,
    )
    return series, used


def _top(conn: Connection, used: list[tuple[str, int]]) -> list[dict[str, Any]]:
    counts: dict[str, int] = {}
    for resource, count in used:
        dataset = resource.split("/", 1)[0]  # "<id>" or "<id>/records/…"
        counts[dataset] = counts.get(dataset, 0) + count
    if not counts:
        return []
    titles = {
        r[0]: (r[1], r[2])
        for r in conn.execute(
            sa.text("SELECT id, title, open_type FROM datasets WHERE id IN :ids").bindparams(
                sa.bindparam("ids", expanding=True)
            ),
            {"ids": list(counts)},
        )
    }
    ranked = sorted(
        ((d, n) for d, n in counts.items() if d in titles and titles[d][1] != "closed"),
        key=lambda p: (-p[1], p[0]),
    )
    return [{"id": d, "title": titles[d][0], "requests": n} for d, n in ranked[:TOP]]


def compute(engine: Engine, *, now: datetime | None = None) -> dict[str, Any]:
    today = now or datetime.now(UTC)
    with engine.connect() as conn:
        series, used = _requests(conn, today)
        return {
            "datasets": _datasets(conn),
            "demands": _demands(conn),
            "feedback": _feedback(conn),
            "requests": {"days": DAYS, "total": sum(d["count"] for d in series), "by_day": series},
            "top_datasets": _top(conn, used),
            "generated_at": today.strftime("%Y-%m-%dT%H:%M:%SZ"),
        }


class OverviewCache:
    """`compute()` at most once per `ttl` seconds per process, off the request path
    (stale-while-revalidate): a request that finds the figures older than `ttl` is answered
    with them as they are and starts one background refresh; at most one runs at a time, and
    the others keep reading the last figures meanwhile. Only the first request ever, with
    nothing to serve yet, computes in its own thread (the others wait for that one)."""

    def __init__(
        self,
        engine: Engine,
        *,
        ttl: float = CACHE_SECONDS,
        compute: Callable[[Engine], dict[str, Any]] = compute,
    ) -> None:
        self.engine = engine
        self.ttl = ttl
        self._compute = compute
        self._first = threading.Lock()  # one first computation, the others wait for it
        self._lock = threading.Lock()  # guards `_refreshing`
        self._refreshing = False
        self._value: dict[str, Any] | None = None
        self._at = 0.0

    def get(self) -> dict[str, Any]:
        value = self._value
        if value is None:
            with self._first:
                if self._value is None:
                    self._value = self._compute(self.engine)
                    self._at = time.monotonic()
                return self._value
        if time.monotonic() - self._at >= self.ttl:
            self._start_refresh()
        return value

    def clear(self) -> None:
        """Forget the figures: the next `get` computes them (tests, after a change)."""
        self._value = None

    @property
    def refreshing(self) -> bool:
        return self._refreshing

    def _start_refresh(self) -> None:
        with self._lock:
            if self._refreshing:
                return
            self._refreshing = True
        threading.Thread(target=self._refresh, name="overview-refresh", daemon=True).start()

    def _refresh(self) -> None:
        try:
            value = self._compute(self.engine)
        except Exception:  # the database is away: keep the last figures, retry after ttl
            log.warning("the overview could not be refreshed; serving the last one", exc_info=True)
            self._at = time.monotonic()
        else:
            # One assignment each: a reader sees the old value or the new one, never half.
            self._value = value
            self._at = time.monotonic()
        finally:
            with self._lock:
                self._refreshing = False
