"""Multi-worker truth (issue 5): real `opengate serve` processes on one Redis admit exactly
the limit, under 64 concurrent connections — four workers of one gateway, and two gateway
processes on different ports ("two hosts").

The proof is twofold: the admitted count equals the limit (bar 0.99–1.01; the window is
atomic in Redis, so exactly), and the `RateLimit` remaining values of the admitted answers
are each of limit-1 … 0 exactly once: every admission was counted in the one shared window,
none in a worker's own."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

import httpx
import pytest

from tests.conftest import GatewayProcess
from tests.packages import write_package

LIMIT = 200
REQUESTS = 3 * LIMIT
CONNECTIONS = 64
PATH = "/api/v1/datasets/air-readings/records?limit=1"


def gateway(tmp_path: Path, redis_url: str) -> GatewayProcess:
    tmp_path.mkdir(parents=True, exist_ok=True)
    process = GatewayProcess(
        tmp_path, OPENGATE_REDIS_URL=redis_url, OPENGATE_RATE_ANON=f"{LIMIT}/minute"
    )
    process.cli("migrate")
    process.cli("datasets", "import", str(write_package(tmp_path / "pkgs")))
    return process


async def burst(urls: list[str]) -> list[httpx.Response]:
    """REQUESTS records requests over CONNECTIONS connections, spread over the URLs."""
    per_url = CONNECTIONS // len(urls)
    clients = [
        httpx.AsyncClient(
            base_url=url,
            timeout=30,
            limits=httpx.Limits(max_connections=per_url, max_keepalive_connections=per_url),
        )
        for url in urls
    ]
    gate = asyncio.Semaphore(CONNECTIONS)

    async def one(i: int) -> httpx.Response:
        async with gate:
            return await clients[i % len(clients)].get(PATH)

    try:
        return await asyncio.gather(*(one(i) for i in range(REQUESTS)))
    finally:
        for client in clients:
            await client.aclose()


def check(responses: list[httpx.Response]) -> int:
    statuses = Counter(r.status_code for r in responses)
    assert set(statuses) <= {200, 429}, statuses
    admitted = statuses[200]
    print(f"admitted {admitted} of {REQUESTS} (limit {LIMIT}); ratio {admitted / LIMIT:.3f}")
    assert 0.99 <= admitted / LIMIT <= 1.01
    assert admitted == LIMIT  # an atomic shared window: exactly
    remaining = sorted(
        int(r.headers["ratelimit"].split(";r=")[1].split(";")[0])
        for r in responses
        if r.status_code == 200
    )
    assert remaining == list(range(LIMIT)), "an admission was not counted in the shared window"
    refused = [r for r in responses if r.status_code == 429]
    assert all(r.json()["code"] == "rate_limited" for r in refused)
    return admitted


@pytest.mark.slow
def test_four_workers_on_one_redis_admit_exactly_the_limit(tmp_path: Path, redis_url: str):
    import redis

    redis.Redis.from_url(redis_url).flushdb()
    process = gateway(tmp_path, redis_url)
    try:
        process.serve(workers=4)
        responses = asyncio.run(burst([process.url]))
    finally:
        log = process.stop()
    assert log.count("Started server process") == 4, log
    check(responses)


@pytest.mark.slow
def test_two_hosts_on_one_redis_admit_exactly_the_limit(tmp_path: Path, redis_url: str):
    import redis

    redis.Redis.from_url(redis_url).flushdb()
    hosts = [gateway(tmp_path / "host-a", redis_url), gateway(tmp_path / "host-b", redis_url)]
    try:
        for host in hosts:
            host.serve(workers=1)
        responses = asyncio.run(burst([host.url for host in hosts]))
    finally:
        for host in hosts:
            host.stop()
    answered = Counter(r.request.url.port for r in responses)
    assert len(answered) == 2, answered  # both hosts counted (admitted or refused) in one window
    admitted = Counter(r.request.url.port for r in responses if r.status_code == 200)
    print(f"admitted per host: {sorted(admitted.values())}")
    check(responses)
