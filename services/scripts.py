"""Lua scripts on Redis, behind one small signature so that the breaker and the nonce store
run on whichever client the gateway holds: redis-py's asyncio client (`redis_py`), or the
gateway's own pipelined runner (`gateway.redis_pipe.ScriptRunner(url, text)` has exactly this
shape and costs a fifth of the CPU a call; decision 0005).

A `ScriptFactory` takes the text of a script and returns `run(keys, args)`, a coroutine
function giving the script's reply (integers as int, strings as bytes, arrays as lists,
nil as None). Arguments are passed as bytes.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from redis import asyncio as aioredis
from redis.exceptions import RedisError

Script = Callable[[list[str], list[bytes]], Awaitable[object]]
ScriptFactory = Callable[[str], Script]
# What a failed call raises with redis-py; a caller with another client adds its own.
ERRORS: tuple[type[Exception], ...] = (RedisError, OSError, TimeoutError)


def redis_py(client: aioredis.Redis) -> ScriptFactory:
    def factory(text: str) -> Script:
        script = client.register_script(text)

        async def run(keys: list[str], args: list[bytes]) -> object:
            return await script(keys=keys, args=args)

        return run

    return factory


def factory_of(store: aioredis.Redis | ScriptFactory) -> ScriptFactory:
    return redis_py(store) if isinstance(store, aioredis.Redis) else store


def as_bytes(args: Sequence[object]) -> list[bytes]:
    return [a if isinstance(a, bytes) else str(a).encode() for a in args]


def text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else "" if value is None else str(value)
