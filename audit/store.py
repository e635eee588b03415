"""SQL for the chain, on a SQLAlchemy connection inside the caller's transaction.

Appenders serialize on the one `audit_head` row: `SELECT … FOR UPDATE` on PostgreSQL,
SQLite's database write lock (taken first, by a no-op UPDATE, so a reader never has to
upgrade). Whoever holds it reads the head, links its batch to it and moves it on: one
chain with no gaps and no forks however many processes or hosts append.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from audit import _native, pglink
from audit.canonical import EVENT_KEYS

COLUMNS = (*EVENT_KEYS, "prev_hash", "hash")
_JSON_COLUMNS = ("fields", "detail")
# What the writer renders before it holds the head lock, then what it assigns under it.
DATA_COLUMNS = tuple(c for c in EVENT_KEYS if c not in ("seq", "ts"))
_STORE_COLUMNS = (*DATA_COLUMNS, "seq", "ts", "prev_hash", "hash")
_STORE_LIST = ", ".join(_STORE_COLUMNS)  # constants only: no input reaches these statements
_INSERT = (
    f"INSERT INTO audit_events ({_STORE_LIST}) "  # noqa: S608
    f"VALUES ({', '.join('?' * len(_STORE_COLUMNS))})"
)
INSERT_EVENTS = _INSERT
COPY_EVENTS = f"COPY audit_events ({_STORE_LIST}) FROM STDIN"
# JSON columns as text: what was written is what the hash covers.
SELECT_COLUMNS = ", ".join(f"CAST({c} AS TEXT)" if c in _JSON_COLUMNS else c for c in COLUMNS)
# LIMIT as a literal: PostgreSQL's generic plan for a bound LIMIT may sort the table.
_PAGE = (
    f"SELECT {SELECT_COLUMNS} FROM audit_events WHERE seq > :after AND seq <= :through "  # noqa: S608
    "ORDER BY seq LIMIT {batch:d}"
)


@dataclass(frozen=True, slots=True)
class Head:
    seq: int
    hash: str
    ts: str


LOCK_HEAD = "SELECT seq, hash, ts FROM audit_head WHERE id = 1 FOR UPDATE"
# The head follows the last row the batch wrote (its own: the head row is locked). Should
# it ever not move, the next batch reuses a seq and fails on the primary key: no fork.
FOLLOW_HEAD = (
    "UPDATE audit_head SET seq = e.seq, hash = e.hash, ts = e.ts FROM "
    "(SELECT seq, hash, ts FROM audit_events ORDER BY seq DESC LIMIT 1) AS e "
    "WHERE audit_head.id = 1"
)


def lock_head(conn: Connection) -> Head:
    if conn.dialect.name == "sqlite":
        conn.exec_driver_sql("UPDATE audit_head SET seq = seq WHERE id = 1")
        row = conn.exec_driver_sql("SELECT seq, hash, ts FROM audit_head WHERE id = 1").one()
    else:
        row = conn.exec_driver_sql(LOCK_HEAD).one()
    return Head(int(row[0]), row[1], row[2])


def move_head(conn: Connection, head: Head) -> None:
    conn.execute(
        sa.text("UPDATE audit_head SET seq = :seq, hash = :hash, ts = :ts WHERE id = 1"),
        {"seq": head.seq, "hash": head.hash, "ts": head.ts},
    )


def _copy_value(value: Any) -> str:
    if value is None:
        return "\\N"
    text = value if type(value) is str else str(value)
    return text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


def _copy_line(values: Sequence[Any]) -> bytes:
    """DATA_COLUMNS values in PostgreSQL's COPY text format, each followed by a tab."""
    parts = ["\\N" if v is None else v if type(v) is str else str(v) for v in values]
    line = "\t".join(parts) + "\t"
    if (
        line.count("\t") == len(parts)
        # the only backslashes are the null markers' (a string "\N" is not one of them)
        and line.count("\\") == sum(v is None for v in values)
        and "\n" not in line
        and "\r" not in line
    ):
        return line.encode()  # nothing to escape: the common case, checked once for the row
    return "".join([_copy_value(v) + "\t" for v in values]).encode()


# The same line built in C where built (audit/_native.py).
copy_line = _copy_line if _native.chain is None else _native.chain.copy_line


def copy_data(ts: str, rows: Sequence[tuple[Any, int, str, str]]) -> bytes:
    """Chained events (prepared event, seq, prev_hash, hash) as COPY_EVENTS input."""
    stamp = b"\t%s\t" % ts.encode()
    return b"".join(
        [b"%s%d%s%s\t%s\n" % (e.line, seq, stamp, p.encode(), h.encode()) for e, seq, p, h in rows]
    )


def insert_rows(conn: Connection, ts: str, rows: Sequence[tuple[Any, int, str, str]]) -> None:
    """Chained events (prepared event, seq, prev_hash, hash) in seq order, one statement:
    COPY on PostgreSQL (the prepared COPY line), a multi-row INSERT on SQLite."""
    if conn.dialect.name == "postgresql":
        raw = conn.connection.driver_connection
        with raw.cursor() as cursor, cursor.copy(COPY_EVENTS) as copy:  # type: ignore[union-attr]
            copy.write(copy_data(ts, rows))
        return
    conn.exec_driver_sql(_INSERT, insert_values(ts, rows))


def insert_values(ts: str, rows: Sequence[tuple[Any, int, str, str]]) -> list[tuple[Any, ...]]:
    """Chained events as the parameters of INSERT_EVENTS (SQLite), one tuple a row."""
    return [(*e.values, seq, ts, prev, h) for e, seq, prev, h in rows]


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
    page = sa.text(_PAGE.format(batch=batch))
    while True:
        with engine.connect() as conn:
            rows = conn.execute(page, {"after": last, "through": upper}).fetchall()
        if not rows:
            return
        yield from rows
        if len(rows) < batch:
            return
        last = rows[-1][0]


_INTEGER_AT = frozenset(
    COLUMNS.index(c) for c in ("seq", "row_count", "grant_id", "grant_version", "status")
)
_COPY_ESCAPE = re.compile(rb"\\(.)")
_COPY_ESCAPES = {
    b"b": b"\b",
    b"f": b"\f",
    b"n": b"\n",
    b"r": b"\r",
    b"t": b"\t",
    b"v": b"\v",
    b"\\": b"\\",
}


def _unescape(match: re.Match[bytes]) -> bytes:
    return _COPY_ESCAPES[match.group(1)]  # KeyError: not something COPY TO writes


def row_from_line(line: bytes) -> tuple[Any, ...]:
    """A COPY text line of EventLines as the row stream_rows would give (COLUMNS order,
    JSON columns as text). ValueError when the line is not one."""
    raw = line[:-1].split(b"\t") if line.endswith(b"\n") else []
    if len(raw) != len(COLUMNS):
        raise ValueError("not an audit_events line")
    row: list[Any] = []
    for at, value in enumerate(raw):
        if value == b"\\N":
            row.append(None)
            continue
        try:
            text = _COPY_ESCAPE.sub(_unescape, value).decode()
        except (KeyError, UnicodeDecodeError):
            raise ValueError("not an audit_events line") from None
        row.append(int(text) if at in _INTEGER_AT else text)
    return tuple(row)


# The verifier's fast path on PostgreSQL (audit/verify.py): events as COPY text lines.
_COPY_OUT = "COPY (SELECT {columns} FROM audit_events WHERE seq > {after:d}{order}) TO STDOUT"
_TYPES = (
    "SELECT a.attname, format_type(a.atttypid, NULL) FROM pg_attribute a "
    "JOIN pg_class c ON c.oid = a.attrelid "
    "WHERE c.oid = to_regclass('audit_events') AND c.relkind IN ('r', 'p') "
    "AND a.attnum > 0 AND NOT a.attisdropped"
)
# Columns the fast path copies into the canonical JSON as PostgreSQL prints them: sound
# only while these types guarantee that text is a JSON value of the right kind.
_EXPECTED_TYPES = {
    "seq": ("bigint",),
    "fields": ("json",),
    "detail": ("json",),
    **{
        c: ("integer", "bigint", "smallint")
        for c in ("row_count", "grant_id", "grant_version", "status")
    },
}


class EventLines:
    """Events after seq `after` as PostgreSQL COPY text lines (COLUMNS order, tab
    separated, `\\N` for null, ending in a newline): the cheapest way out of the
    database, in constant memory.

    It reads in physical order first — for an append-only table that is seq order, and a
    sequential scan is faster than the primary key's; `ordered_from(seq)` goes on in the
    key's order, for a reader that finds the two differ. `canonical_types` says whether
    the column types still guarantee what the fast path assumes (a JSON column holds
    valid JSON, an integer column a canonical integer)."""

    def __init__(self, engine: Engine, *, after: int = 0) -> None:
        self.engine = engine
        self.after = after
        self.ordered = False
        with engine.connect() as conn:
            types = dict(conn.exec_driver_sql(_TYPES).fetchall())
        self.canonical_types = all(
            types.get(c) in allowed for c, allowed in _EXPECTED_TYPES.items()
        )

    def __iter__(self) -> Iterator[bytes]:
        return self._lines(self.after, order="")

    def ordered_from(self, after: int) -> Iterator[bytes]:
        self.ordered = True
        return self._lines(after, order=" ORDER BY seq")

    def _lines(self, after: int, *, order: str) -> Iterator[bytes]:
        command = _COPY_OUT.format(columns=", ".join(COLUMNS), after=after, order=order)
        pg = pglink.connect(self.engine)
        try:
            # PostgreSQL may start a sequential scan where another scan of the table is
            # (synchronized scans, for tables larger than a quarter of shared_buffers):
            # physical order would then begin mid-table and force the slower ordered read.
            pglink.query(pg, b"SET synchronize_seqscans = off", pglink.COMMAND_OK)
            yield from pglink.copy_out(pg, command.encode())
        finally:
            pg.finish()


def stream_hashes(conn: Connection, *, after: int, through: int) -> Iterator[tuple[int, str]]:
    result = conn.execute(
        sa.text(
            "SELECT seq, hash FROM audit_events WHERE seq > :after AND seq <= :through ORDER BY seq"
        ),
        {"after": after, "through": through},
    )
    for seq, h in result:
        yield int(seq), h
