"""Shared pieces of the services tests: a service descriptor, a clock that moves only when
told, and a runner for async scenarios with a Redis client of their own loop."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from typing import Any

from tests.conftest import REDIS_URL

COMPANY_CREDIT: dict[str, Any] = {
    "name": "company-credit",
    "title": "企业信用信息核验",
    "publisher": "市市场监督管理局",
    "open_type": "conditional",
    "upstream": {"url": "http://127.0.0.1:9101/credit", "method": "POST", "timeout_ms": 2000},
    "parameters": [
        {"name": "uscc", "in": "body", "type": "string", "required": True, "level": 2},
        {"name": "legal_id", "in": "body", "type": "string", "level": 4, "pii": "id_number"},
        {"name": "year", "in": "query", "type": "integer"},
        {"name": "detail", "in": "query", "type": "boolean"},
    ],
    "response": {
        "fields": [
            {"path": "$.code", "type": "integer", "level": 1},
            {"path": "$.data.company_name", "type": "string", "level": 1},
            {"path": "$.data.legal_person", "type": "string", "level": 3, "pii": "name"},
            {"path": "$.data.legal_id", "type": "string", "level": 4, "pii": "id_number"},
            {"path": "$.data.phone", "type": "string", "level": 3, "pii": "phone"},
            {"path": "$.data.capital", "type": "integer", "level": 2},
            {"path": "$.data.founded", "type": "date", "level": 1},
            {"path": "$.data.shareholders[*].name", "type": "string", "level": 3, "pii": "name"},
            {"path": "$.data.shareholders[*].ratio", "type": "number", "level": 2},
            {"path": "$.data.tags[*]", "type": "string", "level": 1},
        ]
    },
}


class Clock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def run(coroutine_function: Any) -> Any:
    """Run an async scenario on a fresh loop, with a Redis client of that loop."""
    from redis import asyncio as aioredis

    async def scenario() -> Any:
        client = aioredis.Redis.from_url(REDIS_URL)
        try:
            return await coroutine_function(client)
        finally:
            await client.aclose()

    return asyncio.run(scenario())


@contextlib.contextmanager
def pipe_scripts() -> Iterator[tuple[Any, tuple[type[Exception], ...]]]:
    """A `services.scripts.ScriptFactory` on the gateway's pipelined runner (what the gateway
    will pass), and the errors it raises; its connections are closed on leaving."""
    from gateway.redis_pipe import RedisError, ScriptRunner
    from services.scripts import ERRORS

    runners: list[ScriptRunner] = []

    def factory(text: str) -> ScriptRunner:
        runners.append(ScriptRunner(REDIS_URL, text))
        return runners[-1]

    try:
        yield factory, (*ERRORS, RedisError)
    finally:
        for runner in runners:
            if runner._connection is not None and runner._connection.transport is not None:
                runner._connection.transport.close()
