"""The rate limiter's Redis client (`gateway.redis_pipe`): RESP in and out, URLs, the
script cache lost by a restart, a Redis that does not answer, and one that is not there."""

from __future__ import annotations

import asyncio

import pytest

from gateway.redis_pipe import Address, RedisError, ScriptRunner, pack, parse
from tests.conftest import free_port


def test_pack_is_an_array_of_bulk_strings():
    assert pack(b"EVALSHA", b"ab", b"0") == b"*3\r\n$7\r\nEVALSHA\r\n$2\r\nab\r\n$1\r\n0\r\n"
    assert pack(b"SET", "键".encode()) == b"*2\r\n$3\r\nSET\r\n$3\r\n\xe9\x94\xae\r\n"


@pytest.mark.parametrize(
    ("reply", "value"),
    [
        (b":42\r\n", 42),
        (b"+OK\r\n", "OK"),
        (b"$5\r\nhello\r\n", b"hello"),
        (b"$-1\r\n", None),
        (b"$0\r\n\r\n", b""),
        (b"*3\r\n:1\r\n:2\r\n$17\r\n1763820000.123456\r\n", [1, 2, b"1763820000.123456"]),
        (b"*2\r\n*1\r\n:1\r\n*0\r\n", [[1], []]),
        (b"*-1\r\n", []),
    ],
)
def test_parse_replies(reply: bytes, value: object):
    buffer = bytearray(reply + b":7\r\n")
    assert parse(buffer, 0) == (value, len(reply))
    assert parse(buffer, len(reply)) == (7, len(buffer))
    for cut in range(len(reply)):  # any prefix is "not yet"
        assert parse(bytearray(reply[:cut]), 0) is None


def test_error_replies_are_values_not_raised():
    error, pos = parse(bytearray(b"-NOSCRIPT No matching script\r\n"), 0)  # type: ignore[misc]
    assert isinstance(error, RedisError) and str(error).startswith("NOSCRIPT")
    assert pos == 30


def test_addresses_from_urls():
    assert Address.from_url("redis://127.0.0.1:6379/14") == Address("127.0.0.1", 6379, db=14)
    assert Address.from_url("async+redis://cache") == Address("cache", 6379)
    secret = Address.from_url("rediss://limiter:p%40ss@redis.internal:6380/2")
    assert (secret.username, secret.password, secret.tls, secret.db) == ("limiter", "p@ss", True, 2)
    assert Address.from_url("redis://:only-pass@h/0").password == "only-pass"
    assert Address.from_url("unix:///run/redis.sock?db=3") == Address(path="/run/redis.sock", db=3)
    with pytest.raises(ValueError, match="not supported"):
        Address.from_url("redis+sentinel://h:26379/mymaster")


SCRIPT = "redis.call('incr', KEYS[1]) return {redis.call('get', KEYS[1]), ARGV[1]}"


def test_runs_the_script_and_survives_a_lost_script_cache(redis_url: str):
    import redis

    async def scenario() -> list[object]:
        runner = ScriptRunner(redis_url, SCRIPT)
        try:
            first = await runner(["pipe:test"], [b"a"])
            redis.Redis.from_url(redis_url).script_flush()  # as after a restart
            second = await runner(["pipe:test"], [b"b"])
            many = await asyncio.gather(*(runner(["pipe:test"], [b"c"]) for _ in range(50)))
            with pytest.raises(RedisError, match="ERR"):
                await ScriptRunner(redis_url, "return redis.call('nosuchcommand')")([], [])
            return [first, second, sorted(int(m[0]) for m in many)]  # type: ignore[index]
        finally:
            await runner.close()

    redis.Redis.from_url(redis_url).delete("pipe:test")
    first, second, many = asyncio.run(scenario())
    assert first == [b"1", b"a"] and second == [b"2", b"b"]
    assert many == list(range(3, 53))  # pipelined, answered in order


async def silent_server(received: list[bytes], answer: bytes = b"") -> asyncio.Server:
    """Accepts, records what it is sent, answers `answer` to each command (or nothing)."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(65536):
            received.append(data)
            if answer:
                writer.write(answer * data.count(b"*"))

    return await asyncio.start_server(handle, "127.0.0.1", 0)


def test_no_answer_fails_every_waiting_call_and_reconnects():
    async def scenario() -> tuple[list[BaseException | object], int]:
        received: list[bytes] = []
        server = await silent_server(received)
        port = server.sockets[0].getsockname()[1]
        runner = ScriptRunner(f"redis://127.0.0.1:{port}/0", SCRIPT, timeout=0.2)
        results = await asyncio.gather(
            *(runner(["k"], [b"1"]) for _ in range(3)), return_exceptions=True
        )
        with pytest.raises(RedisError):  # a new connection, and again no answer
            await runner(["k"], [b"1"])
        server.close()
        return results, len(received)

    results, writes = asyncio.run(scenario())
    assert all(isinstance(r, RedisError) and "no answer" in str(r) for r in results)
    assert writes == 2  # three calls in one turn left in one write; then the reconnect


def test_credentials_and_database_are_sent_first():
    async def scenario() -> bytes:
        received: list[bytes] = []
        server = await silent_server(received, answer=b"+OK\r\n")
        port = server.sockets[0].getsockname()[1]
        runner = ScriptRunner(f"redis://limiter:s3cret@127.0.0.1:{port}/5", SCRIPT, timeout=0.5)
        assert await runner(["k"], [b"1"]) == "OK"
        await runner.close()
        server.close()
        return b"".join(received)

    sent = asyncio.run(scenario())
    assert sent.startswith(pack(b"AUTH", b"limiter", b"s3cret") + pack(b"SELECT", b"5"))
    assert b"EVALSHA" in sent


def test_nobody_listening_is_an_error_at_once():
    async def scenario() -> None:
        runner = ScriptRunner(f"redis://127.0.0.1:{free_port()}/0", SCRIPT)
        with pytest.raises(RedisError, match="cannot connect"):
            await runner(["k"], [b"1"])

    asyncio.run(scenario())


def test_a_new_event_loop_gets_a_new_connection(redis_url: str):
    """An app served again (a second test client, say) runs on another loop."""
    runner = ScriptRunner(redis_url, "return ARGV[1]")
    assert asyncio.run(runner([], [b"first"])) == b"first"
    assert asyncio.run(runner([], [b"second"])) == b"second"


def test_a_busy_event_loop_is_not_a_silent_redis(monkeypatch: pytest.MonkeyPatch):
    """Two calls in flight; reading the first answer stalls the loop past the timeout, and
    meanwhile the second answer arrives. libuv runs its timers before it reads sockets
    again: the watchdog must read what has arrived before it calls Redis silent."""
    import socket
    import threading
    import time

    import uvloop

    from gateway import redis_pipe

    listener = socket.create_server(("127.0.0.1", 0))

    def answer_later() -> None:  # its own thread: it answers while the loop is stalled
        connection, _ = listener.accept()
        with connection:
            received = b""
            while received.count(b"*") < 2:
                received += connection.recv(65536)
            connection.sendall(b"+first\r\n")
            time.sleep(0.05)
            connection.sendall(b"+second\r\n")
            connection.recv(1)

    threading.Thread(target=answer_later, daemon=True).start()
    read = redis_pipe._Connection.data_received
    stalled: list[bool] = []

    def busy_reading(self: redis_pipe._Connection, data: bytes) -> None:
        read(self, data)
        if not stalled:
            stalled.append(True)
            time.sleep(0.4)  # a GC pause, a big parse: the loop does nothing else

    monkeypatch.setattr(redis_pipe._Connection, "data_received", busy_reading)

    async def scenario() -> list[object]:
        runner = ScriptRunner(f"redis://127.0.0.1:{listener.getsockname()[1]}/0", "x", timeout=0.2)
        answers = await asyncio.gather(runner([], [b"1"]), runner([], [b"2"]))
        await runner.close()
        return answers

    try:
        assert uvloop.run(scenario()) == ["first", "second"]
    finally:
        listener.close()
