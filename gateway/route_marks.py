"""What the middlewares must know of a route before routing, read from the routes' marks.

A data route carries the `data` tag (`DATA_TAG`, set on the data routers); a route counted
in a strict per-address window carries `auth.strict_limits.strict_limit(...)`. The audit
and rate-limit middlewares run before the router, so they match the marked routes' own
path patterns: one table, built from the app's routes at startup, and nothing listed by
hand a second time (tests/gateway/test_data_routes.py walks the routes against it).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator
from typing import Any

from fastapi.routing import APIRoute
from starlette.routing import BaseRoute

from auth.strict_limits import strict_limit_of

DATA_TAG = "data"


def routes_in(routes: Iterable[BaseRoute]) -> Iterator[BaseRoute]:
    """Every route in routing order, included routers walked into (FastAPI resolves their
    routes only when it handles a request)."""
    for route in routes:
        included: Any = getattr(route, "original_router", None)
        if included is not None:
            yield from routes_in(included.routes)
        else:
            yield route


class RouteMarks:
    def __init__(self, routes: Iterable[BaseRoute]) -> None:
        self.data_routes: list[APIRoute] = []
        self._strict: dict[tuple[str, str], str] = {}
        for route in routes_in(routes):
            if not isinstance(route, APIRoute):
                continue
            if DATA_TAG in route.tags:
                if "{dataset_id}" not in route.path:
                    raise ValueError(f"data route {route.path} names no {{dataset_id}}")
                self.data_routes.append(route)
            rule = strict_limit_of(route.endpoint)
            if rule is not None:
                if "{" in route.path:
                    raise ValueError(f"strictly limited route {route.path} has parameters")
                for method in route.methods:
                    self._strict[(method, route.path)] = rule
        # A data route's pattern also takes what follows it after a "/": a request for
        # `…/records/<key>/more` is about that dataset too (its resource in the audit log,
        # never the raw key), as the path prefixes did before the marks.
        self._data = [
            re.compile(r.path_regex.pattern.removesuffix("$") + "(?:/|$)") for r in self.data_routes
        ]
        # The literal start every data path shares: other requests skip the patterns.
        paths = [r.path for r in self.data_routes]
        common = os.path.commonprefix(paths)  # noqa: RUF071 (characters, as meant)
        self._prefix = common.split("{", 1)[0] if paths else "\0"

    def dataset_of(self, path: str) -> str | None:
        """The dataset a request to a data route is about; None for any other route."""
        if not path.startswith(self._prefix):
            return None
        for pattern in self._data:
            match = pattern.match(path)
            if match is not None:
                return match.group("dataset_id")
        return None

    def strict_rule(self, method: str, path: str) -> str | None:
        """The strict per-address window (`login`, `token`) this request also counts in."""
        return self._strict.get((method, path))
