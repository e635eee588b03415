"""CKAN's answer envelope (contract §11): `{"help", "success", "result"}`, and on failure
`{"help", "success": false, "error": {"__type", "message"}}` with the status CKAN gives
each error type. The gateway's problem codes map onto CKAN's three types, so a CKAN client
(ckanapi raises `NotFound`, `ValidationError`, `NotAuthorized` from `__type`) tells them
apart; the Chinese detail is the message.
"""

from __future__ import annotations

from typing import Any

import orjson
from pydantic import BaseModel, Field
from starlette.responses import Response

from kernel.problems import Problem

NOT_FOUND = "Not Found Error"
VALIDATION = "Validation Error"
AUTHORIZATION = "Authorization Error"
STATUS = {NOT_FOUND: 404, VALIDATION: 409, AUTHORIZATION: 403}
# Problems whose status means "not allowed": CKAN calls every one an authorization error.
DENIED = frozenset({401, 403})


class CkanError(BaseModel):
    type: str = Field(
        alias="__type",
        description="`Not Found Error` (404), `Validation Error` (409) or "
        "`Authorization Error` (403; 429 when a rate limit or quota refuses)",
    )
    message: str = Field(description="why, in Chinese; never a value of a level-3/4 field")


class CkanAnswer(BaseModel):
    help: str = Field(description="where the action is described")
    success: bool = Field(description="true")
    result: Any = Field(description="the action's result (see docs/contract-ckan.md)")


class CkanFailure(BaseModel):
    help: str = Field(description="where the action is described")
    success: bool = Field(description="false")
    error: CkanError = Field(description="CKAN's error type and the reason")


def error_type(problem: Problem) -> tuple[str, int]:
    """CKAN's type for a problem, and the status to answer with."""
    if problem.status == 404:
        return NOT_FOUND, 404
    if problem.status == 429:  # CKAN has no such type; the status and Retry-After stay
        return AUTHORIZATION, 429
    if problem.status in DENIED or problem.code == "field_not_permitted":
        return AUTHORIZATION, 403
    return VALIDATION, 409


def answer(help_url: str, result: Any) -> Response:
    body = orjson.dumps({"help": help_url, "success": True, "result": result})
    return Response(body, media_type="application/json")


def failure(help_url: str, problem: Problem) -> Response:
    kind, status = error_type(problem)
    body = orjson.dumps(
        {"help": help_url, "success": False, "error": {"__type": kind, "message": problem.detail}}
    )
    headers = {k: v for k, v in problem.headers.items() if k.lower() != "content-type"}
    return Response(body, status_code=status, media_type="application/json", headers=headers)


def not_found(message: str) -> Problem:
    return Problem(404, "not_found", message)


def invalid(parameter: str, message: str) -> Problem:
    return Problem(400, "invalid_parameter", message, parameter=parameter)


def documented_failures() -> dict[int | str, dict[str, Any]]:
    """The `responses=` entries of the CKAN routes' own failures."""
    return {
        status: {"model": CkanFailure, "description": f"`{kind}`"}
        for kind, status in STATUS.items()
    }
