"""SQL for the chain, on a SQLAlchemy connection inside the caller's transaction.

Appenders serialize on the one `audit_head` row: `SELECT … FOR UPDATE` on PostgreSQL,
SQLite's database write lock (taken first, by a no-op UPDATE, so a reader never has to
upgrade). Whoever holds it reads the head, links its batch to it and moves it on: one
chain with no gaps and no forks however many processes or hosts append.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from audit.canonical import EVENT_KEYS

COLUMNS = (*EVENT_KEYS, "prev_hash", "hash")
_JSON_COLUMNS = ("fields", "detail")
_COLUMN_LIST = ", ".join(COLUMNS)  # constants only: no input reaches these statements
_INSERT = sa.text(
    f"INSERT INTO audit_events ({_COLUMN_LIST}) VALUES ({', '.join(':' + c for c in COLUMNS)})"  # noqa: S608
)
# JSON columns as text: what was written is what the hash covers.
SELECT_COLUMNS = ", ".join(f"CAST({c} AS TEXT)" if c in _JSON_COLUMNS else c for c in COLUMNS)
_PAGE = sa.text(
    f"SELECT {SELECT_COLUMNS} FROM audit_events WHERE seq > :after AND seq <= :through "  # noqa: S608
    "ORDER BY seq LIMIT :batch"
)


@dataclass(frozen=True, slots=True)
class Head:
    seq: int
    hash: str
    ts: str


def lock_head(conn: Connection) -> Head:
    if conn.dialect.name == "sqlite":
        conn.exec_driver_sql("UPDATE audit_head SET seq = seq WHERE id = 1")
        row = conn.exec_driver_sql("SELECT seq, hash, ts FROM audit_head WHERE id = 1").one()
    else:
        row = conn.exec_driver_sql(
            "SELECT seq, hash, ts FROM audit_head WHERE id = 1 FOR UPDATE"
        ).one()
    return Head(int(row[0]), row[1], row[2])


def read_head(conn: Connection) -> Head:
    row = conn.exec_driver_sql("SELECT seq, hash, ts FROM audit_head WHERE id = 1").one()
    return Head(int(row[0]), row[1], row[2])


def move_head(conn: Connection, head: Head) -> None:
    conn.execute(
        sa.text("UPDATE audit_head SET seq = :seq, hash = :hash, ts = :ts WHERE id = 1"),
        {"seq": head.seq, "hash": head.hash, "ts": head.ts},
    )


def _json_text(value: Any) -> str | None:
    return None if value is None else orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()


def insert_events(conn: Connection, events: Sequence[dict[str, Any]]) -> None:
    """Complete events (seq, hashes) in seq order; COPY on PostgreSQL."""
    if conn.dialect.name == "postgresql":
        raw = conn.connection.driver_connection
        with (
            raw.cursor() as cursor,  # type: ignore[union-attr]
            cursor.copy(f"COPY audit_events ({_COLUMN_LIST}) FROM STDIN") as copy,
        ):
            for e in events:
                copy.write_row([_json_text(e[c]) if c in _JSON_COLUMNS else e[c] for c in COLUMNS])
        return
    conn.execute(
        _INSERT,
        [{c: (_json_text(e[c]) if c in _JSON_COLUMNS else e[c]) for c in COLUMNS} for e in events],
    )


def event_from_row(row: Sequence[Any]) -> dict[str, Any]:
    """A row selected with SELECT_COLUMNS as the event it stores."""
    event = dict(zip(COLUMNS, row, strict=True))
    for c in _JSON_COLUMNS:
        if event[c] is not None:
            event[c] = orjson.loads(event[c])
    return event


def stream_rows(
    engine: Engine, *, after: int = 0, through: int | None = None, batch: int = 20_000
) -> Iterator[tuple[Any, ...]]:
    """Events in seq order as raw tuples (COLUMNS order, JSON as text), by keyset pages:
    constant memory, and no long transaction on the log."""
    last = after
    upper = 2**62 if through is None else through
    while True:
        with engine.connect() as conn:
            rows = conn.execute(_PAGE, {"after": last, "through": upper, "batch": batch}).fetchall()
        if not rows:
            return
        yield from rows
        if len(rows) < batch:
            return
        last = rows[-1][0]


def stream_hashes(conn: Connection, *, after: int, through: int) -> Iterator[tuple[int, str]]:
    result = conn.execute(
        sa.text(
            "SELECT seq, hash FROM audit_events WHERE seq > :after AND seq <= :through ORDER BY seq"
        ),
        {"after": after, "through": through},
    )
    for seq, h in result:
        yield int(seq), h
