"""The data routes' route class: their endpoint called without FastAPI's per-request
dependency resolution.

The data endpoints take only string path parameters and the request (they read the query
string themselves, gateway/data_api.py). For such an endpoint FastAPI still solves its
dependency tree on every request — an argument dict, each path parameter validated by
pydantic as the `str` it already is, response bookkeeping — about as much as the records
route's own enforcement costs. `DirectRoute` keeps everything else of an `APIRoute` (the
signature still documents the parameters in the OpenAPI document, matching, the
exception handling around it) and calls such an endpoint with `request.path_params` and
the request, in the thread pool as FastAPI would. An endpoint of any other shape (a
query, header or body parameter, a dependency, a coroutine) is handled by FastAPI as
usual.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import routing
from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response


def _effective_dependant(route: APIRoute) -> Any:
    """The dependant FastAPI builds this handler for: the route's own, or, while an
    included router builds it, the inclusion's (with the including routers' dependencies)."""
    context_var = getattr(routing, "_effective_route_context_var", None)
    context = context_var.get() if context_var is not None else None
    if context is not None and getattr(context, "original_route", None) is route:
        return context.dependant
    return route.dependant


def _direct(dependant: Any, endpoint: Callable[..., Any]) -> list[str] | None:
    """The path parameter names to pass, if `endpoint` can be called directly."""
    if (
        inspect.iscoroutinefunction(endpoint)
        or dependant.request_param_name is None
        or dependant.query_params
        or dependant.header_params
        or dependant.cookie_params
        or dependant.body_params
        or dependant.dependencies
        or dependant.websocket_param_name
        or dependant.http_connection_param_name
        or dependant.response_param_name
        or dependant.background_tasks_param_name
        or dependant.security_scopes_param_name
    ):
        return None
    params = list(inspect.signature(endpoint).parameters.values())
    names = [p.name for p in dependant.path_params]
    for param in params:
        if param.name == dependant.request_param_name:
            continue
        if param.name not in names or param.annotation not in (str, "str"):
            return None
    return names


class DirectRoute(APIRoute):
    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        names = _direct(_effective_dependant(self), self.endpoint)
        if names is None:
            return super().get_route_handler()
        endpoint = self.endpoint
        request_name = _effective_dependant(self).request_param_name

        async def handler(request: Request) -> Response:
            path = request.path_params
            arguments = {name: path[name] for name in names}
            arguments[request_name] = request
            return await run_in_threadpool(endpoint, **arguments)

        return handler
