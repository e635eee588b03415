"""The data routes' route class (gateway/direct_route.py): an endpoint of string path
parameters and the request is called without FastAPI's dependency resolution, with the
same values; any other endpoint is FastAPI's as before."""

from __future__ import annotations

import pytest
from fastapi import APIRouter, FastAPI, Request
from fastapi.testclient import TestClient
from starlette.responses import PlainTextResponse, Response

from gateway.direct_route import DirectRoute
from gateway.middleware import new_request_id


def app_with(router: APIRouter) -> TestClient:
    app = FastAPI()
    app.include_router(router)
    return TestClient(app)


def test_path_parameters_and_the_request_without_dependency_resolution(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    router = APIRouter(prefix="/d", route_class=DirectRoute)

    @router.get("/{dataset_id}/records/{key}")
    def one(dataset_id: str, key: str, request: Request) -> Response:
        return PlainTextResponse(f"{dataset_id}|{key}|{request.query_params.get('x')}")

    client = app_with(router)

    async def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("FastAPI's dependency resolution ran")

    monkeypatch.setattr("fastapi.routing.solve_dependencies", refuse)
    answer = client.get("/d/a%20b/records/%E5%B8%82?x=1")
    assert answer.status_code == 200
    assert answer.text == "a b|市|1"  # decoded as FastAPI decodes path parameters
    assert client.get("/d/a/records").status_code == 404
    parameters = client.get("/openapi.json").json()["paths"]["/d/{dataset_id}/records/{key}"]
    names = [p["name"] for p in parameters["get"]["parameters"]]
    assert names == ["dataset_id", "key"]  # still documented from the signature


def test_other_endpoints_are_fastapis() -> None:
    router = APIRouter(route_class=DirectRoute)

    @router.get("/n/{number}")
    def typed(number: int, request: Request) -> Response:
        return PlainTextResponse(str(number + 1))

    @router.get("/q/{name}")
    def queried(name: str, limit: int = 3) -> Response:
        return PlainTextResponse(f"{name}:{limit}")

    client = app_with(router)
    assert client.get("/n/41").text == "42"
    assert client.get("/n/x").status_code == 422  # validated by FastAPI, as before
    assert client.get("/q/a?limit=5").text == "a:5"
    assert client.get("/q/a?limit=z").status_code == 422


def test_request_ids_are_distinct_hex_across_refills() -> None:
    ids = [new_request_id() for _ in range(3 * 4096 // 16 + 7)]  # three refills and more
    assert len(set(ids)) == len(ids)
    assert all(len(i) == 32 and int(i, 16) >= 0 for i in ids)
