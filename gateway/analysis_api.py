"""Usable but not visible (可用不可见): aggregates with small-cell suppression and optional
differential privacy, yes/no verification, and the caller's own policy. The rules live in
`policies` (the `Access` of the request); these routes parse the body and render."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, Request
from pydantic import BaseModel, Field, ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from audit.events import audited, notes
from auth.principal import principal_of
from gateway.route_marks import DATA_TAG
from gateway.schemas import DATA_ERRORS, AggregateAnswer, PolicyAnswer, VerifyAnswer, data_answer
from kernel.problem_schema import problem_responses
from kernel.problems import invalid_parameter
from policies.access import Enforcer


class VerifyRequest(BaseModel):
    match: dict[str, str | int | float | bool] = Field(min_length=1, max_length=10)


# `verify` reads its body itself; this is what the OpenAPI document says of it.
VERIFY_BODY = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": VerifyRequest.model_json_schema()}},
    }
}


def _json(body: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json")


def build_router(enforcer: Enforcer) -> APIRouter:
    router = APIRouter(prefix="/api/v1/datasets", tags=[DATA_TAG])  # the data mark

    @router.get(
        "/{dataset_id}/aggregate",
        summary="Grouped counts, sums and averages (small cells suppressed)",
        description="`group_by=a,b&metrics=count,sum:f,avg:f,min:f,max:f` plus record filters; "
        "under a differential-privacy grant also `epsilon=` and `bounds=f:lo:hi`.",
        responses={200: data_answer(AggregateAnswer), **DATA_ERRORS},
    )
    @audited("data.aggregate")
    def aggregate(dataset_id: str, request: Request) -> Response:
        access = enforcer.enforce(
            principal_of(request), dataset_id, "aggregate", notes=notes(request.scope)
        )
        return _json(access.aggregate(list(request.query_params.multi_items())))

    @router.post(
        "/{dataset_id}/verify",
        summary="Yes/no match (核验); never returns data",
        openapi_extra=VERIFY_BODY,
        responses={200: data_answer(VerifyAnswer), **DATA_ERRORS, **problem_responses(413)},
    )
    @audited("data.verify")
    async def verify(dataset_id: str, request: Request) -> Response:
        try:
            body = VerifyRequest.model_validate_json(await request.body())
        except ValidationError:
            raise invalid_parameter(
                "match", '请求体须为 {"match": {字段: 值}}，1–10 个字段'
            ) from None
        return await run_in_threadpool(_verify, dataset_id, request, body)

    def _verify(dataset_id: str, request: Request, body: VerifyRequest) -> Response:
        access = enforcer.enforce(
            principal_of(request), dataset_id, "verify", notes=notes(request.scope)
        )
        request_id = request.scope.get("state", {}).get("request_id")
        return _json({"match": access.verify(body.match, request_id=request_id)})

    @router.get(
        "/{dataset_id}/policy",
        summary="What the calling app may do, and why",
        responses={200: data_answer(PolicyAnswer), **problem_responses(401, 403, 404, 429, 503)},
    )
    @audited("data.policy")
    def policy(dataset_id: str, request: Request) -> Response:
        return _json(enforcer.policy(principal_of(request), dataset_id))

    return router
