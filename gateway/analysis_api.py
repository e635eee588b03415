"""Usable but not visible (可用不可见): aggregates with small-cell suppression and optional
differential privacy, yes/no verification, and the caller's own policy."""

from __future__ import annotations

from typing import Any

import orjson
import sqlalchemy as sa
from fastapi import APIRouter, Request
from pydantic import BaseModel, Field, ValidationError
from sqlalchemy.engine import Engine
from sqlmodel import Session
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from audit.events import audited, note
from catalog.aggregate import AggregateAccess, parse_aggregate_query, run_aggregate
from catalog.hosted import HostedCatalog, HostedDataset
from catalog.models import FieldType
from catalog.problem_schema import problem_responses
from catalog.problems import Problem, invalid_parameter, not_found
from catalog.query import FieldAccess
from catalog.values import parse_value, to_storage
from gateway.access import AccessResolver
from gateway.data_events import DataEvents
from gateway.quotas import business_day, count_request
from gateway.schemas import DATA_ERRORS, AggregateAnswer, PolicyAnswer, VerifyAnswer, data_answer
from policies import privacy
from policies.decide import Plan
from policies.grants import spend_epsilon
from policies.models import Grant, GrantUsage

NUMERIC = (FieldType.integer, FieldType.number)
DEFAULT_EPSILON = 0.1
SORTED = orjson.OPT_SORT_KEYS


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


def build_router(
    engine: Engine, hosted_catalog: HostedCatalog, access: AccessResolver, events: DataEvents
) -> APIRouter:
    router = APIRouter(prefix="/api/v1/datasets", tags=["data"])
    dialect = engine.dialect.name

    def published(dataset_id: str) -> HostedDataset:
        hosted = hosted_catalog.get(dataset_id)
        if hosted is None:
            raise not_found(f"数据集 {dataset_id} 不存在")
        return hosted

    @router.get(
        "/{dataset_id}/aggregate",
        summary="Grouped counts, sums and averages (small cells suppressed)",
        description="`group_by=a,b&metrics=count,sum:f,avg:f,min:f,max:f` plus record filters; "
        "under a differential-privacy grant also `epsilon=` and `bounds=f:lo:hi`.",
        responses={200: data_answer(AggregateAnswer), **DATA_ERRORS},
    )
    @audited("data.aggregate")
    def aggregate(dataset_id: str, request: Request) -> Response:
        hosted = published(dataset_id)
        plan = access.plan(request, hosted, "aggregate")
        covered = {f.name for f in plan.fields}
        rules = AggregateAccess(
            records=FieldAccess(plan.visible, plan.clear),
            summable=frozenset(n for n in covered if hosted.by_name[n].type in NUMERIC),
            comparable=frozenset(n for n in covered if hosted.by_name[n].level <= 2),
        )
        params = [(k, v) for k, v in request.query_params.multi_items()]
        query = parse_aggregate_query(params, hosted, rules, dialect=dialect)
        grant = plan.grant
        events.note_plan(request, plan, hosted, (), filters=query.filters)
        note(
            request,
            fields=[{"name": n, "transform": "group_by"} for n in query.group_by]
            + [{"name": m.field or "*", "transform": m.kind} for m in query.metrics],
        )
        dp = grant is not None and grant.epsilon is not None
        privacy_report = None
        if dp:
            assert grant is not None and grant.epsilon is not None
            if any(m.kind in ("min", "max") for m in query.metrics):
                raise Problem(
                    400, "field_not_permitted", "差分隐私授权下不提供 min/max", parameter="metrics"
                )
            for m in query.metrics:
                if m.kind in ("sum", "avg") and m.field not in query.bounds:
                    raise invalid_parameter("bounds", f"差分隐私求和须给出 {m.field} 的 bounds")
            epsilon = query.epsilon or min(DEFAULT_EPSILON, grant.epsilon - grant.epsilon_spent)
            with Session(engine) as session:
                spent = epsilon > 0 and spend_epsilon(session, grant_id=grant.id, epsilon=epsilon)
                row = session.get(Grant, grant.id)
            if not spent:
                remaining = max(0.0, grant.epsilon - grant.epsilon_spent)
                raise Problem(
                    403,
                    "privacy_budget_exhausted",
                    f"授权 {grant.id} 的隐私预算不足（剩余 ε={remaining:.4g}）",
                    epsilon_remaining=remaining,
                )
            assert row is not None
            privacy_report = {
                "mechanism": "OpenDP Laplace (discrete for integers)",
                "epsilon": epsilon,
                "epsilon_spent": row.epsilon_spent,
                "epsilon_remaining": max(0.0, (row.epsilon or 0) - row.epsilon_spent),
            }
        groups = run_aggregate(
            engine, hosted, query, row_filter=plan.row_filter, clamp=query.bounds if dp else None
        )
        k = plan.k
        kept = [g for g in groups if g["count"] >= k]
        suppressed = len(groups) - len(kept)
        if dp and kept:
            kept = _add_noise(kept, query, privacy_report["epsilon"])  # type: ignore[index]
        else:
            for g in kept:
                for m in query.metrics:
                    if m.kind == "avg" and g[m.label] is not None:
                        g[m.label] = float(g[m.label])
        body: dict[str, Any] = {
            "dataset": hosted.id,
            "version": hosted.version,
            "groups": kept,
            "suppressed_groups": suppressed,
            "k": k,
        }
        if privacy_report:
            body["privacy"] = privacy_report
        note(
            request,
            row_count=len(kept),
            detail={
                "suppressed_groups": suppressed,
                "k": k,
                **({"epsilon": str(privacy_report["epsilon"])} if privacy_report else {}),
            },
        )
        return _json(body)

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
        hosted = published(dataset_id)
        plan = access.plan(request, hosted, "verify")
        events.note_plan(request, plan, hosted, ())
        # Names only; the values as one keyed digest, so a sweep over many people shows.
        note(
            request,
            fields=[{"name": n, "transform": "verify"} for n in sorted(body.match)],
            detail={"values": events.digest(orjson.dumps(body.match, option=SORTED).decode())},
        )
        allowed = set(plan.visible)
        table = hosted.table
        conditions = []
        for name, value in body.match.items():
            field = hosted.by_name.get(name)
            if field is None or name not in allowed:
                raise invalid_parameter("match", f"字段 {name} 不在核验授权范围内")
            try:
                typed = to_storage(field.type, parse_value(field.type, str(value)), dialect)
            except ValueError:
                # The value is not echoed: it is usually an identity number.
                raise invalid_parameter("match", f"字段 {name} 的取值类型不符") from None
            conditions.append(table.c[name] == typed)
        conditions += [table.c[n] == v for n, v in plan.row_filter.items()]
        count_request(engine, plan, "verifies_per_day")
        with engine.connect() as conn:
            found = conn.execute(sa.select(sa.literal(1)).where(*conditions).limit(1)).first()
        note(request, row_count=0, detail={"match": found is not None})
        return _json({"match": found is not None})

    @router.get(
        "/{dataset_id}/policy",
        summary="What the calling app may do, and why",
        responses={200: data_answer(PolicyAnswer), **problem_responses(401, 403, 404, 429, 503)},
    )
    @audited("data.policy")
    def policy(dataset_id: str, request: Request) -> Response:
        hosted = published(dataset_id)
        modes: dict[str, Any] = {}
        grant = None
        for mode in ("records", "aggregate", "verify"):
            plan = _plan_or_none(request, hosted, mode)
            if plan is None:
                continue
            grant = grant or plan.grant
            modes[mode] = {
                "fields": [
                    {
                        "name": f.name,
                        "transform": f.transform,
                        "reason": f.reason,
                        "level": hosted.by_name[f.name].level,
                        "pii": hosted.by_name[f.name].pii,
                    }
                    for f in plan.fields
                ],
            }
            if mode == "aggregate":
                modes[mode]["k"] = plan.k
        if not modes:
            access.plan(request, hosted, "records")  # raises the denial
        answer: dict[str, Any] = {
            "dataset": hosted.id,
            "open_type": hosted.open_type,
            "modes": modes,
        }
        if grant is not None:
            with Session(engine) as session:
                usage = session.get(GrantUsage, (grant.id, business_day()))
            used = {
                "requests_per_day": usage.requests if usage else 0,
                "rows_per_day": usage.rows if usage else 0,
                "verifies_per_day": usage.verifies if usage else 0,
            }
            answer["grant"] = {"id": grant.id, "version": grant.version, "purpose": grant.purpose}
            answer["quotas"] = {
                key: {"limit": limit, "used": used[key], "remaining": max(0, limit - used[key])}
                for key, limit in grant.quotas.items()
            }
            if grant.epsilon is not None:
                answer["privacy"] = {
                    "epsilon": grant.epsilon,
                    "epsilon_spent": grant.epsilon_spent,
                    "epsilon_remaining": max(0.0, grant.epsilon - grant.epsilon_spent),
                }
        return _json(answer)

    def _plan_or_none(request: Request, hosted: HostedDataset, mode: str) -> Plan | None:
        """The plan for `mode`, or None when only that mode is refused (no grant at all,
        or no such dataset, is the answer itself)."""
        try:
            return access.plan(request, hosted, mode)
        except Problem as problem:
            if problem.code in ("grant_required", "not_found"):
                raise
            return None

    return router


def _add_noise(groups: list[dict[str, Any]], query: Any, epsilon: float) -> list[dict[str, Any]]:
    """Noisy counts and sums for every group (parallel composition across groups; the
    query's epsilon split evenly between the count and each summed field)."""
    summed = [m for m in query.metrics if m.kind in ("sum", "avg")]
    share = privacy.split_epsilon(epsilon, 1 + len(summed))
    counts = privacy.noisy_counts([g["count"] for g in groups], epsilon=share)
    for g, c in zip(groups, counts, strict=True):
        g["count"] = c
    for m in summed:
        low, high = query.bounds[m.field]
        sums = privacy.noisy_sums(
            [float(g[m.label] or 0) for g in groups], epsilon=share, lower=low, upper=high
        )
        for g, s in zip(groups, sums, strict=True):
            g[m.label] = s if m.kind == "sum" else (s / g["count"] if g["count"] else None)
    return groups
