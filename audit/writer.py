"""Group commit: every event of a process goes through one writer thread.

`submit()` renders an event (in the caller's thread) and queues it; the thread takes
everything queued, links it to the chain under the head lock, stores it in one
transaction and only then resolves the futures — so a caller that waits for its future
knows its event is durable. While one batch commits the next one gathers, and while data
requests of this process are still on their way to their event the thread waits a few
milliseconds more for them: that is what makes many concurrent requests cost a few
transactions. On PostgreSQL a batch that has to wait for the head lock (another process's
batch holds it) takes, once granted, the events that arrived while it waited: several
worker processes then take turns with full batches instead of each leaving half of its
events for its next turn. A failed transaction fails that batch's futures (the callers
answer 503) and the next batch simply tries again; an event the database refuses as data
(a value too long for its column) is split out of its batch and fails alone.

A caller that stops waiting (its answer cannot wait for a slow store) must not leave an
event behind that says what it did not send: a queued event may carry a `Claim`, which the
writer takes once it holds the head lock; a caller who gave up first has abandoned it, and
the writer stores the claim's other version of the event (the status really sent) instead.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import operator
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from typing import Any, NamedTuple

import orjson
import psycopg
import sqlalchemy as sa
from psycopg import pq
from sqlalchemy.engine import Engine

from audit import _native, pglink
from audit.canonical import EVENT_KEYS, canonical_json, now_ts, plain
from audit.checkpoints import write_checkpoint
from audit.signing import Signer
from audit.store import (
    COPY_EVENTS,
    DATA_COLUMNS,
    FOLLOW_HEAD,
    INSERT_EVENTS,
    LOCK_HEAD,
    Head,
    copy_data,
    copy_line,
    insert_rows,
    insert_values,
    lock_head,
    move_head,
)

log = logging.getLogger("opengate.audit")

_STOP = object()

# canonical() of an event is one JSON object with sorted keys; "seq", "status" and "ts"
# sort last, so everything but seq and ts (assigned under the head lock) is rendered
# before the lock is taken, and the lock holder only splices in two numbers and a time.
_SORTED_KEYS = sorted(EVENT_KEYS)
assert _SORTED_KEYS[-3:] == ["seq", "status", "ts"], _SORTED_KEYS
# The head's keys are ASCII and built in sorted order: orjson keeps insertion order, which
# is then the canonical one without asking it to sort.
_HEAD_KEYS = tuple(_SORTED_KEYS[:-3])
assert all(k.isascii() for k in _HEAD_KEYS)
_sha256 = hashlib.sha256


_head_values = operator.itemgetter(*_HEAD_KEYS)
_data_values = operator.itemgetter(*DATA_COLUMNS)
_FIELDS_AT, _DETAIL_AT = DATA_COLUMNS.index("fields"), DATA_COLUMNS.index("detail")


class Prepared(NamedTuple):  # a tuple: made once per event, cheaper than a dataclass
    """An event rendered for the chain: everything but its seq, time and hashes."""

    head: bytes  # canonical JSON up to the "seq" member, without the closing brace
    status: bytes  # ',"status":…,"ts":"' — what follows seq up to the time
    values: list[Any]  # DATA_COLUMNS, the JSON columns as their canonical text
    line: bytes | None  # `values` as a PostgreSQL COPY text line (tab-terminated)


def prepare(event: Mapping[str, Any], *, postgres: bool = True) -> Prepared:
    head = dict(zip(_HEAD_KEYS, _head_values(event), strict=True))
    values = list(_data_values(event))
    # `fields` and `detail` are stored as their canonical JSON: the text the hash covers.
    for key, at in (("fields", _FIELDS_AT), ("detail", _DETAIL_AT)):
        if values[at] is not None:
            text = canonical_json(plain(values[at]))
            head[key] = orjson.Fragment(text)
            values[at] = text.decode()
    return Prepared(
        orjson.dumps(head)[:-1],
        b',"status":' + orjson.dumps(event["status"]) + b',"ts":"',
        values,
        copy_line(values) if postgres else None,
    )


def append(engine: Engine, events: Sequence[Mapping[str, Any]]) -> list[int]:
    """Store `events` (without seq/ts/hashes) at the end of the chain; their seqs."""
    postgres = engine.dialect.name == "postgresql"
    return append_prepared(engine, [prepare(e, postgres=postgres) for e in events])


Chained = tuple[Prepared, int, str, str]  # event, seq, prev_hash, hash


def _chain_ts(head: Head) -> str:
    ts = now_ts()
    return head.ts if ts < head.ts else ts  # another host's clock runs ahead: keep order


def link(head: Head, events: Sequence[Prepared]) -> tuple[Head, list[Chained]]:
    """Number and hash `events` after `head` (whose lock the caller holds): the new head."""
    ts = _chain_ts(head)
    tail = ts.encode() + b'"}'
    seq, prev = head.seq, head.hash
    chained: list[Chained] = []
    for event in events:
        seq += 1
        # canonical(event) == head ‖ ,"seq":N ‖ ,"status":…,"ts":" ‖ ts"}
        digest = _sha256(
            b'%s%s,"seq":%d%s%s' % (prev.encode(), event.head, seq, event.status, tail)
        ).hexdigest()
        chained.append((event, seq, prev, digest))
        prev = digest
    return Head(seq, prev, ts), chained


def link_copy(head: Head, events: list[Prepared], *, native: bool = True) -> tuple[Head, bytes]:
    """`link`, with the batch as PostgreSQL COPY input: what the writer does while it holds
    the head lock, so in C where built (audit/_chain.c: a twentieth of the time, and
    the same bytes)."""
    chain = _native.chain
    if native and chain is not None:
        ts = _chain_ts(head)
        data, last = chain.link(events, head.hash.encode(), head.seq, ts.encode())
        return Head(head.seq + len(events), last.decode(), ts), data
    new_head, chained = link(head, events)
    return new_head, copy_data(new_head.ts, chained)


def append_prepared(
    engine: Engine, events: Sequence[Prepared], granted: Callable[[], object] | None = None
) -> list[int]:
    with engine.begin() as conn:
        head = lock_head(conn)
        if granted is not None:
            granted()
        new_head, chained = link(head, events)
        insert_rows(conn, new_head.ts, chained)
        move_head(conn, new_head)
    return list(range(head.seq + 1, new_head.seq + 1))


class SqliteLink:
    """The writer thread's own SQLite connection (the engine's settings: WAL, busy
    timeout; taken out of the pool for good), driven through the sqlite3 module: a batch
    is BEGIN IMMEDIATE, the head, one executemany, the head moved, COMMIT — without a pool
    check-out, an ORM transaction and statement compilation each time, which were most
    of the writer's work per batch."""

    MOVE_HEAD = "UPDATE audit_head SET seq = ?, hash = ?, ts = ? WHERE id = 1"

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._db: sqlite3.Connection | None = None

    def _connection(self) -> sqlite3.Connection:
        if self._db is None:
            pooled = self.engine.raw_connection()
            db = pooled.driver_connection
            pooled.detach()  # ours until close(); the pool opens another when it needs one
            assert isinstance(db, sqlite3.Connection)
            self._db = db
        return self._db

    def append(
        self, events: list[Prepared], granted: Callable[[], object] | None = None
    ) -> list[int]:
        db = self._connection()
        try:
            db.execute("BEGIN IMMEDIATE")  # the write lock (waits up to the busy timeout)
            row = db.execute("SELECT seq, hash, ts FROM audit_head WHERE id = 1").fetchone()
            head = Head(int(row[0]), row[1], row[2])
            if granted is not None:
                granted()
            new_head, chained = link(head, events)
            db.executemany(INSERT_EVENTS, insert_values(new_head.ts, chained))
            db.execute(self.MOVE_HEAD, (new_head.seq, new_head.hash, new_head.ts))
            db.execute("COMMIT")
        except BaseException:
            try:
                if db.in_transaction:
                    db.execute("ROLLBACK")
            except sqlite3.Error:
                self.close()  # a connection that cannot roll back is not used again
            raise
        return list(range(head.seq + 1, new_head.seq + 1))

    def close(self) -> None:
        db, self._db = self._db, None
        if db is not None:
            db.close()


class PostgresLink:
    """The writer thread's own PostgreSQL connection (audit/pglink.py: libpq directly).

    A batch is one query — `BEGIN; SELECT … FOR UPDATE; COPY …; UPDATE audit_head …;
    COMMIT` — answered in two round trips, the data handed over in one piece.
    No pool check-out, ping or ORM layer: most batches of a busy gateway hold a few
    events, so the fixed cost of a batch is most of what the audit log costs a request."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._pg: pq.PGconn | None = None

    # Planned once per connection, run by EXECUTE inside the batch's one simple query.
    PREPARE = f"PREPARE audit_lock_head AS {LOCK_HEAD}; PREPARE audit_follow_head AS {FOLLOW_HEAD}"
    # One query for the whole batch: PostgreSQL runs it up to the COPY, sends the locked
    # head and waits for the rows; after them it moves the head to the last row written and
    # commits. Two round trips, so the head lock is held for the least time: every wait
    # under it is also a wait for the GIL, behind this process's request handlers.
    BATCH = (
        f"BEGIN; EXECUTE audit_lock_head; {COPY_EVENTS}; EXECUTE audit_follow_head; COMMIT"
    ).encode()

    def _connection(self) -> pq.PGconn:
        if self._pg is None or self._pg.status != pq.ConnStatus.OK:
            self.close()
            self._pg = pglink.connect(self.engine)
            pglink.query(self._pg, self.PREPARE.encode(), pglink.COMMAND_OK)
        return self._pg

    def append(
        self, events: list[Prepared], granted: Callable[[], object] | None = None
    ) -> list[int]:
        """Append `events`. Once the head lock is granted, `granted` may add more to the
        list: a batch that had to wait for another process's batch takes the events that
        arrived meanwhile, instead of leaving them to wait for the next turn."""
        pg = self._connection()
        copying = False
        try:
            pg.send_query(self.BATCH)
            pglink.flush(pg)
            started = pglink.results_to_copy(pg)  # BEGIN, the locked head, COPY IN
            copying = started[-1].status == pglink.COPY_IN
            if not copying or started[-2].status != pglink.TUPLES_OK:
                raise psycopg.OperationalError("audit batch: unexpected answer to BEGIN")
            if granted is not None:
                granted()
            head = _head_of(started[-2])
            new_head, data = link_copy(head, events)
            copying = False
            pglink.put_copy(pg, data)  # then the head update and COMMIT
        except BaseException:
            if copying:  # end the COPY with an error: the transaction is rolled back
                pg.put_copy_end(b"audit batch abandoned")
            if not pglink.abandon(pg):
                self.close()
            raise
        return list(range(head.seq + 1, new_head.seq + 1))

    def close(self) -> None:
        pg, self._pg = self._pg, None
        if pg is not None:
            pg.finish()


def _head_of(result: pq.PGresult) -> Head:
    seq, head_hash, ts = (result.get_value(0, i) or b"" for i in range(3))
    return Head(int(seq), head_hash.decode(), ts.decode())


Waiter = Future[int] | asyncio.Future[int]


class Claim:
    """Settles, between the writer and a caller that may stop waiting, which version of a
    queued event is stored: the writer claims it once it holds the head lock (the event is
    stored as rendered); a caller who abandons it first gets `instead` stored."""

    __slots__ = ("_lock", "_state", "instead")

    def __init__(self, instead: Mapping[str, Any]) -> None:
        self.instead = instead
        self._state = 0  # 0 pending, 1 claimed by the writer, 2 abandoned by the caller
        self._lock = threading.Lock()

    def claim(self) -> bool:
        """The writer's turn: True to store the event as rendered, False for `instead`."""
        with self._lock:
            if self._state == 0:
                self._state = 1
            return self._state == 1

    def abandon(self) -> bool:
        """The caller's: True if the writer will store `instead`, False if it already holds
        the event under the head lock (its commit is under way)."""
        with self._lock:
            if self._state == 0:
                self._state = 2
            return self._state == 2


Item = tuple[Prepared, Waiter, Claim | None]


def _settle(outcomes: Sequence[tuple[Waiter, int | Exception]]) -> None:
    """Resolve waiters with a seq or an error: thread futures at once, asyncio futures in
    their loop's thread, one `call_soon_threadsafe` per loop."""
    loops: dict[asyncio.AbstractEventLoop, list[tuple[Waiter, int | Exception]]] = {}
    for waiter, outcome in outcomes:
        if isinstance(waiter, Future):
            _resolve(waiter, outcome)
        else:
            loops.setdefault(waiter.get_loop(), []).append((waiter, outcome))
    for loop, settled in loops.items():
        try:
            loop.call_soon_threadsafe(_resolve_all, settled)
        except RuntimeError:  # that loop is closed: nobody waits any more
            log.debug("audit: %d waiters of a closed event loop", len(settled))


def _resolve(waiter: Waiter, outcome: int | Exception) -> None:
    if waiter.done():  # a waiter that gave up (timed out, cancelled)
        return
    if isinstance(outcome, Exception):
        waiter.set_exception(outcome)
    else:
        waiter.set_result(outcome)


def _resolve_all(settled: list[tuple[Waiter, int | Exception]]) -> None:
    for waiter, outcome in settled:
        _resolve(waiter, outcome)


class AuditWriter:
    def __init__(
        self,
        engine: Engine,
        signer: Signer | None,
        *,
        checkpoint_seconds: float = 60.0,
        max_batch: int = 5000,
        gather_seconds: float = 0.015,
        observe: Callable[[int, float, int], None] | None = None,
    ) -> None:
        self.engine = engine
        # Told after every stored batch: its size, seconds to commit, events still queued
        # (the gateway's /metrics; the writer knows nothing of how they are shown).
        self.observe = observe
        self.gather_seconds = gather_seconds
        # Set when no request is left in flight: wakes a gathering batch.
        self._quiet = threading.Event()
        self._in_flight = 0
        self.signer = signer
        self.checkpoint_seconds = checkpoint_seconds
        self.max_batch = max_batch
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._unsigned = False  # events stored since this process last checked
        self._last_check = time.monotonic()
        self._postgres = engine.dialect.name == "postgresql"
        self._link: PostgresLink | SqliteLink | None = None
        if self._postgres:
            self._link = PostgresLink(engine)
        elif engine.dialect.name == "sqlite" and engine.url.database not in (None, "", ":memory:"):
            self._link = SqliteLink(engine)  # a file: a connection of its own sees it too
        self._stopping = False  # told to stop: finish the batch at hand, then end

    @property
    def in_flight(self) -> int:
        """Requests of this process that will submit an event soon (the audit middleware
        counts data requests between their start and their event): a batch waits up to
        `gather_seconds` for them, so one commit serves them all."""
        return self._in_flight

    @in_flight.setter
    def in_flight(self, value: int) -> None:
        self._in_flight = value
        if value <= 0:
            self._quiet.set()

    def start(self) -> None:
        with self._lock:
            if self._thread is None:
                self._stopping = False
                self._thread = threading.Thread(target=self._run, name="audit-writer", daemon=True)
                self._thread.start()

    def submit(self, event: Mapping[str, Any]) -> Future[int]:
        """Queue `event`; the future resolves to its seq once it is committed. The event is
        rendered here, in the caller's thread: an event that cannot be encoded fails its
        own future only."""
        future: Future[int] = Future()
        self._enqueue(event, future)
        return future

    def submit_async(
        self, event: Mapping[str, Any], claim: Claim | None = None
    ) -> asyncio.Future[int]:
        """`submit` for a coroutine: an asyncio future of the running loop. The writer
        settles all of a batch's futures of one loop with one wake-up of that loop."""
        waiter: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._enqueue(event, waiter, claim)
        return waiter

    def _enqueue(
        self, event: Mapping[str, Any], waiter: Waiter, claim: Claim | None = None
    ) -> None:
        if self._thread is None:
            self.start()
        try:
            prepared = prepare(event, postgres=self._postgres)
        except Exception as exc:
            waiter.set_exception(exc)
            return
        self._queue.put((prepared, waiter, claim))

    def record(self, event: Mapping[str, Any], timeout: float = 30.0) -> int:
        return self.submit(event).result(timeout)

    def close(self) -> None:
        """Flush what is queued, sign a shutdown checkpoint, stop the thread."""
        with self._lock:
            thread, self._thread = self._thread, None
        if thread is not None:
            self._queue.put(_STOP)
            self._quiet.set()  # a gathering batch goes now
            thread.join(timeout=30)
        if self.signer is not None and self._unsigned:
            try:
                self._checkpoint("shutdown", min_age=0.0)
            except Exception:
                log.exception("audit: shutdown checkpoint failed")
        if self._link is not None:
            self._link.close()

    def _run(self) -> None:
        while not self._stopping:
            timeout = max(0.05, self.checkpoint_seconds - (time.monotonic() - self._last_check))
            try:
                first = self._queue.get(timeout=timeout)
            except queue.Empty:
                self._maybe_checkpoint()
                continue
            if first is _STOP:
                return
            batch = [first]
            self._drain(batch)
            if self.in_flight > 0 and not self._stopping:
                self._gather(batch)
            self._commit(batch, gathering=not self._stopping)
            self._maybe_checkpoint()

    def _drain(self, batch: list[Any]) -> None:
        """Add what is queued, without waiting, up to `max_batch`."""
        while len(batch) < self.max_batch:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return
            if item is _STOP:
                self._stopping = True
                return
            batch.append(item)

    def _gather(self, batch: list[Any]) -> None:
        """Wait briefly for the events of requests in flight: until none is left in flight
        or `gather_seconds` have passed, then take what queued meanwhile. One wake-up a
        batch — waiting on the queue woke this thread for every event, and each wake-up
        took the GIL from the request handlers and gave it back."""
        self._quiet.clear()
        if self._in_flight > 0:
            self._quiet.wait(self.gather_seconds)
        self._drain(batch)

    def _append(
        self, events: list[Prepared], granted: Callable[[], object] | None = None
    ) -> list[int]:
        if self._link is not None:
            return self._link.append(events, granted)
        return append_prepared(self.engine, events, granted)

    def _commit(self, batch: list[Item], *, gathering: bool = False) -> None:
        events = [event for event, _, _ in batch]
        gather = gathering and self._postgres

        def granted() -> None:  # the head lock is ours
            if gather and not self._stopping:  # take what arrived while it was not
                known = len(batch)
                self._drain(batch)
                events.extend(event for event, _, _ in batch[known:])
            for i, (_, _, claim) in enumerate(batch):
                if claim is not None and not claim.claim():  # its caller gave up waiting
                    events[i] = prepare(claim.instead, postgres=self._postgres)

        began = time.perf_counter()
        try:
            seqs = self._append(events, granted)
        except (sa.exc.DataError, psycopg.DataError, sqlite3.DataError) as exc:
            # One event the database refuses (a value too long for its column, say) must
            # not take the batch down with it: halve until it fails alone.
            if len(batch) > 1:
                half = len(batch) // 2
                self._commit(batch[:half])
                self._commit(batch[half:])
                return
            self._fail(batch, exc)
            return
        except Exception as exc:
            self._fail(batch, exc)
            return
        self._unsigned = True
        _settle([(waiter, seq) for (_, waiter, _), seq in zip(batch, seqs, strict=True)])
        if self.observe is not None:
            self.observe(len(events), time.perf_counter() - began, self._queue.qsize())

    @staticmethod
    def _fail(batch: list[Item], exc: Exception) -> None:
        log.error(
            "audit: could not store %d events: %s",
            len(batch),
            type(exc).__name__,
            extra={"repeat_key": "audit:unavailable"},  # the middleware's 503 says the same
        )
        _settle([(waiter, exc) for _, waiter, _ in batch])

    def _maybe_checkpoint(self) -> None:
        if self.signer is None or not self._unsigned:
            return
        if time.monotonic() - self._last_check < self.checkpoint_seconds:
            return
        try:
            self._checkpoint("periodic", min_age=self.checkpoint_seconds * 0.9)
        except Exception:
            log.exception("audit: periodic checkpoint failed")

    def _checkpoint(self, kind: str, *, min_age: float) -> None:
        assert self.signer is not None
        self._last_check = time.monotonic()
        with self.engine.begin() as conn:
            signed = write_checkpoint(conn, self.signer, kind=kind, min_age=min_age)
        if signed is not None:
            self._unsigned = False
