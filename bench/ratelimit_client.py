"""The limiter's Redis call alone: CPU per call in the calling process, three ways.

    python -m bench.ratelimit_client [--calls 4000] [--concurrency 16] [--redis URL]

- `limits hit+stats`: limits' `MovingWindowRateLimiter.hit` then `get_window_stats` on
  one window (what the gateway did before issue 5's second session): two round trips;
- `redis-py script`: the gateway's Lua script (decision 0005) through redis-py's
  asyncio client, on limits' RedisStorage connection: one round trip;
- `pipe script`: the same script through `gateway.redis_pipe` (what the gateway uses).

Each with one and two windows where it applies, `--concurrency` callers at once on
uvloop, as in a worker under load; plus Redis's own time per script call
(`INFO commandstats`). Redis is a private redis-server, or `--redis`.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Awaitable, Callable
from tempfile import TemporaryDirectory

import redis
import uvloop
from limits import parse
from limits.aio.storage import RedisStorage
from limits.aio.strategies import MovingWindowRateLimiter

from bench.ratelimit_overhead import private_redis
from gateway.ratelimit import HIT_WINDOWS, RateLimits

RATES = {"anon": "100000000/minute", "data": "50000000/minute"}


def limits_for(url: str) -> RateLimits:
    return RateLimits(app="1/minute", login="1/minute", token="1/minute", redis_url=url, **RATES)


async def per_call(call: Callable[[], Awaitable[object]], calls: int, concurrency: int) -> float:
    async def caller() -> None:
        for _ in range(calls // concurrency):
            await call()

    for _ in range(100):
        await call()
    start = time.process_time()
    await asyncio.gather(*(caller() for _ in range(concurrency)))
    return (time.process_time() - start) / calls * 1e6


async def run(url: str, args: argparse.Namespace) -> None:
    sync = redis.Redis.from_url(url)
    limits = limits_for(url)
    two = limits.plan(None, "198.51.100.7", "data")  # a records request: anon + data
    one = two[:1]
    storage = RedisStorage("async+" + url, implementation="redispy")
    limiter = MovingWindowRateLimiter(storage)
    item = parse(RATES["anon"])
    script = storage.bridge.get_connection().register_script(HIT_WINDOWS)

    async def old() -> None:
        await limiter.hit(item, "anon", "203.0.113.1")
        await limiter.get_window_stats(item, "anon", "203.0.113.1")

    def redispy(checks: list) -> Callable[[], Awaitable[object]]:
        def call() -> Awaitable[object]:
            args_ = [time.time()]
            for check in checks:
                args_ += (check.rule.item.amount, check.rule.item.get_expiry())
            return script(["LIMITS:redispy/" + c.key for c in checks], args_)

        return call

    cases = [
        ("limits hit+stats, 1 window", old),
        ("redis-py script, 1 window", redispy(one)),
        ("redis-py script, 2 windows", redispy(two)),
        ("pipe script, 1 window", lambda: limits.hit(one, fail_closed=False)),
        ("pipe script, 2 windows", lambda: limits.hit(two, fail_closed=False)),
    ]
    for label, call in cases:
        sync.flushdb()
        sync.config_resetstat()
        cpu = await per_call(call, args.calls, args.concurrency)
        stats = sync.info("commandstats").get("cmdstat_evalsha", {})
        server = f"; Redis {stats['usec_per_call']:.0f} µs/script" if stats else ""
        print(f"{label:28} {cpu:6.0f} µs CPU/call{server}")
    sync.flushdb()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=4000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--redis", help="an existing Redis (default: a private redis-server)")
    args = parser.parse_args()
    print(f"{args.calls} calls, {args.concurrency} at a time, uvloop")
    with TemporaryDirectory() as tmp:
        if args.redis:
            uvloop.run(run(args.redis, args))
        else:
            with private_redis(tmp) as url:
                uvloop.run(run(url, args))


if __name__ == "__main__":
    main()
