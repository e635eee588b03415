"""The decision engine against its table: tests/policies/decision_table.json holds each case
(caller, grant, dataset, mode) with the whole expected plan or refusal, Apache Ranger style.
The expectations are written from CONTRACT §3/§6 and docs/contract-grants.md, not recorded."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from catalog.hosted import HostedDataset, HostedField, build_table
from catalog.models import FieldType
from kernel.problems import Problem
from policies.decide import Caller, GrantTerms, Plan, decide

TABLE = json.loads((Path(__file__).parent / "decision_table.json").read_text(encoding="utf-8"))


def _dataset(dataset_id: str, spec: dict[str, Any]) -> HostedDataset:
    fields = [
        HostedField(
            f["name"],
            FieldType(f.get("type", "string")),
            f["name"],
            "",
            f["level"],
            f["pii"],
            f.get("subject", False),
            f.get("key", False),
            False,
        )
        for f in spec["fields"]
    ]
    return HostedDataset(
        id=dataset_id,
        title="测试",
        open_type=spec["open_type"],
        level=max(f.level for f in fields),
        version=spec["version"],
        row_count=1,
        updated_at=datetime.now(UTC),
        fields=tuple(fields),
        by_name={f.name: f for f in fields},
        primary_key=next(f.name for f in fields if f.primary_key),
        table=build_table(f"data_{dataset_id}_v{spec['version']}", fields, "sqlite"),
    )


def _grant(terms: dict[str, Any] | None) -> GrantTerms | None:
    if terms is None:
        return None
    merged = {**TABLE["grant_defaults"], **terms}
    for name in ("modes", "fields"):
        if merged[name] is not None:
            merged[name] = tuple(merged[name])
    return GrantTerms(**merged)


def _observed(plan: Plan) -> dict[str, Any]:
    """The plan in the table's terms: everything a channel reads from it."""
    return {
        "version": plan.version,
        "client_id": plan.client_id,
        "grant": None if plan.grant is None else [plan.grant.id, plan.grant.version],
        "k": plan.k,
        "epsilon_bounds": (
            None
            if plan.grant is None or plan.grant.epsilon_bounds is None
            else list(plan.grant.epsilon_bounds)
        ),
        "row_filter": dict(plan.row_filter),
        "fields": [[f.name, f.transform, f.reason] for f in plan.fields],
    }


def _cases() -> list[Any]:
    """The table's cases; one marked `known_gap` is today's code disagreeing with the rule:
    a strict xfail, so it fails the day the code is fixed and the mark must go."""
    return [
        pytest.param(
            case,
            id=case["name"],
            marks=[pytest.mark.xfail(reason=case["known_gap"], strict=True)]
            if "known_gap" in case
            else [],
        )
        for case in TABLE["cases"]
    ]


@pytest.mark.parametrize("case", _cases())
def test_decision_table(case: dict[str, Any]):
    caller = Caller(**TABLE["callers"][case["caller"]])
    hosted = _dataset(case["dataset"], TABLE["datasets"][case["dataset"]])
    grant = _grant(case["grant"])
    if "problem" in case:
        with pytest.raises(Problem) as info:
            decide(caller=caller, hosted=hosted, mode=case["mode"], grant=grant)
        expected = dict(case["problem"])
        status, code = expected.pop("status"), expected.pop("code")
        assert (info.value.status, info.value.code) == (status, code)
        assert info.value.extra == expected
        return
    plan = decide(caller=caller, hosted=hosted, mode=case["mode"], grant=grant)
    assert plan.mode == case["mode"] and plan.dataset_id == case["dataset"]
    assert plan.transforms == {f.name: f.transform for f in plan.fields}
    assert _observed(plan) == case["plan"]


def test_epsilon_bounds_default_to_floor_and_ceiling():
    grant = _grant({})
    assert grant is not None and grant.epsilon_bounds is None  # no budget, nothing to bound
    assert _grant({"epsilon": 2.0}).epsilon_bounds == (0.01, 1.0)  # type: ignore[union-attr]
    assert _grant({"epsilon": 0.005}).epsilon_bounds == (0.005, 0.005)  # type: ignore[union-attr]
    bounded = _grant({"epsilon": 2.0, "epsilon_floor": 0.1, "epsilon_ceiling": 0.5})
    assert bounded is not None and bounded.epsilon_bounds == (0.1, 0.5)
