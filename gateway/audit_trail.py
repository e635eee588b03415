"""The audit middleware: one event per audited request, stored before the response starts.

A request is audited when its route is marked `@audited(...)`, when it is refused with
401 or 403 anywhere, and when a data request is refused before it reaches its route
(rate limit, Redis down). The event is built from the route's notes, the principal and the
final status, handed to the writer and awaited: if it cannot be stored the client gets
503 `unavailable` instead of the answer (fail closed), and the next request tries again.
A streamed export writes a second event, with its row count, before its last chunk (or,
when the stream was cut short, once it ended, saying it is incomplete).

The event says what was sent: a route that ended in an exception is answered here (503 for
a database outage, else 500) and audited with that status; an event whose store took too
long is abandoned to the writer, which then stores it with the 503 the client got.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, Protocol

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from audit.events import action_of, notes, outcome_for
from audit.writer import Claim
from gateway.middleware import send_problem
from gateway.problems import HTTP_CODES, failure_problem, unavailable
from gateway.route_marks import RouteMarks

log = logging.getLogger("opengate.audit")

STORE_TIMEOUT = 10.0

UNAVAILABLE = unavailable("审计日志暂时无法写入，数据服务暂停，请稍后重试")


class AnswerRefused(Exception):  # noqa: N818 (not an error: the answer was replaced)
    """Raised into a route that goes on sending after its answer was replaced by a 503,
    so a streamed export stops reading instead of streaming into the void."""


class Sink(Protocol):
    # Data requests under way that will submit an event (the writer may wait for them).
    in_flight: int

    def submit(self, event: dict[str, Any]) -> Future[int]: ...

    def submit_async(
        self, event: dict[str, Any], claim: Claim | None = None
    ) -> asyncio.Future[int]: ...


class NullSink:
    """Stores nothing: for the audit-overhead benchmark only (OPENGATE_AUDIT_SINK=null)."""

    in_flight = 0

    def submit(self, event: dict[str, Any]) -> Future[int]:
        future: Future[int] = Future()
        future.set_result(0)
        return future

    def submit_async(
        self, event: dict[str, Any], claim: Claim | None = None
    ) -> asyncio.Future[int]:
        waiter: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        waiter.set_result(0)
        return waiter


def build_event(
    scope: Scope, status: int, action: str, resource: str | None = None
) -> dict[str, Any]:
    """`resource`: the dataset or service of a data route's request (`datasets/<id>`; the
    event's resource when the route noted none itself: a request refused before its plan
    still names its dataset the way served ones do, and never a record key, which may be
    an identity number)."""
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
        "resource": noted.get("resource") or resource or scope["path"],
        "fields": noted.get("fields"),
        "row_count": noted.get("row_count"),
        "purpose": noted.get("purpose"),
        "grant_id": noted.get("grant_id"),
        "grant_version": noted.get("grant_version"),
        "outcome": noted.get("outcome") or outcome_for(status),
        "status": status,
        "detail": detail or None,
    }


def refused_version(event: dict[str, Any]) -> dict[str, Any]:
    """`event` as it is to be stored when its client got 503 because the store was slow."""
    return {
        **event,
        "status": UNAVAILABLE.status,
        "outcome": outcome_for(UNAVAILABLE.status),
        "detail": {**(event["detail"] or {}), "error": UNAVAILABLE.code},
    }


class _Deadline:
    """Gives up on a waiter after STORE_TIMEOUT — unless the writer already holds its event
    under the head lock: then the commit is under way and is given one more period."""

    __slots__ = ("claim", "handle", "waiter")

    def __init__(self, waiter: asyncio.Future[int], claim: Claim | None) -> None:
        self.waiter = waiter
        self.claim = claim
        self.handle = waiter.get_loop().call_later(STORE_TIMEOUT, self.expire, True)

    def expire(self, again: bool) -> None:
        if self.waiter.done():
            return
        if again and self.claim is not None and not self.claim.abandon():
            self.handle = self.waiter.get_loop().call_later(STORE_TIMEOUT, self.expire, False)
            return
        self.waiter.set_exception(TimeoutError("the audit store did not answer in time"))

    def cancel(self) -> None:
        self.handle.cancel()


class AuditMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        sink: Sink,
        client_address: Callable[[Scope], str] | None = None,
        marks: RouteMarks | None = None,
    ) -> None:
        self.app = app
        self.sink = sink
        self.client_address = client_address
        self.marks = marks or RouteMarks(())

    @staticmethod
    def _action(scope: Scope, status: int, dataset: str | None) -> str | None:
        action = action_of(scope.get("endpoint"))
        if action:
            return action
        if status in (401, 403):
            return "access.denied"
        if status >= 400 and dataset is not None:
            return "data.refused"
        return None

    async def _store(self, event: dict[str, Any], *, answered: bool = True) -> bool:
        """Store `event` before its answer (`answered`: the client gets 503 if it cannot
        be, and a late event is stored as that 503)."""
        claim = Claim(refused_version(event)) if answered else None
        try:
            waiter = self.sink.submit_async(event, claim)
            if not waiter.done():
                deadline = _Deadline(waiter, claim)
                try:
                    await waiter
                finally:
                    deadline.cancel()
            waiter.result()
        except Exception as exc:  # the store is down or slow: fail closed
            log.warning(
                "audit event not stored (%s): answering 503",
                type(exc).__name__,
                extra={"repeat_key": "audit:unavailable"},
            )
            return False
        return True

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        refused = False
        started = False
        streamed: dict[str, Any] | None = None
        # A data request always ends in an event: tell the writer one is coming.
        dataset = self.marks.resource_of(scope["path"])
        # The writer waits (gathers) while data requests are in flight; an interface
        # service's call may wait seconds on its upstream, and counting it would hold every
        # other request's event that long (bench.service_isolation), so it is not counted.
        expected = dataset is not None and not dataset.startswith("services/")
        if expected:
            self.sink.in_flight += 1

        async def send_audited(message: Message) -> None:
            nonlocal refused, streamed, expected, started
            if refused:
                raise AnswerRefused
            if message["type"] == "http.response.start":
                started = True
                if expected:
                    expected = False
                    self.sink.in_flight -= 1
                status = message["status"]
                action = self._action(scope, status, dataset)
                if action is not None:
                    state = scope.setdefault("state", {})
                    if "client_ip" not in state and self.client_address is not None:
                        state["client_ip"] = self.client_address(scope)
                    event = build_event(scope, status, action, dataset)
                    if not await self._store(event):
                        refused = True
                        await send_problem(send, UNAVAILABLE, state.get("request_id"))
                        raise AnswerRefused
                    if status < 400 and "stream" in notes(scope):
                        streamed = event
            elif streamed is not None and not message.get("more_body", False):
                first, streamed = streamed, None
                await self._finish_stream(scope, first)
            await send(message)

        try:
            await self.app(scope, receive, send_audited)
        except AnswerRefused:
            pass  # answered with 503 already
        except Exception as exc:
            # Answered here, not by the outer last resort, so that the event is written
            # with the status the client gets (a route that reached its end in a 500 too).
            request_id = scope.get("state", {}).get("request_id")
            problem = failure_problem(exc, request_id)
            if not started:
                notes(scope)["error"] = problem.code
                await send_problem(send_audited, problem, request_id)
            # else: the answer was under way; it is cut short and the server closes it
        finally:
            if expected:  # ended without an answer of its own
                self.sink.in_flight -= 1
        if streamed is not None:  # the stream ended before its last chunk
            await self._finish_stream(scope, streamed)

    async def _finish_stream(self, scope: Scope, started: dict[str, Any]) -> None:
        counter = notes(scope)["stream"]
        detail = {**(started["detail"] or {}), "complete": counter.complete}
        stopped = getattr(counter, "stopped", None)
        if stopped:
            detail["stopped"] = stopped
        event = {
            **started,
            "action": f"{started['action']}.completed",
            "row_count": counter.rows,
            "detail": detail,
        }
        if not await self._store(event, answered=False):
            log.error("audit: completion of a streamed export was not stored")
