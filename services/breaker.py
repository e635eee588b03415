"""A circuit breaker per service (contract §12): after `failure_threshold` consecutive
failures the service answers `503 unavailable` at once for `cool_down` seconds; then one call
— the probe — goes through (half-open): its success closes the breaker, its failure opens it
for another cool-down.

Two backends behind one interface: `MemoryBreaker` (one process: the embedded default) and
`RedisBreaker` (every worker and host share each service's state; each transition is one Lua
script, so two hosts never both take the probe). Use:

    ticket = await breaker.admit(service_id)      # raises CircuitOpen
    try:
        answer = await call_upstream()
    except UpstreamFailure:
        await breaker.failure(ticket)
        raise
    await breaker.success(ticket)

A report only counts for the state it was admitted under: a call admitted while closed that
fails after the breaker opened does not extend the cool-down, and only the probe's outcome
decides a half-open breaker. A probe that never reports (its worker died) holds the breaker
for `probe_lease` seconds, then the next call becomes the probe.

What counts as a failure is the caller's to say (an upstream error or timeout; not a
caller's bad parameters). Time comes from `clock` (seconds), injectable for tests.
"""

from __future__ import annotations

import logging
import math
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from redis import asyncio as aioredis

from kernel.problems import Problem
from services.scripts import ERRORS, ScriptFactory, as_bytes, factory_of, text

log = logging.getLogger("opengate.services")

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"
Clock = Callable[[], float]


@dataclass(frozen=True, slots=True)
class BreakerConfig:
    failure_threshold: int = 5
    cool_down: float = 30.0  # seconds open before the probe
    probe_lease: float = 60.0  # seconds a silent probe holds the half-open breaker

    def __post_init__(self) -> None:
        if self.failure_threshold < 1 or self.cool_down <= 0 or self.probe_lease <= 0:
            raise ValueError("failure_threshold ≥ 1, cool_down > 0 and probe_lease > 0")


@dataclass(frozen=True, slots=True)
class Ticket:
    """One admitted call. `epoch` counts the openings of the breaker; `probe` is the probe's
    token (empty for a call admitted while closed)."""

    service: str
    epoch: int
    probe: str = ""
    local: bool = False  # admitted by the in-process fallback (Redis did not answer)
    failures: int = -1  # the count seen at admission, when the backend says (Redis)


@dataclass(frozen=True, slots=True)
class Status:
    state: str
    failures: int
    retry_after: float  # seconds until a probe may go (0 unless open)


class CircuitOpen(Exception):  # noqa: N818 (a state, raised)
    def __init__(self, service: str, retry_after: float) -> None:
        super().__init__(f"circuit of {service} open for {retry_after:.1f}s")
        self.service = service
        self.retry_after = retry_after

    def problem(self, title: str | None = None) -> Problem:
        """The contract's answer: `503 unavailable` with `Retry-After` (whole seconds)."""
        seconds = max(1, math.ceil(self.retry_after))
        return Problem(
            503,
            "unavailable",
            f"服务 {title or self.service} 的上游接口连续出错，暂停调用，请 {seconds} 秒后重试",
            headers={"Retry-After": str(seconds)},
        )


class Breaker(Protocol):
    async def admit(self, service: str) -> Ticket: ...
    async def success(self, ticket: Ticket) -> None: ...
    async def failure(self, ticket: Ticket) -> None: ...
    async def status(self, service: str) -> Status: ...


@dataclass(slots=True)
class _State:
    failures: int = 0
    opened_at: float | None = None
    epoch: int = 0
    probe: str = ""
    probe_at: float = 0.0


class MemoryBreaker:
    """The breaker of one process. Thread-safe: its steps are short and take one lock."""

    def __init__(self, config: BreakerConfig = BreakerConfig(), *, clock: Clock = time.time):
        self.config = config
        self._clock = clock
        self._states: dict[str, _State] = {}
        self._lock = threading.Lock()

    async def admit(self, service: str) -> Ticket:
        return self.admit_now(service)

    async def success(self, ticket: Ticket) -> None:
        self.report(ticket, ok=True)

    async def failure(self, ticket: Ticket) -> None:
        self.report(ticket, ok=False)

    async def status(self, service: str) -> Status:
        return self.status_now(service)

    # The same steps, synchronous: RedisBreaker falls back on them.

    def admit_now(self, service: str) -> Ticket:
        now = self._clock()
        c = self.config
        with self._lock:
            s = self._states.setdefault(service, _State())
            if s.opened_at is None:
                return Ticket(service, s.epoch)
            reopens = s.opened_at + c.cool_down
            if now < reopens:
                raise CircuitOpen(service, reopens - now)
            if s.probe and now < s.probe_at + c.probe_lease:
                raise CircuitOpen(service, s.probe_at + c.probe_lease - now)
            s.probe, s.probe_at = secrets.token_hex(8), now
            return Ticket(service, s.epoch, s.probe)

    def report(self, ticket: Ticket, *, ok: bool) -> None:
        now = self._clock()
        with self._lock:
            s = self._states.get(ticket.service)
            if s is None or s.epoch != ticket.epoch:
                return
            if ticket.probe:
                if ticket.probe != s.probe:
                    return
                if ok:
                    self._states[ticket.service] = _State(epoch=s.epoch)
                else:
                    s.opened_at, s.probe, s.epoch = now, "", s.epoch + 1
                return
            if s.opened_at is not None:  # admitted while closed, reported after it opened
                return
            if ok:
                s.failures = 0
                return
            s.failures += 1
            if s.failures >= self.config.failure_threshold:
                s.failures, s.opened_at, s.epoch = 0, now, s.epoch + 1

    def status_now(self, service: str) -> Status:
        now = self._clock()
        with self._lock:
            s = self._states.get(service, _State())
            if s.opened_at is None:
                return Status(CLOSED, s.failures, 0.0)
            wait = s.opened_at + self.config.cool_down - now
            return Status(OPEN, 0, wait) if wait > 0 else Status(HALF_OPEN, 0, 0.0)


# KEYS[1] the service's hash; ARGV: now (ms), cool-down (ms), lease (ms), probe token, ttl (s).
# Answers {0, epoch, "", failures} to a closed call, {0, epoch, token, 0} to the probe,
# {1, wait ms} when refused.
_ADMIT = """
local s = redis.call('HMGET', KEYS[1], 'opened_at', 'epoch', 'probe', 'probe_at', 'failures')
local epoch = tonumber(s[2]) or 0
if not s[1] then return {0, epoch, '', tonumber(s[5]) or 0} end
local now = tonumber(ARGV[1])
local reopens = tonumber(s[1]) + tonumber(ARGV[2])
if now < reopens then return {1, reopens - now} end
if s[3] and s[3] ~= '' then
  local lease_end = tonumber(s[4]) + tonumber(ARGV[3])
  if now < lease_end then return {1, lease_end - now} end
end
redis.call('HSET', KEYS[1], 'probe', ARGV[4], 'probe_at', ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[5])
return {0, epoch, ARGV[4], 0}
"""

# ARGV: epoch, probe token (or ""), ok (1/0), now (ms), threshold, ttl (s).
_REPORT = """
local s = redis.call('HMGET', KEYS[1], 'opened_at', 'epoch', 'probe', 'failures')
local epoch = tonumber(s[2]) or 0
if epoch ~= tonumber(ARGV[1]) then return 0 end
local ok = ARGV[3] == '1'
if ARGV[2] ~= '' then
  if s[3] ~= ARGV[2] then return 0 end
  if ok then
    redis.call('HDEL', KEYS[1], 'opened_at', 'probe', 'probe_at')
    redis.call('HSET', KEYS[1], 'failures', 0)
  else
    redis.call('HSET', KEYS[1], 'opened_at', ARGV[4], 'probe', '', 'epoch', epoch + 1)
  end
  redis.call('EXPIRE', KEYS[1], ARGV[6])
  return 1
end
if s[1] then return 0 end
if ok then
  if (tonumber(s[4]) or 0) > 0 then redis.call('HSET', KEYS[1], 'failures', 0) end
  return 1
end
local failures = redis.call('HINCRBY', KEYS[1], 'failures', 1)
if failures >= tonumber(ARGV[5]) then
  redis.call('HSET', KEYS[1], 'failures', 0, 'opened_at', ARGV[4], 'epoch', epoch + 1)
end
redis.call('EXPIRE', KEYS[1], ARGV[6])
return 1
"""

_STATUS = "return redis.call('HMGET', KEYS[1], 'opened_at', 'failures')"


class RedisBreaker:
    """Each service's state in one Redis hash, `{prefix}{service}`, shared by every worker
    and host; each step is one script call.

    If Redis does not answer, the call is decided by an in-process `MemoryBreaker` instead
    (logged once a minute at most): a breaker is a protection of the upstream, and a Redis
    outage must not stop every service. Hosts' clocks are assumed NTP-synchronized (signed
    calls assume it too); the state expires `ttl` seconds after its last change.
    """

    def __init__(
        self,
        store: aioredis.Redis | ScriptFactory,
        config: BreakerConfig = BreakerConfig(),
        *,
        prefix: str = "og:breaker:",
        clock: Clock = time.time,
        ttl: int = 86_400,
        errors: tuple[type[Exception], ...] = ERRORS,
    ) -> None:
        """`store`: a redis-py asyncio client, or a `services.scripts.ScriptFactory`;
        `errors`: what a call to it raises when Redis does not answer."""
        self.config = config
        self._prefix = prefix
        self._clock = clock
        self._errors = errors
        self._ttl = max(ttl, math.ceil(config.cool_down + config.probe_lease) + 60)
        scripts = factory_of(store)
        self._admit, self._report = scripts(_ADMIT), scripts(_REPORT)
        self._status = scripts(_STATUS)
        self.fallback = MemoryBreaker(config, clock=clock)
        self._warned_at = -math.inf

    def _key(self, service: str) -> str:
        return self._prefix + service

    def _ms(self) -> int:
        return int(self._clock() * 1000)

    def _redis_failed(self, exc: Exception) -> None:
        now = time.monotonic()
        if now - self._warned_at >= 60:
            self._warned_at = now
            log.warning("circuit breaker: Redis did not answer (%s); deciding in-process", exc)

    async def admit(self, service: str) -> Ticket:
        c = self.config
        token = secrets.token_hex(8)
        args = [self._ms(), int(c.cool_down * 1000), int(c.probe_lease * 1000), token, self._ttl]
        try:
            reply = await self._admit([self._key(service)], as_bytes(args))
        except self._errors as exc:
            self._redis_failed(exc)
            ticket = self.fallback.admit_now(service)
            return Ticket(ticket.service, ticket.epoch, ticket.probe, local=True)
        assert isinstance(reply, list)
        if int(reply[0]) == 1:
            raise CircuitOpen(service, int(reply[1]) / 1000)
        return Ticket(service, int(reply[1]), text(reply[2]), failures=int(reply[3]))

    async def success(self, ticket: Ticket) -> None:
        # The healthy case costs one round trip, not two: a closed call that saw no failure
        # at admission has nothing to reset. (A failure reported by another call between
        # this one's admission and its success then stays counted: the count of
        # "consecutive" failures across hosts is approximate by one in that race.)
        if ticket.failures == 0 and not ticket.probe and not ticket.local:
            return
        await self._send(ticket, ok=True)

    async def failure(self, ticket: Ticket) -> None:
        await self._send(ticket, ok=False)

    async def _send(self, ticket: Ticket, *, ok: bool) -> None:
        if ticket.local:
            self.fallback.report(ticket, ok=ok)
            return
        args = [
            ticket.epoch,
            ticket.probe,
            1 if ok else 0,
            self._ms(),
            self.config.failure_threshold,
            self._ttl,
        ]
        try:
            await self._report([self._key(ticket.service)], as_bytes(args))
        except self._errors as exc:  # the report is lost; the next failures count again
            self._redis_failed(exc)

    async def status(self, service: str) -> Status:
        reply = await self._status([self._key(service)], [])
        assert isinstance(reply, list)
        opened_at, failures = reply
        if opened_at is None:
            return Status(CLOSED, int(failures or 0), 0.0)
        wait = (int(opened_at) + int(self.config.cool_down * 1000) - self._ms()) / 1000
        return Status(OPEN, 0, wait) if wait > 0 else Status(HALF_OPEN, 0, 0.0)
