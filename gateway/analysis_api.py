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
from audit.writer import append as append_event
from catalog.aggregate import (
    AggregateAccess,
    AggregateQuery,
    parse_aggregate_query,
    run_aggregate,
)
from catalog.hosted import HostedCatalog, HostedDataset
from catalog.models import FieldType
from catalog.problem_schema import problem_responses
from catalog.problems import Problem, invalid_parameter, not_found
from catalog.query import FieldAccess
from catalog.values import parse_value, to_storage
from gateway import quotas
from gateway.access import AccessResolver
from gateway.data_events import DataEvents
from gateway.quotas import business_day
from gateway.route_marks import DATA_TAG
from gateway.schemas import DATA_ERRORS, AggregateAnswer, PolicyAnswer, VerifyAnswer, data_answer
from policies import grants as service
from policies import privacy
from policies.decide import GrantTerms, Plan
from policies.grants import spend_epsilon
from policies.models import Grant, GrantUsage
from policies.policy_document import policy_modes

NUMERIC = (FieldType.integer, FieldType.number)
# Verify values that single out a person: calls naming one are limited per day.
IDENTIFYING = frozenset({"id_number", "phone", "bank_card", "email"})
DEFAULT_EPSILON = 0.1
SORTED = orjson.OPT_SORT_KEYS


class VerifyRequest(BaseModel):
    match: dict[str, str | int | float | bool] = Field(min_length=1, max_length=10)


def verify_brake(request: Request) -> quotas.VerifyBrake:
    settings = request.app.state.settings
    return quotas.VerifyBrake(
        per_day=settings.verify_default_per_day,
        per_subject=settings.verify_per_subject_per_day,
        sweep_misses=settings.verify_sweep_misses,
        sweep_subjects=settings.verify_sweep_subjects,
    )


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
    router = APIRouter(prefix="/api/v1/datasets", tags=[DATA_TAG])  # the data mark
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
        grant = plan.grant
        dp = grant is not None and grant.epsilon is not None
        numeric = {f.name for f in plan.fields if hosted.by_name[f.name].type in NUMERIC}
        rules = AggregateAccess(
            records=FieldAccess(plan.visible, plan.clear),
            # A sum of a masked or bucketed field, differenced over two filters that differ
            # by one row, is that row's hidden value: sums only of clear fields, or of any
            # covered field under differential privacy (the noise hides the difference).
            summable=frozenset(numeric if dp else numeric & plan.clear),
            comparable=frozenset(n for n in plan.clear if hosted.by_name[n].level <= 2),
        )
        params = [(k, v) for k, v in request.query_params.multi_items()]
        query = parse_aggregate_query(params, hosted, rules, dialect=dialect)
        events.note_plan(request, plan, hosted, (), filters=query.filters)
        note(
            request,
            fields=[{"name": n, "transform": "group_by"} for n in query.group_by]
            + [{"name": m.field or "*", "transform": m.kind} for m in query.metrics],
        )
        quotas.admit(engine, plan, rows=None)
        privacy_report = None
        if dp:
            assert grant is not None
            privacy_report = _spend(grant, query)
        groups = run_aggregate(
            engine, hosted, query, row_filter=plan.row_filter, clamp=query.bounds if dp else None
        )
        k = plan.k
        if privacy_report is not None:
            kept, suppressed = _private_groups(groups, query, privacy_report, k)
        else:
            kept, suppressed = _k_groups(groups, query, k)
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

    def _spend(grant: GrantTerms, query: AggregateQuery) -> dict[str, Any]:
        """Check the query's ε against the grant's floor and ceiling and spend it (all
        or nothing); the privacy part of the answer."""
        assert grant.epsilon is not None and grant.epsilon_bounds is not None
        if any(m.kind in ("min", "max") for m in query.metrics):
            raise Problem(
                400, "field_not_permitted", "差分隐私授权下不提供 min/max", parameter="metrics"
            )
        for m in query.metrics:
            if m.kind in ("sum", "avg") and m.field not in query.bounds:
                raise invalid_parameter("bounds", f"差分隐私求和须给出 {m.field} 的 bounds")
        floor, ceiling = grant.epsilon_bounds
        epsilon = (
            query.epsilon
            if query.epsilon is not None
            else min(max(DEFAULT_EPSILON, floor), ceiling)
        )
        if not floor <= epsilon <= ceiling:
            # Refused, not charged: a tiny ε buys an almost noiseless answer for almost
            # nothing, so one budget would pay for a binary search over a hidden value.
            raise invalid_parameter(
                "epsilon",
                f"参数 epsilon 须在授权 {grant.id} 规定的范围 [{floor:g}, {ceiling:g}] 之内",
            )
        with Session(engine) as session:
            spent = spend_epsilon(session, grant_id=grant.id, epsilon=epsilon)
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
        return {
            "mechanism": "OpenDP Laplace (discrete for integers), Laplace threshold for groups",
            "epsilon": epsilon,
            "delta": privacy.PARTITION_DELTA if query.group_by else 0.0,
            "epsilon_spent": row.epsilon_spent,
            "epsilon_remaining": max(0.0, (row.epsilon or 0) - row.epsilon_spent),
        }

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
        subjects = []
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
            if field.subject_key or field.pii in IDENTIFYING:
                # The stored form: any two values that can match the same row count as one.
                subjects.append(events.digest(f"verify-subject:{name}:{typed}"))
        conditions += [table.c[n] == v for n, v in plan.row_filter.items()]
        brake = verify_brake(request)
        quotas.admit(engine, plan, rows=None)
        before, distinct = quotas.count_verify(engine, plan, brake, subjects)
        with engine.connect() as conn:
            found = conn.execute(sa.select(sa.literal(1)).where(*conditions).limit(1)).first()
        match = found is not None
        note(request, row_count=0, detail={"match": match})
        if not match and plan.grant is not None:
            misses = quotas.record_miss(engine, plan)
            if misses >= brake.sweep_misses:
                _suspend_for_sweep(request, plan, "misses", misses, brake.sweep_misses)
                return _json({"match": match})
        # On crossing the threshold: a grant a data_admin reinstated keeps its day's count
        # and is not suspended again by the next new value.
        if plan.grant is not None and before < brake.sweep_subjects <= distinct:
            _suspend_for_sweep(request, plan, "distinct_values", distinct, brake.sweep_subjects)
        return _json({"match": match})

    def _suspend_for_sweep(
        request: Request, plan: Plan, counted: str, count: int, threshold: int
    ) -> None:
        """A sweep — many misses, or many people's values (the audit log's `verify_sweep`
        flag): suspend the grant at once (every worker: the grant is read on every
        request), leave the data_admins a notice and audit the suspension."""
        grant = plan.grant
        assert grant is not None
        what = "核验不匹配" if counted == "misses" else "核验的不同对象"
        message = (
            f"应用 {plan.client_id} 对数据集 {plan.dataset_id} 今日{what}已达 {count} 个"
            f"（阈值 {threshold}），疑似逐一试探，授权 {grant.id} 已自动暂停，请核查后恢复或撤销"
        )
        with Session(engine) as session:
            suspended = service.suspend(
                session, grant_id=grant.id, reason="verify_sweep", notice=message
            )
        if suspended is None:
            return  # another worker got there first
        note(request, detail={"grant_suspended": "verify_sweep"})
        append_event(
            engine,
            [
                {
                    "request_id": request.scope.get("state", {}).get("request_id"),
                    "actor": "gateway",
                    "client_id": plan.client_id,
                    "ip": None,
                    "action": "grant.suspend",
                    "resource": f"datasets/{plan.dataset_id}",
                    "fields": None,
                    "row_count": None,
                    "purpose": grant.purpose,
                    "grant_id": grant.id,
                    "grant_version": grant.version,
                    "outcome": "allowed",
                    "status": None,
                    "detail": {
                        "decision": "suspend",
                        "grant_status": "suspended",
                        "reason": "verify_sweep",
                        counted: count,
                        "threshold": threshold,
                    },
                }
            ],
        )

    @router.get(
        "/{dataset_id}/policy",
        summary="What the calling app may do, and why",
        responses={200: data_answer(PolicyAnswer), **problem_responses(401, 403, 404, 429, 503)},
    )
    @audited("data.policy")
    def policy(dataset_id: str, request: Request) -> Response:
        hosted = published(dataset_id)
        plans: dict[str, Plan] = {}
        grant = None
        for mode in ("records", "aggregate", "verify"):
            plan = _plan_or_none(request, hosted, mode)
            if plan is None:
                continue
            grant = grant or plan.grant
            plans[mode] = plan
        modes = policy_modes(hosted, plans)
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
            limits = dict(grant.quotas)
            if "verify" in grant.modes:  # the brake holds whether or not the reviewer set it
                brake = verify_brake(request)
                limits = {**brake.limits(grant.quotas), **limits}
            answer["quotas"] = {
                key: (
                    {"limit": limit, "used": used[key], "remaining": max(0, limit - used[key])}
                    if key in used
                    else {"limit": limit, "per": "subject value"}
                )
                for key, limit in limits.items()
            }
            if grant.epsilon is not None and grant.epsilon_bounds is not None:
                floor, ceiling = grant.epsilon_bounds
                answer["privacy"] = {
                    "epsilon": grant.epsilon,
                    "epsilon_spent": grant.epsilon_spent,
                    "epsilon_remaining": max(0.0, grant.epsilon - grant.epsilon_spent),
                    "epsilon_floor": floor,
                    "epsilon_ceiling": ceiling,
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


def _k_groups(
    groups: list[dict[str, Any]], query: AggregateQuery, k: int
) -> tuple[list[dict[str, Any]], int | None]:
    """Small-cell suppression without differential privacy: groups of fewer than k rows
    are left out and counted. When the whole matching set is below k the answer is
    suppressed as a whole and says nothing about how many groups or rows there were, so
    "no row matches" and "one row matches" read the same."""
    if sum(g["count"] for g in groups) < k:
        return [], None
    kept = [g for g in groups if g["count"] >= k]
    for g in kept:
        for m in query.metrics:
            if m.kind == "avg" and g[m.label] is not None:
                g[m.label] = float(g[m.label])
    return kept, len(groups) - len(kept)


def _private_groups(
    groups: list[dict[str, Any]], query: AggregateQuery, report: dict[str, Any], k: int
) -> tuple[list[dict[str, Any]], None]:
    """Under differential privacy every released number is noisy and every decision is
    taken on noisy numbers: which groups show (a threshold on noisy counts, OpenDP), the
    k rule (on the noisy count), and how many were left out is withheld (None), since a
    count of suppressed groups taken from true counts is an exact answer in itself."""
    summed = [m for m in query.metrics if m.kind in ("sum", "avg")]
    share = privacy.split_epsilon(report["epsilon"], 1 + len(summed))
    counts = [g["count"] for g in groups]
    if query.group_by:
        released = privacy.noisy_partitions(counts, epsilon=share, k=k)
        report["threshold"] = privacy.partition_threshold(epsilon=share, k=k)
    else:
        # One group whatever the data (SELECT count(*) always answers one row).
        noisy = privacy.noisy_counts(counts, epsilon=share)
        released = {i: c for i, c in enumerate(noisy) if c >= k}
    kept = []
    for i in sorted(released):
        groups[i]["count"] = released[i]
        kept.append(groups[i])
    return _add_noise(kept, summed, query, share), None


def _add_noise(
    groups: list[dict[str, Any]], summed: list[Any], query: AggregateQuery, share: float
) -> list[dict[str, Any]]:
    """Noisy sums for the released groups (parallel composition across groups; the
    query's ε split evenly between the count and each summed field)."""
    if not groups:
        return groups
    for m in summed:
        low, high = query.bounds[m.field]
        sums = privacy.noisy_sums(
            [float(g[m.label] or 0) for g in groups], epsilon=share, lower=low, upper=high
        )
        for g, s in zip(groups, sums, strict=True):
            g[m.label] = s if m.kind == "sum" else (s / g["count"] if g["count"] else None)
    return groups
