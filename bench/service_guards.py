"""What the circuit breaker and the signature check cost a service call (issue 18), one
coroutine at a time on one core.

    python -m bench.service_guards [--calls 20000] [--redis redis://127.0.0.1:6379/15]

- `breaker memory`: `admit` + `success` of `MemoryBreaker`.
- `breaker redis`: the same with `RedisBreaker` (two script calls, each one round trip to a
  local Redis; one coroutine, so the figure is latency, not throughput).
- `breaker pipe`: the same on the gateway's pipelined script runner
  (`gateway.redis_pipe.ScriptRunner`, passed as a `services.scripts.ScriptFactory`).
- `verify memory` / `verify redis` / `verify pipe`: `SignatureVerifier.verify` of a signed
  2 kB body (SHA-256 of it, the HMAC, the nonce in memory or `SET NX EX` in Redis).

Keys go under a prefix of this run and are deleted afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable

from redis import asyncio as aioredis

from gateway.redis_pipe import RedisError, ScriptRunner
from services.breaker import MemoryBreaker, RedisBreaker
from services.scripts import ERRORS
from services.signing import MemoryNonces, RedisNonces, SignatureVerifier, sign_request

SECRET = b"s" * 32
PATH = "/api/v1/services/company-credit/call"
BODY = b'{"uscc": "91370200163562681G", "pad": "' + b"x" * 2000 + b'"}'


async def per_call(step: Callable[[int], Awaitable[object]], calls: int) -> tuple[float, float]:
    """(wall, CPU of this process) microseconds per call."""
    start, cpu = time.perf_counter(), time.process_time()
    for i in range(calls):
        await step(i)
    wall = (time.perf_counter() - start) / calls * 1e6
    return wall, (time.process_time() - cpu) / calls * 1e6


def signed_requests(calls: int) -> list[dict]:
    stamp = int(time.time() * 1000)
    return [
        {
            "method": "POST",
            "path": PATH,
            "query": "",
            "body": BODY,
            "headers": sign_request(
                "POST", PATH, client_id="app-1", secret=SECRET, body=BODY, timestamp_ms=stamp
            ),
        }
        for _ in range(calls)
    ]


async def main(calls: int, url: str) -> None:
    client = aioredis.Redis.from_url(url)
    prefix = f"og-bench:{uuid.uuid4().hex[:8]}:"
    runners: list[ScriptRunner] = []

    def pipe(text: str) -> ScriptRunner:
        runners.append(ScriptRunner(url, text))
        return runners[-1]

    errors = (*ERRORS, RedisError)
    try:
        memory = MemoryBreaker()
        shared = RedisBreaker(client, prefix=prefix + "breaker:")
        piped = RedisBreaker(pipe, prefix=prefix + "pipe-breaker:", errors=errors)

        async def through(breaker, i: int) -> None:
            await breaker.success(await breaker.admit("company-credit"))

        requests = signed_requests(calls)
        mem_verifier = SignatureVerifier(lambda _c: SECRET, MemoryNonces())
        redis_verifier = SignatureVerifier(
            lambda _c: SECRET, RedisNonces(client, prefix=prefix + "nonce:")
        )
        redis_requests = signed_requests(calls)
        pipe_verifier = SignatureVerifier(
            lambda _c: SECRET, RedisNonces(pipe, prefix=prefix + "pipe-nonce:", errors=errors)
        )
        pipe_requests = signed_requests(calls)
        cases = {
            "breaker memory": lambda i: through(memory, i),
            "breaker redis": lambda i: through(shared, i),
            "breaker pipe": lambda i: through(piped, i),
            "verify memory": lambda i: mem_verifier.verify(**requests[i]),
            "verify redis": lambda i: redis_verifier.verify(**redis_requests[i]),
            "verify pipe": lambda i: pipe_verifier.verify(**pipe_requests[i]),
        }
        for name, step in cases.items():
            wall, cpu = await per_call(step, calls)
            print(f"{name:16} {wall:8.2f} µs a call ({cpu:.2f} µs CPU)")
    finally:
        for runner in runners:
            await runner.close()
        keys = [k async for k in client.scan_iter(match=prefix + "*", count=1000)]
        for i in range(0, len(keys), 1000):
            await client.delete(*keys[i : i + 1000])
        await client.aclose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/15")
    args = parser.parse_args()
    asyncio.run(main(args.calls, args.redis))
