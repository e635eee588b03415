"""The one SQLAlchemy engine per process, configured for SQLite or PostgreSQL."""

from __future__ import annotations

from contextvars import ContextVar
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Engine, make_url

# The authorized-operation rules on grants (agreement scope and term, product binding) are
# mapper events: registered in every process that opens the database, whatever writes.
import operation.gate  # noqa: F401

# Seconds a checkout waits for a pooled connection: a full pool is answered with 503 at
# once (gateway.problems), not after SQLAlchemy's default 30 s.
POOL_TIMEOUT = 2.0
# Set for a request that changes state (POST, PUT, PATCH, DELETE): [transactions of it
# open now]. On SQLite such a transaction takes the write lock as it begins, where the
# busy timeout waits for it, instead of failing when its first write comes after a read
# (a WAL reader whose snapshot is older than the last commit cannot upgrade: "database
# is locked", at once, busy timeout or not). Only the outermost one: a transaction opened
# while another of the same request is open (a catalog read inside a session) begins
# deferred, so that the request never waits for its own lock.
WRITES: ContextVar[list[int] | None] = ContextVar("opengate_request_writes", default=None)
# How long a SQLite statement waits for a lock another connection holds before it fails
# ("database is locked", answered 503 with Retry-After).
SQLITE_BUSY_SECONDS = 10.0


def create_engine(
    url: str,
    *,
    pool_size: int = 10,
    pool_timeout: float = POOL_TIMEOUT,
    connect_timeout: int | None = None,
    idle_transaction_seconds: int | None = None,
    busy_timeout: float = SQLITE_BUSY_SECONDS,
) -> Engine:
    """`hide_parameters`: bound values (a filter on an identity number, say) must never
    reach a log through a database error message.

    On PostgreSQL `connect_timeout` bounds the wait for an unreachable server, and
    `idle_transaction_seconds` has the server end a session left idle inside a
    transaction (defence in depth: no request path holds one across a slow client). On
    SQLite `busy_timeout` (seconds) bounds the wait for another connection's lock."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(url, parsed.database, pool_timeout, busy_timeout)
    connect_args: dict[str, Any] = {}
    if connect_timeout:
        connect_args["connect_timeout"] = connect_timeout
    if idle_transaction_seconds:
        connect_args["options"] = (
            f"-c idle_in_transaction_session_timeout={int(idle_transaction_seconds) * 1000}"
        )
    return sa.create_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_timeout=pool_timeout,
        pool_pre_ping=True,
        pool_recycle=1800,
        hide_parameters=True,
        connect_args=connect_args,
    )


def _sqlite_engine(
    url: str, database: str | None, pool_timeout: float, busy_timeout: float
) -> Engine:
    if database and database != ":memory:":
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    engine = sa.create_engine(
        url,
        pool_size=20,
        max_overflow=20,
        pool_timeout=pool_timeout,
        connect_args={"check_same_thread": False},
        hide_parameters=True,
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the driver, open transactions, so DDL is transactional too
        # (an import is all or nothing); WAL lets readers run beside a writer.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout * 1000)}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        open_now = WRITES.get()
        if open_now is None:
            conn.exec_driver_sql("BEGIN")
            return
        conn.exec_driver_sql("BEGIN IMMEDIATE" if open_now[0] == 0 else "BEGIN")
        open_now[0] += 1
        conn.info["opengate_writes"] = open_now

    @event.listens_for(engine, "commit")
    @event.listens_for(engine, "rollback")
    def _on_end(conn: Any) -> None:
        open_now = conn.info.pop("opengate_writes", None)
        if open_now is not None:
            open_now[0] -= 1

    return engine
