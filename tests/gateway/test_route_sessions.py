"""A state-changing route that takes a request session (`catalog.request_state.SessionDep`)
renders its own answer (`kernel.responses.answer`) instead of returning a row or model.

FastAPI validates a returned value in a second trip through the thread pool, before the
route's session is closed; on SQLite that pool has one thread and such a session holds the
write lock, so the trip can wait behind a request of the same worker that waits for that
lock (serve --workers 2 hung: tests/gateway/test_honest_failure.py
::test_concurrent_writes_on_sqlite_are_never_500)."""

from __future__ import annotations

import inspect
from collections.abc import Iterator

from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from sqlalchemy.engine import Engine
from starlette.responses import Response

from catalog.request_state import db_session
from gateway.app import create_app
from gateway.settings import Settings
from tests.gateway.test_route_table import walk

WRITES = {"POST", "PUT", "PATCH", "DELETE"}


def calls(dependant: Dependant) -> Iterator[object]:
    for sub in dependant.dependencies:
        yield sub.call
        yield from calls(sub)


def test_writing_routes_with_a_request_session_render_their_answer(
    engine: Engine, settings: Settings
) -> None:
    app = create_app(settings, engine=engine)
    checked, wrong = [], []
    for route in walk(app.routes):
        if not isinstance(route, APIRoute) or not route.methods & WRITES:
            continue
        if db_session not in set(calls(route.dependant)):
            continue
        checked.append(route.path)
        returned = inspect.signature(route.endpoint, eval_str=True).return_annotation
        if not (inspect.isclass(returned) and issubclass(returned, Response)):
            wrong.append(f"{sorted(route.methods)} {route.path} -> {returned}")
    assert "/auth/register" in checked and "/api/v1/applications" in checked, checked
    assert not wrong, wrong
