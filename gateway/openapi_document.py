"""The OpenAPI document at `/openapi.json`: FastAPI's, with the problem schema every error
response refers to, and without the 422 FastAPI adds to every route with parameters — the
gateway answers a validation error with 400 `invalid_parameter` (gateway/problems.py). The
Chinese text the routes and models do not carry themselves (the data routes' summaries, a
description for each property) comes from gateway/openapi_text.py."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from gateway.openapi_text import SUMMARIES, describe
from kernel.problem_schema import PROBLEM_SCHEMA, ProblemDocument

_FASTAPI_VALIDATION = {"HTTPValidationError", "ValidationError"}


def build_document(app: FastAPI) -> dict[str, Any]:
    document = get_openapi(
        title=app.title,
        version=app.version,
        openapi_version=app.openapi_version,
        description=app.description,
        routes=app.routes,
    )
    for path, operations in document.get("paths", {}).items():
        for method, operation in operations.items():
            operation["summary"] = SUMMARIES.get((method, path), operation.get("summary"))
            answer = operation.get("responses", {}).get("422", {})
            schema = answer.get("content", {}).get("application/json", {}).get("schema", {})
            if schema.get("$ref", "").endswith("/HTTPValidationError"):
                del operation["responses"]["422"]
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    for name in _FASTAPI_VALIDATION:
        schemas.pop(name, None)
    schemas[PROBLEM_SCHEMA] = ProblemDocument.model_json_schema()
    for name, schema in schemas.items():
        for prop, spec in schema.get("properties", {}).items():
            if not spec.get("description"):
                text = describe(name, prop)
                if text:
                    spec["description"] = text
    return document


def install(app: FastAPI) -> None:
    """Serve `build_document(app)`, built once on first request (as FastAPI does)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = build_document(app)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
