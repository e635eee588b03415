"""JSON responses rendered with orjson: fast, and Chinese stays readable (no \\u escapes)."""

from __future__ import annotations

from typing import Any

import orjson
from pydantic import BaseModel
from starlette import responses


# A subclass of Starlette's JSONResponse only so that FastAPI documents a route's
# `response_model` (it documents anything else as `{"type": "string"}`); rendering is ours.
class JSONResponse(responses.JSONResponse):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, option=orjson.OPT_NON_STR_KEYS)


class JSONLDResponse(JSONResponse):
    media_type = "application/ld+json"


def answer(
    model: type[BaseModel],
    value: Any,
    *,
    status_code: int = 200,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    """`value` (a row, or a dict of rows) read through its response `model` and rendered here,
    in the route's own thread, while its session is still open.

    A route that changes state answers this way instead of returning the row: FastAPI would
    validate a returned value in a second trip through the thread pool, before the route's
    session is closed. On SQLite that pool has one thread, and a session that wrote (or read
    after its commit) holds the write lock, so that trip could wait behind a request of the
    same worker that is itself waiting for that lock — serve --workers 2 hung on concurrent
    registrations (tests/gateway/test_honest_failure.py)."""
    rendered = model.model_validate(value, from_attributes=True).model_dump(mode="json")
    return JSONResponse(rendered, status_code=status_code, headers=headers)
