"""`/metrics` in Prometheus' text format (prometheus-client): requests by route group and
status, their latency, rate-limit refusals, the audit writer's batches (size, commit
seconds, what is still queued), the interface services' circuits, rows imported here.

Counting is a dictionary lookup and an add per request in `RequestContextMiddleware`
(bench/metrics_cost.py measures it against a records request). With several workers
(`opengate serve --workers N`) each process writes its figures to files in
`PROMETHEUS_MULTIPROC_DIR` (set by `serve`) and whichever worker answers the scrape adds
them up, so one scrape sees the installation's host, not one worker. Not rate limited;
behind `OPENGATE_METRICS_TOKEN` (a bearer token Prometheus sends) when set.
"""

from __future__ import annotations

import hmac
import os
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from starlette.responses import Response

from gateway.ratelimit import route_group
from gateway.route_marks import RouteMarks
from kernel.problems import Problem

MULTIPROCESS = "PROMETHEUS_MULTIPROC_DIR"

REQUESTS = Counter(
    "opengate_requests_total", "Requests answered, by route group and status", ["group", "status"]
)
LATENCY = Histogram(
    "opengate_request_duration_seconds",
    "Time to answer a request, by route group",
    ["group"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
RATE_LIMITED = Counter(
    "opengate_rate_limited_total", "Requests refused by a rate limit, by route group", ["group"]
)
AUDIT_EVENTS = Counter("opengate_audit_events_total", "Audit events stored by this host")
AUDIT_COMMIT = Histogram(
    "opengate_audit_commit_seconds",
    "Time to link and commit one batch of audit events",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1),
)
AUDIT_QUEUE = Gauge(
    "opengate_audit_queue_depth",
    "Audit events queued and not yet stored, after the last batch",
    multiprocess_mode="livesum",
)
CIRCUIT = Gauge(
    "opengate_service_circuit_state",
    "Interface service circuits: 0 closed, 1 half-open, 2 open",
    ["service"],
    multiprocess_mode="livemax",
)
IMPORTED_ROWS = Counter(
    "opengate_import_rows_total", "Rows imported through this host (the console)", ["dataset"]
)
CIRCUIT_STATES = {"closed": 0, "half_open": 1, "open": 2}


def worker_stopped() -> None:
    """A worker's live gauges leave the sum when it stops (multiprocess mode)."""
    if os.environ.get(MULTIPROCESS):
        multiprocess.mark_process_dead(os.getpid())


def observe_audit(events: int, seconds: float, queued: int) -> None:
    """The audit writer's `observe` hook (its thread, after each batch)."""
    AUDIT_EVENTS.inc(events)
    AUDIT_COMMIT.observe(seconds)
    AUDIT_QUEUE.set(queued)


class RequestMetrics:
    """What RequestContextMiddleware records per request: one counter and one histogram
    child, looked up by (group, status) once and kept."""

    def __init__(self, marks: Callable[[], RouteMarks | None]) -> None:
        self._marks = marks  # the route table exists only once every router is included
        self._requests: dict[tuple[str, int], Any] = {}
        self._latency: dict[str, Any] = {}

    def group(self, path: str) -> str:
        marks = self._marks()
        data = marks is not None and marks.dataset_of(path) is not None
        named = route_group(path, data=data)
        if named is not None:
            return named
        if path.startswith("/api/"):
            return "api"
        if path.startswith(("/static/", "/docs", "/redoc", "/openapi.json", "/favicon.ico")):
            return "docs_static"
        if path in ("/metrics", "/healthz", "/readyz"):
            return "probes"
        return "web"

    def record(self, path: str, status: int, seconds: float) -> None:
        group = self.group(path)
        key = (group, status)
        counter = self._requests.get(key)
        if counter is None:
            counter = self._requests[key] = REQUESTS.labels(group, str(status))
        counter.inc()
        histogram = self._latency.get(group)
        if histogram is None:
            histogram = self._latency[group] = LATENCY.labels(group)
        histogram.observe(seconds)
        if status == 429:
            RATE_LIMITED.labels(group).inc()


router = APIRouter(include_in_schema=False)


@router.get("/metrics")
async def metrics(request: Request) -> Response:
    token = request.app.state.settings.metrics_token
    if token is not None:
        given = request.headers.get("authorization", "")
        expected = f"Bearer {token.get_secret_value()}"
        if not hmac.compare_digest(given.encode(), expected.encode()):
            raise Problem(401, "unauthorized", "需要监控令牌（OPENGATE_METRICS_TOKEN）")
    upstreams = getattr(request.app.state, "upstreams", None)
    if upstreams is not None:
        for service in upstreams.services():
            status = await upstreams.breaker.status(service)
            CIRCUIT.labels(service).set(CIRCUIT_STATES.get(status.state, 0))
    if os.environ.get(MULTIPROCESS):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    else:
        registry = REGISTRY
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
