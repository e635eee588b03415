"""Dashboard numbers and anomaly flags over a time range of the log.

Counts are SQL GROUP BYs that run on SQLite and PostgreSQL alike: `ts` is fixed-width
text, so substr(ts, 1, 10) is the UTC day and substr(ts, 1, 13) the hour; `detail`
members are read with each dialect's JSON operator. Anomaly candidates are narrowed in
SQL and confirmed in Python on the few rows left.

Flags:
- `row_spike`: an app whose rows on a day exceed max(10 × its median daily rows over the
  7 days before, 1000) — days without requests count as 0.
- `denial_burst`: ≥ 20 denied events for one actor or one address within an hour
  (a sliding window; "anonymous" is not one actor, its addresses are).
- `verify_sweep`: ≥ 50 distinct `detail.values` digests for one app on `data.verify` in
  a day — someone testing many people's data one by one.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from audit.canonical import format_ts

ROW_SPIKE_FACTOR = 10
ROW_SPIKE_FLOOR = 1000
HISTORY_DAYS = 7
DENIAL_BURST = 20
DENIAL_WINDOW = timedelta(hours=1)
VERIFY_SWEEP = 50
DEFAULT_DAYS = 30

_DATASET = "CASE WHEN resource LIKE 'datasets/%' THEN substr(resource, 10) END"
_RANGE = "ts >= :since AND ts <= :until"
_DAY = "%Y-%m-%d"
_HOUR = "%Y-%m-%dT%H"


def _detail(dialect: str, key: str) -> str:
    """SQL for the text of `detail.<key>` (key: a constant)."""
    if dialect == "postgresql":
        return f"(detail ->> '{key}')"
    return f"json_extract(detail, '$.{key}')"


def default_since(until: str) -> str:
    day = datetime.strptime(until[:10], _DAY).replace(tzinfo=UTC)
    return format_ts(day - timedelta(days=DEFAULT_DAYS - 1))


def _rows(conn: Connection, sql: str, **params: Any) -> list[tuple[Any, ...]]:
    return [tuple(r) for r in conn.execute(sa.text(sql), params)]


def stats(engine: Engine, *, since: str, until: str, top: int = 10) -> dict[str, Any]:
    """Everything the dashboard shows for since ≤ ts ≤ until (stored timestamps)."""
    dialect = engine.dialect.name
    window = {"since": since, "until": until}
    with engine.connect() as conn:
        counts = _rows(
            conn,
            f"SELECT substr(ts, 1, 10), action, {_DATASET}, client_id, outcome, count(*), "  # noqa: S608
            f"sum(row_count) FROM audit_events WHERE {_RANGE} "
            "GROUP BY 1, 2, 3, 4, 5 ORDER BY 1, 2, 3, 4, 5",
            **window,
        )
        consumers = _rows(
            conn,
            "SELECT client_id, sum(CASE WHEN action LIKE '%.completed' THEN 0 ELSE 1 END), "  # noqa: S608
            "sum(coalesce(row_count, 0)) FROM audit_events WHERE action LIKE 'data.%' "
            "AND client_id IS NOT NULL "
            f"AND {_RANGE} GROUP BY client_id",
            **window,
        )
        denials = _rows(
            conn,
            f"SELECT client_id, actor, ip, {_detail(dialect, 'error')}, count(*) "  # noqa: S608
            f"FROM audit_events WHERE outcome = 'denied' AND {_RANGE} GROUP BY 1, 2, 3, 4",
            **window,
        )
        anomalies = [
            *_row_spikes(conn, since, until),
            *_denial_bursts(conn, since, until),
            *_verify_sweeps(conn, dialect, since, until),
        ]

    def consumer(row: tuple[Any, ...]) -> dict[str, Any]:
        return {"client_id": row[0], "requests": int(row[1]), "rows": int(row[2])}

    return {
        "since": since,
        "until": until,
        "counts": [
            {
                "day": day,
                "action": action,
                "dataset": dataset,
                "client_id": client_id,
                "outcome": outcome,
                "events": int(events),
                "rows": int(rows or 0),
            }
            for day, action, dataset, client_id, outcome, events, rows in counts
        ],
        "top_consumers": {
            "by_rows": [consumer(r) for r in sorted(consumers, key=lambda r: (-r[2], r[0]))[:top]],
            "by_requests": [
                consumer(r) for r in sorted(consumers, key=lambda r: (-r[1], r[0]))[:top]
            ],
        },
        "denials": _fold_denials(denials)[:top],
        "anomalies": anomalies,
    }


def denial_reasons(engine: Engine, *, since: str, until: str) -> list[dict[str, Any]]:
    """Denied events of the range by their problem code, most frequent first (every
    denial, where `stats()["denials"]` keeps the top callers)."""
    code = _detail(engine.dialect.name, "error")
    with engine.connect() as conn:
        rows = _rows(
            conn,
            f"SELECT {code}, count(*) FROM audit_events "  # noqa: S608
            f"WHERE outcome = 'denied' AND {_RANGE} GROUP BY 1",
            since=since,
            until=until,
        )
    found = [{"code": c or "unknown", "count": int(n)} for c, n in rows]
    return sorted(found, key=lambda r: (-r["count"], r["code"]))


def _fold_denials(rows: list[tuple[Any, ...]]) -> list[dict[str, Any]]:
    """(app, actor, address, code, n) rows → one entry per (app, actor, address) with its
    codes, most denied first."""
    folded: dict[tuple[Any, ...], dict[str, Any]] = {}
    for client_id, actor, ip, code, n in rows:
        entry = folded.setdefault(
            (client_id, actor, ip),
            {"client_id": client_id, "actor": actor, "ip": ip, "count": 0, "codes": {}},
        )
        entry["count"] += int(n)
        entry["codes"][code or "unknown"] = entry["codes"].get(code or "unknown", 0) + int(n)
    return sorted(folded.values(), key=lambda e: (-e["count"], str(e["actor"]), str(e["ip"])))


def _days(since: str, until: str) -> list[str]:
    first = datetime.strptime(since[:10], _DAY)
    last = datetime.strptime(until[:10], _DAY)
    return [(first + timedelta(days=i)).strftime(_DAY) for i in range((last - first).days + 1)]


def _row_spikes(conn: Connection, since: str, until: str) -> list[dict[str, Any]]:
    history = datetime.strptime(since[:10], _DAY) - timedelta(days=HISTORY_DAYS)
    daily: dict[str, dict[str, int]] = defaultdict(dict)
    for client_id, day, rows in _rows(
        conn,
        "SELECT client_id, substr(ts, 1, 10), sum(coalesce(row_count, 0)) FROM audit_events "
        "WHERE action LIKE 'data.%' AND client_id IS NOT NULL AND ts >= :history "
        "AND ts <= :until GROUP BY 1, 2",
        history=history.strftime(_DAY),
        until=until,
    ):
        daily[client_id][day] = int(rows)
    flags = []
    for day in _days(since, until):
        moment = datetime.strptime(day, _DAY)
        before = [(moment - timedelta(days=i)).strftime(_DAY) for i in range(1, HISTORY_DAYS + 1)]
        for client_id, per_day in daily.items():
            rows = per_day.get(day, 0)
            median = statistics.median(per_day.get(d, 0) for d in before)
            threshold = max(ROW_SPIKE_FACTOR * median, ROW_SPIKE_FLOOR)
            if rows > threshold:
                flags.append(
                    {
                        "kind": "row_spike",
                        "client_id": client_id,
                        "day": day,
                        "rows": rows,
                        "median_rows": median,
                        "threshold": threshold,
                    }
                )
    return sorted(flags, key=lambda f: (f["day"], f["client_id"]))


def _parse(ts: str) -> datetime:
    return datetime.fromisoformat(ts.replace("Z", "+00:00"))


def _peak(moments: list[datetime]) -> tuple[int, int]:
    """The largest number of `moments` (sorted) within DENIAL_WINDOW: (count, index of the
    first of them)."""
    best, best_start, start = 0, 0, 0
    for end, moment in enumerate(moments):
        while moment - moments[start] > DENIAL_WINDOW:
            start += 1
        if end - start + 1 > best:
            best, best_start = end - start + 1, start
    return best, best_start


def _denial_bursts(conn: Connection, since: str, until: str) -> list[dict[str, Any]]:
    flags = []
    for key, exclude in (("actor", "anonymous"), ("ip", "")):
        per_hour: dict[str, dict[str, int]] = defaultdict(dict)
        for value, hour, n in _rows(
            conn,
            f"SELECT {key}, substr(ts, 1, 13), count(*) FROM audit_events "  # noqa: S608
            f"WHERE outcome = 'denied' AND {key} IS NOT NULL AND {key} <> :exclude "
            f"AND {_RANGE} GROUP BY 1, 2",
            exclude=exclude,
            since=since,
            until=until,
        ):
            per_hour[value][hour] = int(n)
        for value, hours in per_hour.items():
            peak: tuple[int, list[datetime]] = (0, [])
            for hour, n in sorted(hours.items()):
                start = datetime.strptime(hour, _HOUR).replace(tzinfo=UTC)
                following = (start + timedelta(hours=1)).strftime(_HOUR)
                # any one-hour window lies within two consecutive clock hours
                if n + hours.get(following, 0) < DENIAL_BURST:
                    continue
                moments = [
                    _parse(ts)
                    for (ts,) in _rows(
                        conn,
                        f"SELECT ts FROM audit_events WHERE outcome = 'denied' "  # noqa: S608
                        f"AND {key} = :value AND {_RANGE} AND ts >= :lo AND ts < :hi "
                        "ORDER BY ts",
                        value=value,
                        since=since,
                        until=until,
                        lo=format_ts(start),
                        hi=format_ts(start + 2 * DENIAL_WINDOW),
                    )
                ]
                count, first = _peak(moments)
                if count > peak[0]:
                    peak = (count, moments[first : first + count])
            if peak[0] >= DENIAL_BURST:
                flags.append(
                    {
                        "kind": "denial_burst",
                        key: value,
                        "count": peak[0],
                        "from": format_ts(peak[1][0]),
                        "to": format_ts(peak[1][-1]),
                    }
                )
    return flags


def _verify_sweeps(conn: Connection, dialect: str, since: str, until: str) -> list[dict[str, Any]]:
    values = _detail(dialect, "values")
    return [
        {"kind": "verify_sweep", "client_id": client_id, "day": day, "distinct_values": int(n)}
        for client_id, day, n in _rows(
            conn,
            f"SELECT client_id, substr(ts, 1, 10), count(DISTINCT {values}) "  # noqa: S608
            "FROM audit_events WHERE action = 'data.verify' AND client_id IS NOT NULL "
            f"AND {_RANGE} GROUP BY 1, 2 HAVING count(DISTINCT {values}) >= :threshold "
            "ORDER BY 2, 1",
            since=since,
            until=until,
            threshold=VERIFY_SWEEP,
        )
    ]
