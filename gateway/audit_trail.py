"""The audit middleware: one event per audited request, stored before the response starts.

A request is audited when its route is marked `@audited(...)`, when it is refused with
401 or 403 anywhere, and when a data request is refused before it reaches its route
(rate limit, Redis down). The event is built from the route's notes, the principal and the
final status, handed to the writer and awaited: if it cannot be stored the client gets
503 `unavailable` instead of the answer (fail closed), and the next request tries again.
A streamed export writes a second event, with its row count, before its last chunk.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, Protocol

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from audit.events import action_of, notes, outcome_for
from catalog.problems import Problem
from gateway.middleware import send_problem
from gateway.problems import HTTP_CODES

log = logging.getLogger("opengate.audit")

DATA_PATH = re.compile(r"^/api/v1/datasets/([^/]+)/(records|export|aggregate|verify)(/|$)")
# Record keys may be identity numbers: never in an event.
RECORD_KEY = re.compile(r"^(/api/v1/datasets/[^/]+/records/)[^/]+$")
STORE_TIMEOUT = 10.0

UNAVAILABLE = Problem(503, "unavailable", "审计日志暂时无法写入，数据服务暂停，请稍后重试")


class Sink(Protocol):
    # Data requests under way that will submit an event (the writer may wait for them).
    in_flight: int

    def submit(self, event: dict[str, Any]) -> Future[int]: ...

    def submit_async(self, event: dict[str, Any]) -> asyncio.Future[int]: ...


class NullSink:
    """Stores nothing: for the audit-overhead benchmark only (OPENGATE_AUDIT_SINK=null)."""

    in_flight = 0

    def submit(self, event: dict[str, Any]) -> Future[int]:
        future: Future[int] = Future()
        future.set_result(0)
        return future

    def submit_async(self, event: dict[str, Any]) -> asyncio.Future[int]:
        waiter: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        waiter.set_result(0)
        return waiter


def build_event(scope: Scope, status: int, action: str) -> dict[str, Any]:
    state = scope.get("state", {})
    noted = state.get("audit", {})
    principal = state.get("principal")
    detail = dict(noted.get("detail") or {})
    if "error" in noted:
        detail["error"] = noted["error"]
    elif status >= 400:  # refused by a middleware, which renders its problem itself
        detail["error"] = HTTP_CODES.get(status, "error")
    client = scope.get("client")
    return {
        "request_id": state.get("request_id"),
        "actor": noted.get("actor") or (principal.actor if principal else "anonymous"),
        "client_id": noted.get("client_id") or (principal.client_id if principal else None),
        "ip": state.get("client_ip") or (client[0] if client else None),
        "action": noted.get("action") or action,
        "resource": noted.get("resource") or _resource_of(scope["path"]),
        "fields": noted.get("fields"),
        "row_count": noted.get("row_count"),
        "purpose": noted.get("purpose"),
        "grant_id": noted.get("grant_id"),
        "grant_version": noted.get("grant_version"),
        "outcome": noted.get("outcome") or outcome_for(status),
        "status": status,
        "detail": detail or None,
    }


def _resource_of(path: str) -> str:
    """What a request that noted nothing itself was about. A data request refused before
    its plan (no grant, rate limited, audit store down) still names its dataset the way
    served ones do, so an auditor's search by dataset finds the refusals too."""
    data = DATA_PATH.match(path)
    if data is not None:
        return f"datasets/{data.group(1)}"
    return RECORD_KEY.sub(r"\1{key}", path)


def _expire(waiter: asyncio.Future[int]) -> None:
    if not waiter.done():
        waiter.set_exception(TimeoutError("the audit store did not answer in time"))


class AuditMiddleware:
    def __init__(
        self, app: ASGIApp, sink: Sink, client_address: Callable[[Scope], str] | None = None
    ) -> None:
        self.app = app
        self.sink = sink
        self.client_address = client_address

    def _action(self, scope: Scope, status: int) -> str | None:
        action = action_of(scope.get("endpoint"))
        if action:
            return action
        if status in (401, 403):
            return "access.denied"
        if status >= 400 and DATA_PATH.match(scope["path"]):
            return "data.refused"
        return None

    async def _store(self, event: dict[str, Any]) -> bool:
        try:
            waiter = self.sink.submit_async(event)
            if not waiter.done():
                timer = waiter.get_loop().call_later(STORE_TIMEOUT, _expire, waiter)
                try:
                    await waiter
                finally:
                    timer.cancel()
            waiter.result()
        except Exception as exc:  # the store is down or slow: fail closed
            log.warning("audit event not stored (%s): answering 503", type(exc).__name__)
            return False
        return True

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        refused = False
        streamed: dict[str, Any] | None = None
        # A data request always ends in an event: tell the writer one is coming.
        expected = DATA_PATH.match(scope["path"]) is not None
        if expected:
            self.sink.in_flight += 1

        async def send_audited(message: Message) -> None:
            nonlocal refused, streamed, expected
            if refused:
                return
            if message["type"] == "http.response.start":
                if expected:
                    expected = False
                    self.sink.in_flight -= 1
                status = message["status"]
                action = self._action(scope, status)
                if action is not None:
                    state = scope.setdefault("state", {})
                    if "client_ip" not in state and self.client_address is not None:
                        state["client_ip"] = self.client_address(scope)
                    event = build_event(scope, status, action)
                    if not await self._store(event):
                        refused = True
                        await send_problem(send, UNAVAILABLE, state.get("request_id"))
                        return
                    if "stream" in notes(scope):
                        streamed = event
            elif streamed is not None and not message.get("more_body", False):
                await self._finish_stream(scope, streamed)
            await send(message)

        try:
            await self.app(scope, receive, send_audited)
        finally:
            if expected:  # ended without an answer of its own
                self.sink.in_flight -= 1

    async def _finish_stream(self, scope: Scope, started: dict[str, Any]) -> None:
        counter = notes(scope)["stream"]
        event = {
            **started,
            "action": f"{started['action']}.completed",
            "row_count": counter.rows,
            "detail": {**(started["detail"] or {}), "complete": counter.complete},
        }
        if not await self._store(event):
            log.error("audit: completion of a streamed export was not stored")
