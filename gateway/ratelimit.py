"""Rate limits on `/api/`, `/oauth/` and `/auth/` (contract §7), with the `limits` library's
async API: in-process counters by default, Redis when `OPENGATE_REDIS_URL` is set, so a
limit holds across every worker and host. Moving-window strategy: exact, which the
accuracy bar needs. Every limited response carries the IETF `RateLimit-Policy` and
`RateLimit` fields; a refusal is 429 `rate_limited` with `Retry-After`.

If Redis fails, the gateway keeps answering: data of conditional datasets fails closed
(503 `unavailable`), everything else falls back to this worker's own counters with a
warning, and Redis is tried again after a second (recovery is automatic).
"""

from __future__ import annotations

import logging
import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass

from limits import RateLimitItem, parse
from limits.aio.storage import MemoryStorage, RedisStorage
from limits.aio.strategies import MovingWindowRateLimiter
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from auth.principal import Principal
from catalog.problems import Problem

log = logging.getLogger("opengate.limits")

LIMITED_PREFIXES = ("/api/", "/oauth/", "/auth/")
DATA_PATH = re.compile(r"^/api/v1/datasets/([^/]+)/(records|export|aggregate|verify)")
RETRY_REDIS_AFTER = 1.0


@dataclass(frozen=True)
class Rule:
    name: str
    item: RateLimitItem

    @property
    def policy(self) -> str:
        return f'"{self.name}";q={self.item.amount};w={self.item.get_expiry()}'


@dataclass(frozen=True)
class Verdict:
    rule: Rule
    allowed: bool
    remaining: int
    reset_in: int


class RateLimits:
    def __init__(
        self, *, anon: str, app: str, login: str, token: str, redis_url: str | None = None
    ) -> None:
        self.rules = {
            "anon": Rule("anon", parse(anon)),
            "app": Rule("app", parse(app)),
            "login": Rule("login", parse(login)),
            "token": Rule("token", parse(token)),
        }
        self._memory = MovingWindowRateLimiter(MemoryStorage())
        self._shared = None
        if redis_url:
            uri = "async+" + redis_url if not redis_url.startswith("async+") else redis_url
            self._shared = MovingWindowRateLimiter(
                RedisStorage(
                    uri, implementation="redispy", socket_timeout=0.5, socket_connect_timeout=0.5
                )
            )
        self._redis_down_until = 0.0

    async def hit(self, rule_name: str, key: str, *, fail_closed: bool) -> Verdict:
        rule = self.rules[rule_name]
        limiter = self._memory
        if self._shared is not None:
            if time.monotonic() >= self._redis_down_until:
                try:
                    return await self._check(self._shared, rule, key)
                except Exception as exc:  # any storage failure: Redis is down or unreachable
                    self._redis_down_until = time.monotonic() + RETRY_REDIS_AFTER
                    log.warning(
                        "Redis unavailable for rate limits (%s); falling back", type(exc).__name__
                    )
            if fail_closed:
                raise Problem(
                    503,
                    "unavailable",
                    "限流服务暂不可用，有条件开放数据暂停服务",
                    headers={"Retry-After": "1"},
                )
        return await self._check(limiter, rule, key)

    async def _check(self, limiter: MovingWindowRateLimiter, rule: Rule, key: str) -> Verdict:
        allowed = await limiter.hit(rule.item, rule.name, key)
        stats = await limiter.get_window_stats(rule.item, rule.name, key)
        reset_in = max(0, math.ceil(stats.reset_time - time.time()))
        return Verdict(rule, allowed, stats.remaining, reset_in)


def _headers(verdict: Verdict) -> list[tuple[bytes, bytes]]:
    rule = verdict.rule
    return [
        (b"ratelimit-policy", rule.policy.encode()),
        (b"ratelimit", f'"{rule.name}";r={verdict.remaining};t={verdict.reset_in}'.encode()),
    ]


class RateLimitMiddleware:
    """Runs after authentication (it keys apps by client_id) and before the routes."""

    def __init__(
        self,
        app: ASGIApp,
        limits: RateLimits,
        client_address: Callable[[Scope], str],
        is_conditional: Callable[[str], bool],
    ) -> None:
        self.app = app
        self.limits = limits
        self.client_address = client_address
        self.is_conditional = is_conditional

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        ip = self.client_address(scope)
        scope["state"]["client_ip"] = ip
        path: str = scope["path"]
        if not path.startswith(LIMITED_PREFIXES):
            await self.app(scope, receive, send)
            return
        principal: Principal | None = scope["state"].get("principal")
        data = DATA_PATH.match(path)
        fail_closed = bool(data) and self.is_conditional(data.group(1))  # type: ignore[union-attr]
        from gateway.middleware import send_problem

        try:
            if path == "/auth/login" or path == "/oauth/token":
                strict = await self.limits.hit(
                    "login" if path == "/auth/login" else "token", ip, fail_closed=False
                )
                if not strict.allowed:
                    await self._refuse(send, scope, strict)
                    return
            if principal is not None and principal.client_id:
                verdict = await self.limits.hit("app", principal.client_id, fail_closed=fail_closed)
            elif principal is not None:
                verdict = await self.limits.hit(
                    "app", f"user:{principal.subject}", fail_closed=fail_closed
                )
            else:
                verdict = await self.limits.hit("anon", ip, fail_closed=fail_closed)
        except Problem as problem:
            await send_problem(send, problem, scope["state"].get("request_id"))
            return
        if not verdict.allowed:
            await self._refuse(send, scope, verdict)
            return
        extra = _headers(verdict)

        async def send_with_limits(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), *extra]
            await send(message)

        await self.app(scope, receive, send_with_limits)

    async def _refuse(self, send: Send, scope: Scope, verdict: Verdict) -> None:
        from gateway.middleware import send_problem

        retry = max(1, verdict.reset_in)
        problem = Problem(
            429,
            "rate_limited",
            f"超出“{verdict.rule.name}”限流（{verdict.rule.item.amount} 次 / "
            f"{verdict.rule.item.get_expiry()} 秒），请 {retry} 秒后重试",
            headers={
                "Retry-After": str(retry),
                "RateLimit-Policy": verdict.rule.policy,
                "RateLimit": f'"{verdict.rule.name}";r=0;t={retry}',
            },
            limit=verdict.rule.name,
        )
        await send_problem(send, problem, scope["state"].get("request_id"))
