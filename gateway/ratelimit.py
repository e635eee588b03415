"""Rate limits on `/api/`, `/oauth/`, `/auth/` (contract §7) and the web pages, moving
window (exact, which the accuracy bar needs): in-process counters (`gateway.moving_window`,
this worker's own) by default, Redis when `OPENGATE_REDIS_URL` is set, so a limit holds
across every worker and host.

A request must fit in every window that applies to it: its caller's (anonymous address,
app or signed-in user), its route group's (data, auth, admin; per caller) and, for sign-in
and token requests, the strict per-address one. A web page (portal, console, admin, audit,
我的授权: every path outside the API but static files, probes and the API's documents)
counts in the `web` window of its caller instead — the signed-in account of its session, or
the client address when anonymous — and is refused with a Chinese HTML page. A request is
admitted only if all of its windows have room, and then counted in all of them. With
Redis that is one round trip: one Lua script checks, counts and reads the windows back, on
`limits`' own keys and lists, sent through `gateway.redis_pipe` (a pipelined connection;
redis-py's client cost four to six times the CPU a call — decision 0005). Every limited
response carries the IETF `RateLimit-Policy` and `RateLimit` fields of the window closest
to running out; a refusal is 429 `rate_limited` with `Retry-After`.

If Redis fails, the gateway keeps answering: data of conditional datasets fails closed
(503 `unavailable`), everything else falls back to this worker's own counters with a
warning, and one request a second probes Redis again (recovery is automatic).
"""

from __future__ import annotations

import logging
import math
import re
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from limits import RateLimitItem, parse
from limits.aio.storage import RedisStorage
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from auth.principal import Principal
from gateway.middleware import send_problem
from gateway.moving_window import MovingWindows
from gateway.redis_pipe import ScriptRunner
from gateway.route_marks import RouteMarks
from kernel.problems import Problem
from portal.refusal import refusal_page
from portal.templating import STATIC_PREFIX

if TYPE_CHECKING:
    from gateway.settings import Settings

log = logging.getLogger("opengate.limits")

LIMITED_PREFIXES = ("/api/", "/oauth/", "/auth/")
# Outside the API, what no page window counts: static files (a page's styles and scripts
# are not requests of their own), the probes a load balancer sends, the API's documentation
# and machine documents (never limited, as before the pages were: tests/gateway/
# test_rate_limits.py). "/docs" and "/redoc" cover their assets too.
UNCOUNTED_PREFIXES = (
    STATIC_PREFIX + "/",
    "/docs",
    "/redoc",
    "/favicon.ico",
    "/healthz",
    "/readyz",
    "/metrics",  # scraped by Prometheus every few seconds; optionally behind a token
    "/openapi.json",
    "/.well-known/",
)
# The data group is the routes marked as data (gateway/route_marks.py); every one of them
# fails closed on a conditional dataset without Redis.
# Administration: grants, applications, apps, the signed-in account, the audit log.
ADMIN_PATH = re.compile(r"^/api/v1/(?:admin|applications|apps|me|audit)(?:/|$)")
AUTH_PREFIXES = ("/auth/", "/oauth/")
RETRY_REDIS_AFTER = 1.0
REDIS_TIMEOUT = 0.5  # seconds without an answer before Redis counts as down

# One request against several moving windows, atomically, in one round trip. The lists are
# limits' own (a float timestamp per entry, newest first, at most `limit` long), so limits'
# MovingWindowRateLimiter reads and clears them as its own. Entries that have left the
# window are popped off the tail first (each once), so a list holds exactly its window:
# the count is its length and the oldest entry its last, with no search.
# ARGV: now, then limit and expiry for each key. Admitted only if every window has room,
# and then counted in every window. Returns {admitted, count_1, oldest_1, count_2, ...}
# (the oldest entry as the stored string: Lua numbers become integers on the way out).
HIT_WINDOWS = """
local now = tonumber(ARGV[1])
local admitted = 1
local counts, oldest = {}, {}
for i, key in ipairs(KEYS) do
  local floor = now - tonumber(ARGV[i * 2 + 1])
  local last = redis.call('lindex', key, -1)
  while last and tonumber(last) < floor do
    redis.call('rpop', key)
    last = redis.call('lindex', key, -1)
  end
  counts[i] = redis.call('llen', key)
  oldest[i] = last or ARGV[1]
  if counts[i] >= tonumber(ARGV[i * 2]) then
    admitted = 0
  end
end
local result = {admitted}
for i, key in ipairs(KEYS) do
  if admitted == 1 then
    redis.call('lpush', key, ARGV[1])
    redis.call('expire', key, tonumber(ARGV[i * 2 + 1]))
    counts[i] = counts[i] + 1
  end
  result[#result + 1] = counts[i]
  result[#result + 1] = oldest[i]
end
return result
"""


@dataclass(frozen=True)
class Rule:
    name: str
    item: RateLimitItem

    def __post_init__(self) -> None:
        # Read on every request: computed once (limits builds them anew each call).
        object.__setattr__(self, "amount", self.item.amount)
        object.__setattr__(self, "seconds", self.item.get_expiry())
        probe = self.item.key_for(self.name, "\0")
        object.__setattr__(self, "_key_parts", probe.split("\0"))

    amount: int = field(init=False, repr=False, compare=False)
    seconds: int = field(init=False, repr=False, compare=False)
    _key_parts: list[str] = field(init=False, repr=False, compare=False)

    def key_for(self, who: str) -> str:
        """limits' key of `who`'s counter (`item.key_for(name, who)`, the same string)."""
        head, tail = self._key_parts
        return head + who + tail

    @property
    def policy(self) -> str:
        return f'"{self.name}";q={self.item.amount};w={self.item.get_expiry()}'

    def covers(self, other: Rule) -> bool:
        """Counted on the same key, `other` can never refuse before this rule: same window,
        no smaller amount, and every request counted in `other` is counted here too."""
        return (
            other.item.get_expiry() == self.item.get_expiry()
            and other.item.amount >= self.item.amount
        )


@dataclass(frozen=True)
class Check:
    """One window a request must fit in: a rule, and whose counter (limits' key)."""

    rule: Rule
    key: str


@dataclass(frozen=True)
class Verdict:
    rule: Rule
    allowed: bool
    remaining: int
    reset_in: int


def is_page(path: str) -> bool:
    """A web page request (counted in the `web` window), not an API one or an asset."""
    return not path.startswith(LIMITED_PREFIXES) and not path.startswith(UNCOUNTED_PREFIXES)


def route_group(path: str, *, data: bool) -> str | None:
    """`data` (a route marked as data), `auth`, `admin`, or None (catalog and the rest: the
    caller's limit only)."""
    if path.startswith(AUTH_PREFIXES):
        return "auth"
    if data:
        return "data"
    if ADMIN_PATH.match(path):
        return "admin"
    return None


def _verdict(
    checks: Sequence[Check], admitted: bool, windows: Sequence[tuple[int, float]]
) -> Verdict:
    """From each window's (entries, oldest entry): the refusing window, or the one with the
    fewest requests left (the first on a tie: the caller's own limit)."""
    now = time.time()
    best: Verdict | None = None
    for check, (count, oldest) in zip(checks, windows, strict=True):
        rule = check.rule
        remaining = max(0, rule.amount - count)
        reset_in = max(0, math.ceil(oldest + rule.seconds - now))
        if not admitted and remaining == 0:
            return Verdict(check.rule, False, 0, reset_in)
        if best is None or remaining < best.remaining:
            best = Verdict(check.rule, admitted, remaining, reset_in)
    assert best is not None
    return best


class RateLimits:
    def __init__(
        self,
        *,
        anon: str,
        app: str,
        login: str,
        token: str,
        data: str | None = None,
        auth: str | None = None,
        admin: str | None = None,
        web: str | None = None,
        redis_url: str | None = None,
        enabled: bool = True,
        prefix: str = RedisStorage.PREFIX,
    ) -> None:
        self.enabled = enabled
        self.rules = {
            name: Rule(name, parse(rate))
            for name, rate in {
                "anon": anon,
                "app": app,
                "login": login,
                "token": token,
                "data": data,
                "auth": auth,
                "admin": admin,
                "web": web,
            }.items()
            if rate
        }
        self._memory = MovingWindows()
        # limits' key prefix: its RedisStorage and MovingWindowRateLimiter (given the same
        # `key_prefix`) read these.
        self._prefix = prefix + ":"
        self._redis: ScriptRunner | None = None
        if redis_url and enabled:
            self._redis = ScriptRunner(redis_url, HIT_WINDOWS, timeout=REDIS_TIMEOUT)
        self._redis_up = True
        self._retry_redis_at = 0.0
        self._probing = False

    @classmethod
    def from_settings(cls, settings: Settings) -> RateLimits:
        return cls(
            anon=settings.rate_anon,
            app=settings.rate_app,
            login=settings.rate_login,
            token=settings.rate_token,
            data=settings.rate_data,
            auth=settings.rate_auth,
            admin=settings.rate_admin,
            web=settings.rate_web,
            redis_url=settings.redis_url,
            enabled=settings.rate_limits_enabled,
            prefix=settings.rate_limit_prefix,
        )

    def plan(
        self, principal: Principal | None, ip: str, group: str | None, strict: str | None = None
    ) -> list[Check]:
        """The windows a request must fit in: the caller's own first, then its route
        group's (per caller) and its strict window (`login`, `token`; per address)."""
        if principal is None:
            caller, who = self.rules["anon"], ip
        else:
            caller = self.rules["app"]
            who = principal.client_id or f"user:{principal.subject}"
        checks = [Check(caller, caller.key_for(who))]
        grouped = self.rules.get(group or "")
        if grouped is not None and not caller.covers(grouped):
            checks.append(Check(grouped, grouped.key_for(who)))
        strictly = self.rules.get(strict or "")
        if strictly is not None:
            checks.append(Check(strictly, strictly.key_for(ip)))
        return checks

    def page_plan(self, account: str | None, ip: str, strict: str | None = None) -> list[Check]:
        """The windows of a web page: its caller's `web` window (the signed-in account,
        `account`, or else the address; never the API caller's counter) and its strict one."""
        checks = []
        web = self.rules.get("web")
        if web is not None:
            checks.append(Check(web, web.key_for(account or ip)))
        strictly = self.rules.get(strict or "")
        if strictly is not None:
            checks.append(Check(strictly, strictly.key_for(ip)))
        return checks

    async def admit(
        self, principal: Principal | None, ip: str, group: str | None, *, fail_closed: bool
    ) -> Problem | None:
        """Count one request of `group` for this caller; its refusal (429, or 503 when the
        limiter is down and `fail_closed`), or None. For a channel that is not a limited
        route (the page preview counts as a `/records` request)."""
        if not self.enabled:
            return None
        try:
            verdict = await self.hit(self.plan(principal, ip, group), fail_closed=fail_closed)
        except Problem as problem:
            return problem
        return None if verdict.allowed else refusal(verdict)

    async def hit(self, checks: Sequence[Check], *, fail_closed: bool) -> Verdict:
        if self._redis is not None:
            if self._redis_up:
                return await self._shared_or_fallback(checks, fail_closed=fail_closed)
            if not self._probing and time.monotonic() >= self._retry_redis_at:
                self._probing = True  # this request probes Redis; the others do not wait
                try:
                    return await self._shared_or_fallback(checks, fail_closed=fail_closed)
                finally:
                    self._probing = False
            if fail_closed:
                raise limiter_unavailable()
        return await self._hit_memory(checks)

    async def _shared_or_fallback(self, checks: Sequence[Check], *, fail_closed: bool) -> Verdict:
        try:
            verdict = await self._hit_redis(checks)
        except Exception as exc:  # any storage failure: Redis is down or unreachable
            self._retry_redis_at = time.monotonic() + RETRY_REDIS_AFTER
            if self._redis_up:
                self._redis_up = False
                log.warning(
                    "Redis unavailable for rate limits (%s); per-worker limits until it is back",
                    type(exc).__name__,
                )
            if fail_closed:
                raise limiter_unavailable() from None
            return await self._hit_memory(checks)
        if not self._redis_up:
            self._redis_up = True
            log.warning("Redis is back; rate limits are shared again")
        return verdict

    async def _hit_redis(self, checks: Sequence[Check]) -> Verdict:
        assert self._redis is not None
        args = [repr(time.time()).encode()]
        for check in checks:
            args += (b"%d" % check.rule.amount, b"%d" % check.rule.seconds)
        result = await self._redis([self._prefix + c.key for c in checks], args)
        assert isinstance(result, list)
        windows = [(int(result[i]), float(result[i + 1])) for i in range(1, len(result), 2)]
        return _verdict(checks, bool(result[0]), windows)

    async def _hit_memory(self, checks: Sequence[Check]) -> Verdict:
        """The same on this worker's own counters."""
        admitted, windows = self._memory.hit(
            [(c.key, c.rule.amount, c.rule.seconds) for c in checks]
        )
        return _verdict(checks, admitted, windows)


def refusal(verdict: Verdict) -> Problem:
    """The 429 of a refused verdict (a route's, and the page preview's)."""
    retry = max(1, verdict.reset_in)
    return Problem(
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


def limiter_unavailable() -> Problem:
    return Problem(
        503,
        "unavailable",
        "限流服务暂不可用，有条件开放数据暂停服务",
        headers={"Retry-After": "1"},
    )


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
        marks: RouteMarks,
        web_account: Callable[[Scope], Awaitable[str | None]] | None = None,
    ) -> None:
        """`web_account(scope)`: the key of the signed-in account of a page request's web
        session (the web layer's), or None when anonymous."""
        self.app = app
        self.limits = limits
        self.client_address = client_address
        self.is_conditional = is_conditional
        self.marks = marks
        self.web_account = web_account

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        ip = self.client_address(scope)
        scope["state"]["client_ip"] = ip
        path: str = scope["path"]
        strict = self.marks.strict_rule(scope["method"], path)
        page = is_page(path)
        # A sign-in anywhere (the web form /login included) counts in the one login window.
        if not self.limits.enabled or (
            strict is None and not page and not path.startswith(LIMITED_PREFIXES)
        ):
            await self.app(scope, receive, send)
            return
        fail_closed = False
        if page:
            account = await self.web_account(scope) if self.web_account is not None else None
            checks = self.limits.page_plan(account, ip, strict)
        else:
            principal: Principal | None = scope["state"].get("principal")
            dataset = self.marks.dataset_of(path)
            fail_closed = dataset is not None and self.is_conditional(dataset)
            group = route_group(path, data=dataset is not None)
            checks = self.limits.plan(principal, ip, group, strict)
        if not checks:
            await self.app(scope, receive, send)
            return
        try:
            verdict = await self.limits.hit(checks, fail_closed=fail_closed)
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
        problem = refusal(verdict)
        if not scope["path"].startswith(LIMITED_PREFIXES):  # a web page: a page, in Chinese
            await send_html(send, problem, page_refusal(verdict))
            return
        await send_problem(send, problem, scope["state"].get("request_id"))


def page_refusal(verdict: Verdict) -> str | None:
    """What a person reads when the page window refuses: in words, not the window's name
    (None: another window refused, the problem's own text)."""
    if verdict.rule.name != "web":
        return None
    retry = max(1, verdict.reset_in)
    return (
        f"访问过于频繁（每 {verdict.rule.seconds} 秒最多打开 {verdict.rule.amount} 个页面），"
        f"请 {retry} 秒后再试。"
    )


async def send_html(send: Send, problem: Problem, message: str | None = None) -> None:
    body = refusal_page(message or problem.detail, title="操作过于频繁").encode()
    headers = [
        (b"content-type", b"text/html; charset=utf-8"),
        (b"content-length", str(len(body)).encode()),
        *((k.lower().encode(), v.encode()) for k, v in problem.headers.items()),
    ]
    await send({"type": "http.response.start", "status": problem.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
