"""libpq, driven directly, for the two bulk paths of the audit log on PostgreSQL: the
writer's batches and the verifier's stream of events.

Both run in a thread of a busy gateway. A psycopg connection waits in small steps, and
every step queues for the GIL behind the request handlers; here the thread waits in
`poll()` (without the GIL) only when the socket is not ready, and libpq gets each
payload in one piece. Errors are raised as the psycopg exception their SQLSTATE names
(so `psycopg.DataError` means the same thing on both paths).
"""

from __future__ import annotations

import select
from collections.abc import Iterator

import psycopg
from psycopg import errors, pq
from psycopg.conninfo import make_conninfo
from sqlalchemy.engine import Engine

COMMAND_OK, TUPLES_OK = pq.ExecStatus.COMMAND_OK, pq.ExecStatus.TUPLES_OK
COPY_IN, COPY_OUT = pq.ExecStatus.COPY_IN, pq.ExecStatus.COPY_OUT


def connect(engine: Engine) -> pq.PGconn:
    """A non-blocking libpq connection to the engine's database (its URL and arguments)."""
    cargs, cparams = engine.dialect.create_connect_args(engine.url)
    params = {k: v for k, v in cparams.items() if isinstance(v, str | int)}
    pg = pq.PGconn.connect(make_conninfo(*cargs, **params, client_encoding="utf8").encode())
    if pg.status != pq.ConnStatus.OK:
        message = pg.get_error_message()
        pg.finish()
        raise psycopg.OperationalError(message)
    pg.nonblocking = 1
    return pg


def wait(pg: pq.PGconn, events: int = select.POLLIN) -> None:
    """Block, without the GIL, until the socket is ready; read what arrived."""
    poller = select.poll()
    poller.register(pg.socket, events)
    poller.poll()
    if events & select.POLLIN:
        pg.consume_input()


def flush(pg: pq.PGconn) -> None:
    while pg.flush():
        wait(pg, select.POLLIN | select.POLLOUT)


def check(pg: pq.PGconn, result: pq.PGresult | None, expect: pq.ExecStatus) -> pq.PGresult:
    """`result`, or the psycopg exception its SQLSTATE names."""
    if result is not None and result.status == expect:
        return result
    if result is None:
        raise psycopg.OperationalError(pg.get_error_message())
    sqlstate = result.error_field(pq.DiagnosticField.SQLSTATE)
    message = result.get_error_message().strip()
    error = errors.lookup(sqlstate.decode()) if sqlstate else psycopg.OperationalError
    raise error(message or f"unexpected {result.status.name}")


def results(pg: pq.PGconn, expect: pq.ExecStatus | None) -> pq.PGresult | None:
    """Read the results of what was sent; the last must be `expect` and the first failure
    raises. Stops at a COPY, which waits for its data."""
    last = None
    while True:
        while pg.is_busy():
            wait(pg)
        result = pg.get_result()
        if result is None:
            break
        last = result
        if result.status in (COPY_IN, COPY_OUT):
            break
        if expect is not None and result.status not in (expect, COMMAND_OK, TUPLES_OK):
            check(pg, result, expect)
    if expect is not None:
        check(pg, last, expect)
    return last


def results_to_copy(pg: pq.PGconn) -> list[pq.PGresult]:
    """Every result of what was sent, in order, up to and including a COPY that waits for
    its data (or to the end); the first failure raises."""
    out = []
    while True:
        while pg.is_busy():
            wait(pg)
        result = pg.get_result()
        if result is None:
            return out
        if result.status not in (COMMAND_OK, TUPLES_OK, COPY_IN, COPY_OUT):
            check(pg, result, COMMAND_OK)  # raises the error the result carries
        out.append(result)
        if result.status in (COPY_IN, COPY_OUT):
            return out


def query(pg: pq.PGconn, command: bytes, expect: pq.ExecStatus) -> pq.PGresult:
    """Send `command` (one or more statements, no parameters) and read its results."""
    pg.send_query(command)  # raises when it cannot
    flush(pg)
    result = results(pg, expect)
    assert result is not None  # results() checked it
    return result


def put_copy(pg: pq.PGconn, data: bytes) -> None:
    """The data of a COPY … FROM STDIN under way, then its end and its result."""
    while not pg.put_copy_data(data):
        wait(pg, select.POLLOUT)
    while not pg.put_copy_end():
        wait(pg, select.POLLOUT)
    flush(pg)
    results(pg, COMMAND_OK)


def copy_out(pg: pq.PGconn, command: bytes) -> Iterator[bytes]:
    """The rows of a COPY … TO STDOUT, one line (with its newline) at a time."""
    query(pg, command, COPY_OUT)
    get = pg.get_copy_data
    while True:
        size, data = get(1)
        if size > 0:
            yield data.tobytes()  # type: ignore[union-attr]
        elif size == 0:
            wait(pg)
        else:
            break
    results(pg, COMMAND_OK)


def abandon(pg: pq.PGconn) -> bool:
    """After a failure: finish what is under way and roll back. False when the
    connection is unusable (close it)."""
    try:
        if pg.status != pq.ConnStatus.OK:
            return False
        if pg.transaction_status == pq.TransactionStatus.ACTIVE:
            results(pg, None)
        if pg.transaction_status != pq.TransactionStatus.IDLE:
            query(pg, b"ROLLBACK", COMMAND_OK)
    except psycopg.Error:
        return False
    return True
