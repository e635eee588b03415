"""Data routes are marked once, on the route (the `data` tag), and the audit and the rate
limiter both read that mark. Walking every route of the app and calling it, the routes the
audit treats as data (a refusal before the route is a `data.refused` event), the routes
the limiter counts in its data group, and the routes that fail closed on a conditional
dataset without Redis are each exactly the marked ones."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import sqlalchemy as sa
from fastapi import FastAPI
from fastapi.routing import APIRoute
from sqlalchemy.engine import Engine
from starlette.routing import Mount

from audit.events import action_of
from gateway.app import create_app
from gateway.ratelimit import LIMITED_PREFIXES, is_page, limiter_unavailable
from gateway.route_marks import DATA_TAG
from gateway.settings import Settings
from tests.conftest import TestClient
from tests.gateway.test_route_table import walk
from tests.packages import import_conditional

DATASET = "social-insurance"  # conditional: the fail-closed view needs one
LIMITER_DOWN = limiter_unavailable().detail
KNOWN_DATA = {
    "/api/v1/datasets/{dataset_id}/records",
    "/api/v1/datasets/{dataset_id}/records/{key}",
    "/api/v1/datasets/{dataset_id}/export",
    "/api/v1/datasets/{dataset_id}/aggregate",
    "/api/v1/datasets/{dataset_id}/verify",
    "/api/v1/datasets/{dataset_id}/policy",
    "/api/v1/services/{service_id}/call",  # an interface service's data (issue 18)
}


def calls(app: FastAPI) -> Iterator[tuple[str, str, str, str]]:
    """(route path, method, concrete URL, request id) for every route and method."""
    for n, route in enumerate(walk(app.router.routes)):
        if isinstance(route, Mount):
            continue
        url = route.path.replace("{dataset_id}", DATASET).replace("{service_id}", DATASET)
        url = re.sub(r"\{[^}]+\}", "1", url)
        for method in sorted((route.methods or set()) - {"HEAD"}):
            yield route.path, method, url, f"walk-{n}-{method.lower()}"


def test_audit_and_limiter_see_exactly_the_marked_routes(
    engine: Engine, settings: Settings, packages: Path
):
    import_conditional(
        engine, packages, fields=[{"name": "record_id", "type": "integer", "level": 1}], rows=[[1]]
    )
    app = create_app(settings, engine=engine)
    routes = [r for r in walk(app.router.routes) if isinstance(r, APIRoute)]
    marked = {r.path for r in routes if DATA_TAG in r.tags}
    assert marked == KNOWN_DATA  # the mark is where the contract's data routes are

    # The limiter: a data window of 1 a minute is the one closest to running out, named in
    # RateLimit-Policy on every answer of a data route (a 429 once it is spent).
    limiter = set()
    tight = settings.model_copy(update={"rate_data": "1/minute"})
    with TestClient(create_app(tight, engine=engine)) as client:
        for path, method, url, _ in calls(app):
            answer = client.request(method, url, json={})
            if answer.headers.get("ratelimit-policy", "").startswith('"data";'):
                limiter.add(path)

    # Without Redis, the limiter refuses only data of a conditional dataset (503; /readyz
    # says 503 too, for itself: not the limiter's refusal).
    fail_closed = set()
    down = settings.model_copy(update={"redis_url": "redis://127.0.0.1:1/0"})
    with TestClient(create_app(down, engine=engine)) as client:
        for path, method, url, _ in calls(app):
            answer = client.request(method, url, json={})
            if answer.status_code == 503 and answer.json().get("detail") == LIMITER_DOWN:
                fail_closed.add(path)

    # The audit: with the address's budgets spent (the API's and the pages'), every limited
    # request is refused before its route; a data route's refusal is still an event of its
    # dataset, a page's is an HTML page. Routes outside the limiter are asked with a method
    # they do not take (405, also before any endpoint runs; none of them is audited).
    spent = settings.model_copy(update={"rate_anon": "1/minute", "rate_web": "1/minute"})
    with TestClient(create_app(spent, engine=engine)) as client:
        assert client.get("/api/v1/datasets").status_code == 200  # spends the API budget
        assert client.get("/").status_code == 200  # and the pages' one
        for path, method, url, request_id in calls(app):
            headers = {"X-Request-Id": request_id}
            if url.startswith(LIMITED_PREFIXES) or is_page(url):
                answer = client.request(method, url, json={}, headers=headers)
                assert answer.status_code == 429, (method, url)
                if is_page(url):
                    assert answer.headers["content-type"].startswith("text/html"), url
            else:
                route = next(r for r in walk(app.router.routes) if getattr(r, "path", "") == path)
                assert action_of(getattr(route, "endpoint", None)) is None, path
                answer = client.request("PATCH", url, headers=headers)
                assert answer.status_code == 405, (method, url)
    with engine.connect() as conn:
        refused = dict(
            conn.execute(
                sa.text(
                    "SELECT request_id, resource FROM audit_events WHERE action = 'data.refused'"
                )
            ).all()
        )
    audited = set()
    for path, _method, _url, request_id in calls(app):
        if request_id in refused:
            kind = "services" if "{service_id}" in path else "datasets"
            assert refused[request_id] == f"{kind}/{DATASET}"  # never a record key
            audited.add(path)

    assert audited == limiter == fail_closed == marked


def test_a_path_below_a_data_route_is_about_its_dataset(client: TestClient):
    """An unrouted path under a data route (a key with more after it) is still audited by
    its dataset, never by the raw path: the key may be an identity number."""
    key = "370202199001011237"
    answer = client.get(
        f"/api/v1/datasets/{DATASET}/records/{key}/more",
        headers={"Authorization": "Bearer not-a-token", "X-Request-Id": "below-1"},
    )
    assert answer.status_code == 401
    engine = client.app.state.engine  # type: ignore[attr-defined]
    with engine.connect() as conn:
        resource = conn.execute(
            sa.text("SELECT resource FROM audit_events WHERE request_id = 'below-1'")
        ).scalar_one()
    assert resource == f"datasets/{DATASET}" and key not in resource
