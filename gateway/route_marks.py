"""What the middlewares must know of a route before routing, read from the routes' marks.

A data route carries the `data` tag (`DATA_TAG`, set on the data routers); a route counted
in a strict per-address window carries `auth.strict_limits.strict_limit(...)`. The audit
and rate-limit middlewares run before the router, so they match the marked routes' own
path patterns: one table, built from the app's routes at startup, and nothing listed by
hand a second time (tests/gateway/test_data_routes.py walks the routes against it).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from typing import Any

from fastapi.routing import APIRoute
from starlette.routing import BaseRoute

from auth.strict_limits import strict_limit_of

DATA_TAG = "data"
# The path parameter naming what a data route serves, and its kind in the audit log.
KINDS = {"dataset_id": "datasets", "service_id": "services"}


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
                if not any(f"{{{name}}}" in route.path for name in KINDS):
                    raise ValueError(f"data route {route.path} names no {{dataset_id}}")
                self.data_routes.append(route)
            rule = strict_limit_of(route.endpoint)
            if rule is not None:
                if "{" in route.path:
                    raise ValueError(f"strictly limited route {route.path} has parameters")
                for method in route.methods:
                    self._strict[(method, route.path)] = rule
        # One pattern for them all (the hot path matches it twice a request): each route's
        # own, its dataset id the only group, and what follows after a "/" taken too — a
        # request for `…/records/<key>/more` is about that dataset (its resource in the
        # audit log, never the raw key), as the path prefixes did before the marks.
        # Routes sharing what comes before their id are factored into
        # `^head([^/]+)(?:tail|tail…)`, which costs what one route's pattern does.
        parts = []
        for route in self.data_routes:
            pattern = route.path_regex.pattern.removeprefix("^").removesuffix("$")
            named = [(n, k) for n, k in KINDS.items() if f"(?P<{n}>[^/]+)" in pattern]
            if not named:
                raise ValueError(f"data route {route.path}: its id must be a segment")
            name, kind = named[0]
            head, _, tail = pattern.partition(f"(?P<{name}>[^/]+)")
            parts.append((head, re.sub(r"\(\?P<\w+>", "(?:", tail), kind))
        # Grouped by what precedes the id (datasets' routes, services' routes): one
        # alternative each, its tails factored.
        groups: dict[tuple[str, str], list[str]] = {}
        for head, tail, kind in parts:
            groups.setdefault((head, kind), []).append(tail)
        alternatives = [
            f"{head}([^/]+)(?:{'|'.join(sorted(set(tails), key=len, reverse=True))})"
            for (head, _), tails in groups.items()
        ]
        self._kinds = ["", *(kind for _, kind in groups)]
        if len(alternatives) == 1:
            pattern = f"^{alternatives[0]}(?:/|$)"
        elif alternatives:
            pattern = "^(?:" + "|".join(alternatives) + ")(?:/|$)"
        else:
            pattern = "(?!)"  # no data routes: nothing matches
        self._data = re.compile(pattern)

    def dataset_of(self, path: str) -> str | None:
        """The dataset (or interface service) a request to a data route is about; None for
        any other route."""
        match = self._data.match(path)
        return None if match is None else match.group(match.lastindex or 0)

    def resource_of(self, path: str) -> str | None:
        """`datasets/<id>` or `services/<id>`: what a data request's audit event names when
        the route noted nothing itself (it was refused before its plan)."""
        match = self._data.match(path)
        if match is None:
            return None
        group = match.lastindex or 0
        return f"{self._kinds[group]}/{match.group(group)}"

    def strict_rule(self, method: str, path: str) -> str | None:
        """The strict per-address window (`login`, `token`) this request also counts in."""
        return self._strict.get((method, path))
