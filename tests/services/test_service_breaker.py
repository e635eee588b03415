"""The circuit breaker, the same scenarios on both backends (in-process, and real Redis under a
key prefix of the test's own), on a clock that moves only when told."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from redis import asyncio as aioredis

from services.breaker import (
    CLOSED,
    HALF_OPEN,
    OPEN,
    BreakerConfig,
    CircuitOpen,
    MemoryBreaker,
    RedisBreaker,
    Ticket,
)
from tests.conftest import REDIS_URL
from tests.services.helpers import Clock, pipe_scripts, run

CONFIG = BreakerConfig(failure_threshold=3, cool_down=30, probe_lease=60)
Scenario = Callable[[Any], Awaitable[Any]]


@pytest.fixture(params=["memory", "redis", "redis-pipe"])
def on_breaker(request: pytest.FixtureRequest, clock: Clock) -> Callable[[Scenario], Any]:
    """Run `scenario(breaker)` on the backend of this parameter: in-process, Redis through
    redis-py, Redis through the gateway's own pipelined script runner."""
    if request.param == "memory":
        return lambda scenario: asyncio.run(scenario(MemoryBreaker(CONFIG, clock=clock)))
    prefix = request.getfixturevalue("redis_prefix")
    if request.param == "redis-pipe":

        def on_pipe(scenario: Scenario) -> Any:
            async def go() -> Any:
                with pipe_scripts() as (scripts, errors):
                    breaker = RedisBreaker(
                        scripts, CONFIG, prefix=prefix, clock=clock, errors=errors
                    )
                    return await scenario(breaker)

            return asyncio.run(go())

        return on_pipe

    def on_redis(scenario: Scenario) -> Any:
        return run(
            lambda client: scenario(RedisBreaker(client, CONFIG, prefix=prefix, clock=clock))
        )

    return on_redis


async def fail(breaker: Any, service: str = "svc", times: int = 1) -> None:
    for _ in range(times):
        await breaker.failure(await breaker.admit(service))


async def refused(breaker: Any, service: str = "svc") -> CircuitOpen:
    with pytest.raises(CircuitOpen) as caught:
        await breaker.admit(service)
    return caught.value


def test_opens_after_n_consecutive_failures(on_breaker, clock: Clock):
    async def scenario(breaker):
        await fail(breaker, times=2)
        assert (await breaker.status("svc")).state == CLOSED
        assert (await breaker.status("svc")).failures == 2
        await fail(breaker)
        assert (await breaker.status("svc")).state == OPEN
        clock.advance(10)
        opened = await refused(breaker)
        assert opened.retry_after == pytest.approx(20)
        assert (await breaker.status("svc")).retry_after == pytest.approx(20)
        # Other services are not affected.
        await breaker.success(await breaker.admit("other"))
        assert (await breaker.status("other")).state == CLOSED

    on_breaker(scenario)


def test_a_success_resets_the_count(on_breaker):
    async def scenario(breaker):
        await fail(breaker, times=2)
        await breaker.success(await breaker.admit("svc"))
        await fail(breaker, times=2)
        assert (await breaker.status("svc")).state == CLOSED  # 2, 1 success, 2: never 3 in a row

    on_breaker(scenario)


def test_half_open_lets_one_probe_through_and_closes_on_its_success(on_breaker, clock: Clock):
    async def scenario(breaker):
        await fail(breaker, times=3)
        clock.advance(30)
        assert (await breaker.status("svc")).state == HALF_OPEN
        probe = await breaker.admit("svc")
        assert probe.probe
        waiting = await refused(breaker)  # only one probe at a time
        assert waiting.retry_after == pytest.approx(60)
        await breaker.success(probe)
        assert (await breaker.status("svc")).state == CLOSED
        first, second = await breaker.admit("svc"), await breaker.admit("svc")
        assert not first.probe and not second.probe
        # Closed again, with a fresh count: it takes three failures to open.
        await fail(breaker, times=2)
        assert (await breaker.status("svc")).state == CLOSED

    on_breaker(scenario)


def test_a_failed_probe_opens_it_for_another_cool_down(on_breaker, clock: Clock):
    async def scenario(breaker):
        await fail(breaker, times=3)
        clock.advance(31)
        await breaker.failure(await breaker.admit("svc"))
        assert (await breaker.status("svc")).state == OPEN
        clock.advance(29)
        assert (await refused(breaker)).retry_after == pytest.approx(1)
        clock.advance(1)
        probe = await breaker.admit("svc")
        await breaker.success(probe)
        assert (await breaker.status("svc")).state == CLOSED

    on_breaker(scenario)


def test_a_silent_probe_holds_it_for_the_lease_only(on_breaker, clock: Clock):
    async def scenario(breaker):
        await fail(breaker, times=3)
        clock.advance(30)
        lost = await breaker.admit("svc")  # its worker dies: it never reports
        clock.advance(59)
        await refused(breaker)
        clock.advance(1)
        probe = await breaker.admit("svc")
        assert probe.probe and probe.probe != lost.probe
        await breaker.success(lost)  # too late: no longer the probe
        assert (await breaker.status("svc")).state == HALF_OPEN
        await breaker.success(probe)
        assert (await breaker.status("svc")).state == CLOSED

    on_breaker(scenario)


def test_late_reports_count_only_for_the_state_they_were_admitted_under(on_breaker, clock: Clock):
    async def scenario(breaker):
        slow = [await breaker.admit("svc") for _ in range(3)]
        await fail(breaker, times=3)  # opens
        for ticket in slow:  # admitted while closed, answering after it opened
            await breaker.failure(ticket)
        clock.advance(30)
        probe = await breaker.admit("svc")  # the cool-down was not extended by them
        await breaker.success(slow[0])  # nor does a late success close it
        assert (await breaker.status("svc")).state == HALF_OPEN
        await breaker.success(probe)
        await breaker.failure(slow[1])  # from the closed period before the opening
        assert (await breaker.status("svc")).failures == 0

    on_breaker(scenario)


def test_two_hosts_share_one_breaker(redis_prefix: str, clock: Clock):
    """Two breakers on one Redis (two workers or hosts): failures add up, one probe in all."""

    async def scenario(client: aioredis.Redis):
        other = aioredis.Redis.from_url(REDIS_URL)
        try:
            a = RedisBreaker(client, CONFIG, prefix=redis_prefix, clock=clock)
            b = RedisBreaker(other, CONFIG, prefix=redis_prefix, clock=clock)
            await fail(a, times=2)
            await fail(b)
            await refused(a)
            await refused(b)
            clock.advance(30)
            tickets = await asyncio.gather(
                *(x.admit("svc") for x in (a, b) * 10), return_exceptions=True
            )
            probes = [t for t in tickets if isinstance(t, Ticket)]
            assert len(probes) == 1 and probes[0].probe
            assert all(isinstance(t, CircuitOpen) for t in tickets if t is not probes[0])
            await (a if tickets.index(probes[0]) % 2 == 0 else b).success(probes[0])
            assert (await b.status("svc")).state == CLOSED
            assert (await a.status("svc")).state == CLOSED
        finally:
            await other.aclose()

    run(scenario)


def test_keys_carry_the_prefix_and_expire(redis_prefix: str, clock: Clock):
    async def scenario(client: aioredis.Redis):
        breaker = RedisBreaker(client, CONFIG, prefix=redis_prefix, clock=clock, ttl=3600)
        await fail(breaker, "credit")
        keys = [k async for k in client.scan_iter(match=redis_prefix + "*")]
        assert keys == [f"{redis_prefix}credit".encode()]
        assert 0 < await client.ttl(keys[0]) <= 3600

    run(scenario)


def test_without_redis_it_decides_in_process(clock: Clock, caplog: pytest.LogCaptureFixture):
    async def scenario():
        dead = aioredis.Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.2)
        try:
            breaker = RedisBreaker(dead, CONFIG, clock=clock)
            ticket = await breaker.admit("svc")
            assert ticket.local
            await breaker.failure(ticket)
            await fail(breaker, times=2)
            await refused(breaker)
            assert breaker.fallback.status_now("svc").state == OPEN
        finally:
            await dead.aclose()

    asyncio.run(scenario())
    assert "Redis did not answer" in caplog.text
    assert len([r for r in caplog.records if "Redis did not answer" in r.message]) == 1


def test_the_open_breaker_answers_503_with_retry_after():
    problem = CircuitOpen("company-credit", 12.2).problem("企业信用信息核验")
    assert (problem.status, problem.code) == (503, "unavailable")
    assert problem.headers == {"Retry-After": "13"}
    assert problem.detail == "服务 企业信用信息核验 的上游接口连续出错，暂停调用，请 13 秒后重试"
    assert CircuitOpen("x", 0.01).problem().headers == {"Retry-After": "1"}


@pytest.mark.parametrize(
    "config",
    [{"failure_threshold": 0}, {"cool_down": 0}, {"probe_lease": -1}],
)
def test_config_is_checked(config: dict[str, float]):
    with pytest.raises(ValueError):
        BreakerConfig(**config)


def test_a_healthy_call_costs_one_round_trip(redis_prefix: str, clock: Clock):
    async def scenario(client: aioredis.Redis):
        breaker = RedisBreaker(client, CONFIG, prefix=redis_prefix, clock=clock)
        sent = []
        report = breaker._report

        async def counted(keys: list[str], args: list[bytes]) -> Any:
            sent.append(args[2])
            return await report(keys, args)

        breaker._report = counted  # type: ignore[method-assign]
        for _ in range(3):
            await breaker.success(await breaker.admit("svc"))
        assert sent == []  # nothing to reset: no report at all
        await fail(breaker)
        await breaker.success(await breaker.admit("svc"))  # saw one failure: resets it
        assert sent == [b"0", b"1"]
        assert (await breaker.status("svc")).failures == 0

    run(scenario)
