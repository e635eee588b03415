"""Calling a department's upstream API: one pooled aiohttp session per worker (measured
against httpx in bench/service_proxy.py and decision 0019), the service's own timeout, no
redirect followed, no retry (a call may not be idempotent), a bound on concurrent calls per
service so that a hanging upstream holds at most that many of the worker's slots, and the
circuit breaker around it all.

Whatever goes wrong, the caller learns only which of the contract's three it was —
`502 upstream_error`, `504 upstream_timeout`, `503 unavailable` — never the upstream's
status line, headers, body or an exception's text; the log gets the kind and the status.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson

from kernel.problems import Problem
from services.breaker import Breaker, CircuitOpen
from services.package import Upstream

log = logging.getLogger("opengate.services")

MAX_ANSWER_BYTES = 4 * 1024 * 1024
JSON_TYPES = ("application/json", "text/json")


@dataclass(frozen=True, slots=True)
class UpstreamLimits:
    per_service: int = 32  # concurrent calls a worker makes to one service
    max_answer_bytes: int = MAX_ANSWER_BYTES
    connections: int = 256  # the worker's pool, across services


def upstream_error(title: str, why: str) -> Problem:
    return Problem(502, "upstream_error", f"接口服务 {title} 的上游接口{why}，请稍后重试")


def _json_type(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return media in JSON_TYPES or media.endswith("+json")


class Upstreams:
    """The worker's upstream calls. `call` answers the upstream's parsed JSON or raises
    one of the contract's Problems."""

    def __init__(self, breaker: Breaker, limits: UpstreamLimits = UpstreamLimits()) -> None:
        self.breaker = breaker
        self.limits = limits
        self._session: aiohttp.ClientSession | None = None
        self._slots: dict[str, asyncio.Semaphore] = {}

    def _client(self) -> aiohttp.ClientSession:
        # Made inside the running loop (aiohttp binds a session to it), once.
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(
                limit=self.limits.connections, ttl_dns_cache=300, keepalive_timeout=30
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                # The caller's cookies, auth and headers never reach the upstream.
                cookie_jar=aiohttp.DummyCookieJar(),
                json_serialize=lambda v: orjson.dumps(v).decode(),
                auto_decompress=True,
            )
        return self._session

    def services(self) -> list[str]:
        """The services this worker has called (their circuits are worth reporting)."""
        return list(self._slots)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def call(
        self,
        service_id: str,
        title: str,
        upstream: Upstream,
        *,
        query: Sequence[tuple[str, str]],
        body: Mapping[str, Any],
        request_id: str | None = None,
    ) -> Any:
        slots = self._slots.get(service_id)
        if slots is None:
            slots = self._slots.setdefault(service_id, asyncio.Semaphore(self.limits.per_service))
        if slots.locked():
            raise Problem(
                503,
                "unavailable",
                f"接口服务 {title} 的调用已满，请 1 秒后重试",
                headers={"Retry-After": "1"},
            )
        try:
            ticket = await self.breaker.admit(service_id)
        except CircuitOpen as exc:
            raise exc.problem(title) from None
        async with slots:
            try:
                document = await self._send(title, upstream, query, body, request_id)
            except _FailedError as failure:
                await self.breaker.failure(ticket)
                log.warning(
                    "upstream of %s failed: %s",
                    service_id,
                    failure.kind,
                    extra={"repeat_key": f"upstream:{service_id}:{failure.kind}"},
                )
                raise failure.problem from None
            except _RefusedError as refused:  # the upstream answered, about this call: not a fault
                await self.breaker.success(ticket)
                raise refused.problem from None
        await self.breaker.success(ticket)
        return document

    async def _send(
        self,
        title: str,
        upstream: Upstream,
        query: Sequence[tuple[str, str]],
        body: Mapping[str, Any],
        request_id: str | None,
    ) -> Any:
        seconds = upstream.timeout_ms / 1000
        timeout = aiohttp.ClientTimeout(total=seconds, sock_connect=min(seconds, 3.0))
        headers = {"Accept": "application/json"}
        if request_id:
            headers["X-Request-Id"] = request_id
        try:
            async with self._client().request(
                upstream.method,
                upstream.url,
                params=list(query),
                json=dict(body) if upstream.method == "POST" else None,
                headers=headers,
                timeout=timeout,
                allow_redirects=False,
            ) as answer:
                status = answer.status
                if 300 <= status < 400:
                    raise _FailedError(
                        "redirect", upstream_error(title, "返回了重定向（网关不跟随）")
                    )
                if status >= 500:
                    raise _FailedError(f"status {status}", upstream_error(title, "出错"))
                if status >= 400:
                    raise _RefusedError(upstream_error(title, f"拒绝了本次调用（{status}）"))
                if not _json_type(answer.headers.get("Content-Type", "")):
                    raise _FailedError("not json", upstream_error(title, "未返回 JSON"))
                length = answer.content_length
                if length is not None and length > self.limits.max_answer_bytes:
                    raise _FailedError("too large", upstream_error(title, "返回的内容过大"))
                raw = await answer.content.read(self.limits.max_answer_bytes + 1)
                if len(raw) > self.limits.max_answer_bytes:
                    raise _FailedError("too large", upstream_error(title, "返回的内容过大"))
        except TimeoutError:
            raise _FailedError(
                "timeout",
                Problem(504, "upstream_timeout", f"接口服务 {title} 的上游接口超时未应答"),
            ) from None
        except aiohttp.ClientError as exc:
            raise _FailedError(
                type(exc).__name__, upstream_error(title, "无法连接或连接中断")
            ) from None
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise _FailedError("bad json", upstream_error(title, "返回的 JSON 无效")) from None


class _FailedError(Exception):
    """The upstream failed: counts toward opening its circuit."""

    def __init__(self, kind: str, problem: Problem) -> None:
        self.kind = kind
        self.problem = problem


class _RefusedError(Exception):
    """The upstream answered a 4xx: about this call, not a fault of the upstream."""

    def __init__(self, problem: Problem) -> None:
        self.problem = problem
