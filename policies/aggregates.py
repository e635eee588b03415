"""The aggregate rules of a plan: what may be grouped, summed and compared, the k rule,
and under differential privacy the ε check, its spending and the noisy release.

Moved here from the aggregate route so every channel answering an aggregate applies the
same rules (`Access.aggregate`)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session

from catalog.aggregate import AggregateAccess, AggregateQuery
from catalog.hosted import HostedDataset
from catalog.models import FieldType
from catalog.query import FieldAccess
from kernel.problems import Problem, invalid_parameter
from policies import privacy
from policies.decide import GrantTerms, Plan
from policies.grants import spend_epsilon
from policies.models import Grant

NUMERIC = (FieldType.integer, FieldType.number)
DEFAULT_EPSILON = 0.1


def under_privacy(plan: Plan) -> bool:
    return plan.grant is not None and plan.grant.epsilon is not None


def aggregate_rules(plan: Plan, hosted: HostedDataset) -> AggregateAccess:
    """Which fields the aggregate may group, sum and compare under `plan`."""
    numeric = {f.name for f in plan.fields if hosted.by_name[f.name].type in NUMERIC}
    clear = plan.clear
    return AggregateAccess(
        records=FieldAccess(plan.visible, clear),
        # A sum of a masked or bucketed field, differenced over two filters that differ
        # by one row, is that row's hidden value: sums only of clear fields, or of any
        # covered field under differential privacy (the noise hides the difference).
        summable=frozenset(numeric if under_privacy(plan) else numeric & clear),
        comparable=frozenset(n for n in clear if hosted.by_name[n].level <= 2),
    )


def spend(engine: Engine, grant: GrantTerms, query: AggregateQuery) -> dict[str, Any]:
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
        query.epsilon if query.epsilon is not None else min(max(DEFAULT_EPSILON, floor), ceiling)
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


def k_groups(
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


def private_groups(
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
