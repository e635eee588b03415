"""One Lua script on Redis, as cheaply as the event loop allows: the rate limiter's client.

Every limited request makes one call, so its cost is paid on every request. redis-py's
asyncio client spends ~100 µs of CPU a call here under load (connection pool, retry
wrapper, stream reader, RESP3 parser: decision 0005, `bench.ratelimit_client`); this one
~20–30 µs. It keeps one connection per worker and pipelines on it: the calls made in one
turn of the event loop leave in one write, and the replies, which Redis sends in order,
are parsed straight off the socket's buffer.

It speaks just what the limiter needs: `AUTH` and `SELECT` from the URL
(`redis://[user:password@]host:port/db`, `rediss://` for TLS, `unix:///path?db=N`),
`EVALSHA`, and `EVAL` when Redis has lost its script cache (a restart). A call that gets
no answer within `timeout` seconds fails, and so does everything else waiting on that
connection, which is then dropped; the next call connects again.
"""

from __future__ import annotations

import asyncio
import hashlib
import ssl
from asyncio import get_running_loop
from collections import deque
from dataclasses import dataclass
from urllib.parse import parse_qs, unquote, urlsplit

LAST_LOOK = 0.005  # seconds


class RedisError(Exception):
    """The connection failed, timed out, or Redis answered with an error."""


@dataclass(frozen=True)
class Address:
    host: str = "127.0.0.1"
    port: int = 6379
    path: str | None = None  # a unix socket
    db: int = 0
    username: str | None = None
    password: str | None = None
    tls: bool = False

    @classmethod
    def from_url(cls, url: str) -> Address:
        parts = urlsplit(url.removeprefix("async+"))
        if parts.scheme not in ("redis", "rediss", "unix"):
            raise ValueError(f"OPENGATE_REDIS_URL: {parts.scheme}:// is not supported")
        query = parse_qs(parts.query)
        db = query.get("db", [parts.path.strip("/") if parts.scheme != "unix" else ""])[0]
        return cls(
            host=parts.hostname or "127.0.0.1",
            port=parts.port or 6379,
            path=parts.path if parts.scheme == "unix" else None,
            db=int(db or 0),
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
            tls=parts.scheme == "rediss",
        )


def pack(*parts: bytes) -> bytes:
    """A command in RESP: an array of bulk strings."""
    return b"*%d\r\n" % len(parts) + b"".join(b"$%d\r\n%b\r\n" % (len(p), p) for p in parts)


def parse(buffer: bytearray, pos: int) -> tuple[object, int] | None:
    """One RESP2 reply from `pos`: (value, where the next begins), or None if incomplete.
    Error replies come back as `RedisError` values, not raised."""
    end = buffer.find(b"\r\n", pos)
    if end < 0:
        return None
    kind, line, pos = buffer[pos], bytes(buffer[pos + 1 : end]), end + 2
    if kind == 0x3A:  # ":" integer
        return int(line), pos
    if kind == 0x24:  # "$" bulk string
        size = int(line)
        if size < 0:
            return None, pos
        if len(buffer) < pos + size + 2:
            return None
        return bytes(buffer[pos : pos + size]), pos + size + 2
    if kind == 0x2A:  # "*" array
        items = []
        for _ in range(max(0, int(line))):
            parsed = parse(buffer, pos)
            if parsed is None:
                return None
            item, pos = parsed
            items.append(item)
        return items, pos
    if kind == 0x2B:  # "+" simple string
        return line.decode(), pos
    if kind == 0x2D:  # "-" error
        return RedisError(line.decode(errors="replace")), pos
    raise RedisError(f"unexpected reply type {chr(kind)!r}")


class _Connection(asyncio.Protocol):
    def __init__(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.reason = "connection lost"
        self._buffer = bytearray()
        self._waiting: deque[tuple[asyncio.Future[object], float]] = deque()
        self._outgoing: list[bytes] = []
        self.watchdog: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        buffer = self._buffer
        buffer += data
        pos = 0
        while self._waiting:
            parsed = parse(buffer, pos)
            if parsed is None:
                break
            value, pos = parsed
            future, _ = self._waiting.popleft()
            if future.done():
                continue
            if isinstance(value, RedisError):
                future.set_exception(value)
            else:
                future.set_result(value)
        del buffer[:pos]

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        error = RedisError(f"{self.reason}: {exc}" if exc else self.reason)
        while self._waiting:
            future, _ = self._waiting.popleft()
            if not future.done():
                future.set_exception(error)

    def send(self, command: bytes) -> asyncio.Future[object]:
        """Queue a command; the loop's turn ends with one write of everything queued."""
        if self.closed:
            raise RedisError(self.reason)
        future = self.loop.create_future()
        self._waiting.append((future, self.loop.time()))
        if not self._outgoing:
            self.loop.call_soon(self._flush)
        self._outgoing.append(command)
        return future

    def _flush(self) -> None:
        outgoing, self._outgoing = self._outgoing, []
        if not self.closed and self.transport is not None:
            self.transport.write(b"".join(outgoing))

    def oldest(self) -> float | None:
        """When the oldest unanswered command was sent."""
        return self._waiting[0][1] if self._waiting else None

    def abort(self, reason: str) -> None:
        self.reason = reason
        if self.transport is not None:
            self.transport.abort()


class ScriptRunner:
    """Runs one Lua script on the Redis at `url`."""

    def __init__(self, url: str, script: str, *, timeout: float = 0.5) -> None:
        self.address = Address.from_url(url)
        self.timeout = timeout
        self._script = script.encode()
        self._sha = hashlib.sha1(self._script, usedforsecurity=False).hexdigest().encode()
        self._connection: _Connection | None = None
        self._connecting: asyncio.Task[_Connection] | None = None

    async def __call__(self, keys: list[str], args: list[bytes]) -> object:
        connection = self._connection
        # (another event loop: an app served again by a test client, say; start afresh)
        if connection is None or connection.closed or connection.loop is not get_running_loop():
            connection = await self._connect()
        head = [str(len(keys)).encode(), *(k.encode() for k in keys), *args]
        try:
            return await self._send(connection, pack(b"EVALSHA", self._sha, *head))
        except RedisError as exc:
            if not str(exc).startswith("NOSCRIPT"):
                raise
        # Redis restarted and lost its script cache: EVAL runs the script and caches it.
        return await self._send(connection, pack(b"EVAL", self._script, *head))

    async def close(self) -> None:
        if self._connection is not None and self._connection.transport is not None:
            self._connection.transport.close()
        self._connection = None

    def _send(self, connection: _Connection, command: bytes) -> asyncio.Future[object]:
        future = connection.send(command)
        if connection.watchdog is None:
            connection.watchdog = connection.loop.call_later(self.timeout, self._check, connection)
        return future

    def _check(self, connection: _Connection, last_look: bool = False) -> None:
        """Drop a connection whose oldest command has waited `timeout` seconds."""
        connection.watchdog = None
        oldest = connection.oldest()
        if connection.closed or oldest is None:
            return
        loop = connection.loop
        waited = loop.time() - oldest
        if waited < self.timeout:
            connection.watchdog = loop.call_later(self.timeout - waited, self._check, connection)
        elif not last_look:
            # The event loop may have been busy, not Redis silent, and a loop runs its due
            # timers before it reads its sockets again: let it read, then look again (a
            # timer due at once would run before the read too).
            connection.watchdog = loop.call_later(LAST_LOOK, self._check, connection, True)
        else:
            connection.abort(f"no answer from Redis in {self.timeout} s")
            if self._connection is connection:
                self._connection = None

    async def _connect(self) -> _Connection:
        """One connection attempt at a time; every caller waiting meanwhile shares it."""
        connecting = self._connecting
        if connecting is None or connecting.get_loop() is not get_running_loop():
            self._connecting = asyncio.ensure_future(self._open())
            self._connecting.add_done_callback(self._connected)
        return await asyncio.shield(self._connecting)

    def _connected(self, task: asyncio.Task[_Connection]) -> None:
        if self._connecting is task:
            self._connecting = None
        if not task.cancelled() and task.exception() is None:
            self._connection = task.result()

    async def _open(self) -> _Connection:
        loop = asyncio.get_running_loop()
        address = self.address
        try:
            if address.path:
                opening = loop.create_unix_connection(_Connection, address.path)
            else:
                context = ssl.create_default_context() if address.tls else None
                opening = loop.create_connection(
                    _Connection, address.host, address.port, ssl=context
                )
            _, connection = await asyncio.wait_for(opening, self.timeout)
            greeting = []
            if address.password:
                credentials = [address.username] if address.username else []
                credentials.append(address.password)
                greeting.append(connection.send(pack(b"AUTH", *(c.encode() for c in credentials))))
            if address.db:
                greeting.append(connection.send(pack(b"SELECT", str(address.db).encode())))
            if greeting:
                try:
                    await asyncio.wait_for(asyncio.gather(*greeting), self.timeout)
                except BaseException:
                    connection.abort("greeting failed")
                    raise
        except OSError as exc:  # TimeoutError included
            raise RedisError(f"cannot connect to Redis: {exc or type(exc).__name__}") from None
        return connection
