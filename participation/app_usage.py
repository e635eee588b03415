"""Data use per app for the administrator console (`/admin/usage`): requests and rows per
app per UTC day over the cockpit's `DAYS`, from the audit log with the cockpit's own filter
(every allowed data read but the completion notes of streamed exports), so the per-app
figures add up to the cockpit's request total. The audit log, not the grant counters
(`grant_usage`): those exist only for conditional datasets, count in UTC+8 days and miss
open-data reads; every data event carries its `client_id` and `row_count`.

Reads without an app (anonymous open-data reads, a person's own calls) are one line,
`client_id` None, listed last. Never cached: one GROUP BY over the ts index per view."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from audit.canonical import format_ts
from participation.overview import DATA_READ, DAYS


def per_app(engine: Engine, *, now: datetime | None = None) -> dict[str, Any]:
    today = now or datetime.now(UTC)
    first = (today - timedelta(days=DAYS - 1)).replace(hour=0, minute=0, second=0, microsecond=0)
    days = [(first + timedelta(days=i)).strftime("%Y-%m-%d") for i in range(DAYS)]
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT client_id, substr(ts, 1, 10), count(*), "  # noqa: S608 (constant)
                f"coalesce(sum(row_count), 0) FROM audit_events WHERE ts >= :since "
                f"AND {DATA_READ} GROUP BY 1, 2"
            ),
            {"since": format_ts(first)},
        ).all()
        ids = sorted({r[0] for r in rows if r[0] is not None})
        names = (
            dict(
                conn.execute(
                    sa.text("SELECT client_id, name FROM apps WHERE client_id IN :ids").bindparams(
                        sa.bindparam("ids", expanding=True)
                    ),
                    {"ids": ids},
                ).all()
            )
            if ids
            else {}
        )
    apps: dict[str | None, dict[str, Any]] = {}
    for client_id, day, requests, row_count in rows:
        app = apps.setdefault(
            client_id,
            {
                "client_id": client_id,
                "name": names.get(client_id, client_id) if client_id else "（未使用应用）",
                "requests": 0,
                "rows": 0,
                "by_day": {d: {"requests": 0, "rows": 0} for d in days},
            },
        )
        app["requests"] += int(requests)
        app["rows"] += int(row_count)
        if day in app["by_day"]:
            app["by_day"][day] = {"requests": int(requests), "rows": int(row_count)}
    # Most used app first; the line without an app last.
    ranked = sorted(
        apps.values(),
        key=lambda a: (a["client_id"] is None, -a["requests"], a["client_id"] or ""),
    )
    for app in ranked:
        app["by_day"] = [{"date": d, **app["by_day"][d]} for d in days]
    return {
        "days": days,
        "apps": ranked,
        "requests": sum(a["requests"] for a in ranked),
        "rows": sum(a["rows"] for a in ranked),
    }
