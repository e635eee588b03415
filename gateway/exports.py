"""Streamed exports that cannot pin the gateway: a limit of concurrent exports per caller,
and a response that drops a client who stops reading.

The rows come from `catalog.statements.stream_rows` in keyset chunks, each read on a
connection returned to the pool before the chunk is sent; what a stalled client holds is
one chunk of memory and a coroutine waiting to send it — for `send_timeout` seconds at
most, then it is dropped and everything it held is freed.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Iterator, Mapping
from weakref import WeakKeyDictionary

import anyio
import anyio.to_thread
from starlette.requests import Request
from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from auth.principal import principal_of
from gateway.security import client_ip
from kernel.problems import Problem
from policies.access import StreamCount

log = logging.getLogger("opengate.export")
# Threads a worker's exports produce their chunks in, all together (PostgreSQL): 200
# exports starting at once must not take every thread of the pool from the requests of
# other routes, which then queue behind their chunks (on SQLite, where one synchronous
# endpoint runs at a time anyway, exports share that one thread).
EXPORT_THREADS = 4
_limiters: WeakKeyDictionary[asyncio.AbstractEventLoop, anyio.CapacityLimiter] = WeakKeyDictionary()


def export_limiter(threads: int | None) -> anyio.CapacityLimiter | None:
    """This event loop's limiter of export threads (None: the default thread pool's)."""
    if threads is None:
        return None
    loop = asyncio.get_running_loop()
    limiter = _limiters.get(loop)
    if limiter is None:
        limiter = _limiters[loop] = anyio.CapacityLimiter(threads)
    return limiter


def caller_key(request: Request) -> str:
    """Whose exports count together: an app, an account (its personal tokens included),
    or an anonymous client address."""
    principal = principal_of(request)
    if principal is None:
        return f"ip:{client_ip(request)}"
    if principal.kind == "app":
        return f"app:{principal.client_id}"
    return f"user:{principal.user_id}"


class ExportSlots:
    """At most `per_caller` exports under way at once per caller, in this worker."""

    def __init__(self, per_caller: int) -> None:
        self.per_caller = per_caller
        self._open: dict[str, int] = {}
        self._lock = threading.Lock()

    def take(self, caller: str) -> Callable[[], None]:
        """A slot for `caller`, or 429 `rate_limited`; returns its release (idempotent)."""
        with self._lock:
            held = self._open.get(caller, 0)
            if held >= self.per_caller:
                raise Problem(
                    429,
                    "rate_limited",
                    f"同一调用方最多同时进行 {self.per_caller} 个导出，请等已有导出结束后重试",
                    headers={"Retry-After": "10"},
                    limit="exports",
                )
            self._open[caller] = held + 1
        released = False

        def release() -> None:
            nonlocal released
            with self._lock:
                if released:
                    return
                released = True
                left = self._open.get(caller, 1) - 1
                if left > 0:
                    self._open[caller] = left
                else:
                    self._open.pop(caller, None)

        return release

    def held(self, caller: str) -> int:
        return self._open.get(caller, 0)


_END = object()


class ExportResponse(StreamingResponse):
    """Sends the chunks of a synchronous iterator, each produced in a worker thread.

    A send that waits longer than `send_timeout` for the client to take the previous data
    ends the export: the connection is closed, the iterator closed and `on_close` called
    (it releases the slot and gives back reserved quota), whatever way the answer ends."""

    def __init__(
        self,
        chunks: Iterator[bytes],
        *,
        send_timeout: float,
        counter: StreamCount,
        on_close: Callable[[], None],
        media_type: str,
        headers: Mapping[str, str],
        threads: int | None = None,
    ) -> None:
        super().__init__(iter(()), media_type=media_type, headers=headers)
        self.threads = threads
        self.chunks = chunks
        self.send_timeout = send_timeout
        self.counter = counter
        self.on_close = on_close

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        limiter = export_limiter(self.threads)
        try:
            await send(
                {
                    "type": "http.response.start",
                    "status": self.status_code,
                    "headers": self.raw_headers,
                }
            )
            while True:
                chunk = await anyio.to_thread.run_sync(next, self.chunks, _END, limiter=limiter)
                if chunk is _END:
                    break
                if await _client_left(receive):
                    self.counter.stopped = "client_disconnected"
                    return
                with anyio.move_on_after(self.send_timeout) as waited:
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
                if waited.cancelled_caught:
                    self.counter.stopped = "client_not_reading"
                    log.warning(
                        "export dropped: the client read nothing for %.0f s",
                        self.send_timeout,
                        extra={"repeat_key": "export:stalled"},
                    )
                    return  # an unfinished answer: the server closes the connection
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            await anyio.to_thread.run_sync(self._close, limiter=limiter)

    def _close(self) -> None:
        try:
            close = getattr(self.chunks, "close", None)
            if close is not None:
                close()
        finally:
            self.on_close()


async def _client_left(receive: Receive) -> bool:
    """Whether the client has gone, without waiting: the server answers `receive` at once
    with `http.disconnect` when it has (a GET's empty body may come first)."""
    with anyio.move_on_after(0):
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return True
    return False
