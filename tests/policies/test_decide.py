"""The decision engine as data, Apache Ranger style: a table of (caller, dataset, mode,
grant) → the expected plan or denial. Every level × pii default is a row."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from catalog.hosted import SUBJECT_COLUMN, HostedDataset, HostedField, build_table
from catalog.models import FieldType
from catalog.problems import Problem
from policies.decide import Caller, GrantTerms, decide

PII = [
    "none",
    "name",
    "id_number",
    "phone",
    "bank_card",
    "email",
    "address",
    "date_of_birth",
    "other",
]
DEFAULTS = {
    1: dict.fromkeys(PII, "clear"),
    2: dict.fromkeys(PII, "clear"),
    3: {
        "none": "clear",
        "name": "mask_name",
        "id_number": "mask_id_number",
        "phone": "mask_phone",
        "bank_card": "mask_bank_card",
        "email": "mask_email",
        "address": "mask_address",
        "date_of_birth": "year_only",
        "other": "mask_default",
    },
    4: {
        "none": "redact",
        "name": "redact",
        "id_number": "pseudonym",
        "phone": "pseudonym",
        "bank_card": "pseudonym",
        "email": "pseudonym",
        "address": "redact",
        "date_of_birth": "redact",
        "other": "redact",
    },
}


def field(
    name: str,
    level: int = 1,
    pii: str = "none",
    *,
    subject: bool = False,
    key: bool = False,
    kind: FieldType = FieldType.string,
) -> HostedField:
    return HostedField(name, kind, name, "", level, pii, subject, key, False)


def dataset(open_type: str, fields: list[HostedField]) -> HostedDataset:
    return HostedDataset(
        id="ds",
        title="测试",
        open_type=open_type,
        level=max(f.level for f in fields),
        version=1,
        row_count=1,
        updated_at=datetime.now(UTC),
        fields=tuple(fields),
        by_name={f.name: f for f in fields},
        primary_key=fields[0].name,
        table=build_table("data_ds_v1", fields, "sqlite"),
    )


EVERY = [field("pk", 1, key=True, kind=FieldType.integer)] + [
    field(f"l{level}_{pii}", level, pii) for level in (1, 2, 3, 4) for pii in PII
]
CONDITIONAL = dataset(
    "conditional",
    [
        *EVERY,
        field("subject", 4, "id_number", subject=True),
        field("district", 1),
        field("base", 3, kind=FieldType.integer),
    ],
)
OPEN = dataset("unconditional", [field("pk", 1, key=True), field("a", 1), field("b", 2)])
CLOSED = dataset("closed", [field("pk", 1, key=True), field("x", 4, "id_number")])

APP = Caller("app", client_id="og_app")
PERSON = Caller("person", client_id="og_app", subject_hmac="h" * 64, consent_dataset="ds")


def grant(**terms: Any) -> GrantTerms:
    base = dict(
        id=7,
        version=2,
        purpose="授信",
        modes=("records",),
        fields=None,
        transforms={},
        row_filter={},
        quotas={},
        k=5,
        epsilon=None,
        epsilon_spent=0.0,
    )
    base.update(terms)
    return GrantTerms(**base)


DEFAULT_ROWS = [
    (
        f"default level {level} pii {pii}",
        APP,
        CONDITIONAL,
        "records",
        grant(),
        {f"l{level}_{pii}": DEFAULTS[level][pii]},
    )
    for level in (1, 2, 3, 4)
    for pii in PII
]

CASES: list[tuple[str, Caller, HostedDataset, str, GrantTerms | None, Any]] = [
    *DEFAULT_ROWS,
    # open data
    (
        "open data, anonymous",
        Caller("anonymous"),
        OPEN,
        "records",
        None,
        {"a": "clear", "b": "clear"},
    ),
    ("open data, app", APP, OPEN, "records", None, {"a": "clear"}),
    ("open data, user", Caller("user", role="developer"), OPEN, "records", None, {"b": "clear"}),
    ("open data aggregate", Caller("anonymous"), OPEN, "aggregate", None, {"a": "clear"}),
    ("open data has no verify", Caller("anonymous"), OPEN, "verify", None, "forbidden"),
    ("unknown mode", APP, OPEN, "download", None, "invalid_parameter"),
    # closed data
    ("closed, anonymous", Caller("anonymous"), CLOSED, "records", None, "not_found"),
    ("closed, app with a grant", APP, CLOSED, "records", grant(), "not_found"),
    ("closed, developer", Caller("user", role="developer"), CLOSED, "records", None, "not_found"),
    ("closed, auditor", Caller("user", role="auditor"), CLOSED, "records", None, "not_found"),
    ("closed, sysadmin", Caller("user", role="sysadmin"), CLOSED, "records", None, "not_found"),
    ("closed, data_admin", Caller("user", role="data_admin"), CLOSED, "records", None, "forbidden"),
    # conditional without a grant
    ("no grant", APP, CONDITIONAL, "records", None, "grant_required"),
    ("anonymous", Caller("anonymous"), CONDITIONAL, "records", None, "grant_required"),
    (
        "a user is not an app",
        Caller("user", role="data_admin"),
        CONDITIONAL,
        "records",
        grant(),
        "grant_required",
    ),
    ("aggregate without grant", APP, CONDITIONAL, "aggregate", None, "grant_required"),
    ("verify without grant", APP, CONDITIONAL, "verify", None, "grant_required"),
    # modes
    ("mode not granted", APP, CONDITIONAL, "aggregate", grant(), "forbidden"),
    (
        "verify not granted",
        APP,
        CONDITIONAL,
        "verify",
        grant(modes=("records", "aggregate")),
        "forbidden",
    ),
    (
        "aggregate granted",
        APP,
        CONDITIONAL,
        "aggregate",
        grant(modes=("aggregate",)),
        {"base": "clear", "l3_name": "mask_name"},
    ),
    (
        "verify granted",
        APP,
        CONDITIONAL,
        "verify",
        grant(modes=("verify",), fields=("subject",)),
        {"subject": "verify"},
    ),
    # grant transforms
    (
        "grant loosens level 3 to clear",
        APP,
        CONDITIONAL,
        "records",
        grant(transforms={"l3_name": "clear"}),
        {"l3_name": "clear"},
    ),
    (
        "grant tightens level 1",
        APP,
        CONDITIONAL,
        "records",
        grant(transforms={"district": "redact"}),
        {"district": "redact"},
    ),
    (
        "grant buckets a level-3 number",
        APP,
        CONDITIONAL,
        "records",
        grant(transforms={"base": "bucket:1000"}),
        {"base": "bucket:1000"},
    ),
    (
        "grant redacts a level-4 id",
        APP,
        CONDITIONAL,
        "records",
        grant(transforms={"l4_id_number": "redact"}),
        {"l4_id_number": "redact"},
    ),
    (
        "level 4 cannot be clear: strictest wins",
        APP,
        CONDITIONAL,
        "records",
        grant(transforms={"l4_id_number": "clear"}),
        {"l4_id_number": "pseudonym"},
    ),
    (
        "level 4 cannot be masked: strictest wins",
        APP,
        CONDITIONAL,
        "records",
        grant(transforms={"l4_phone": "mask_phone"}),
        {"l4_phone": "pseudonym"},
    ),
    (
        "level 4 name cannot be clear",
        APP,
        CONDITIONAL,
        "records",
        grant(transforms={"l4_name": "clear"}),
        {"l4_name": "redact"},
    ),
    (
        "level 4 pseudonym kept",
        APP,
        CONDITIONAL,
        "records",
        grant(transforms={"l4_email": "pseudonym"}),
        {"l4_email": "pseudonym"},
    ),
    # field selection
    (
        "grant lists fields",
        APP,
        CONDITIONAL,
        "records",
        grant(fields=("pk", "district")),
        {"pk": "clear", "district": "clear", "l3_name": None},
    ),
    (
        "fields no longer in the dataset are skipped",
        APP,
        CONDITIONAL,
        "records",
        grant(fields=("pk", "gone")),
        {"pk": "clear", "gone": None},
    ),
    # row filters
    (
        "row filter on a level-1 field",
        APP,
        CONDITIONAL,
        "records",
        grant(row_filter={"district": "市南区"}),
        ("row_filter", {"district": "市南区"}),
    ),
    (
        "row filter on a level-3 field is refused",
        APP,
        CONDITIONAL,
        "records",
        grant(row_filter={"base": "5000"}),
        "grant_required",
    ),
    (
        "row filter on a vanished field is refused",
        APP,
        CONDITIONAL,
        "records",
        grant(row_filter={"gone": "x"}),
        "grant_required",
    ),
    # personal authorization
    (
        "person sees own rows clear",
        PERSON,
        CONDITIONAL,
        "records",
        None,
        {"subject": "clear", "l4_id_number": "clear", "l3_name": "clear"},
    ),
    (
        "person row filter is their HMAC",
        PERSON,
        CONDITIONAL,
        "records",
        None,
        ("row_filter", {SUBJECT_COLUMN: "h" * 64}),
    ),
    (
        "person consent for another dataset",
        Caller("person", client_id="og_app", subject_hmac="h", consent_dataset="other"),
        CONDITIONAL,
        "records",
        None,
        "forbidden",
    ),
    ("person cannot aggregate", PERSON, CONDITIONAL, "aggregate", None, "forbidden"),
    ("person cannot verify", PERSON, CONDITIONAL, "verify", None, "forbidden"),
    (
        "person without linked identity",
        Caller("person", client_id="og_app", subject_hmac=None, consent_dataset="ds"),
        CONDITIONAL,
        "records",
        None,
        "forbidden",
    ),
    (
        "person on a dataset without subject key",
        Caller("person", client_id="og_app", subject_hmac="h", consent_dataset="ds"),
        dataset("conditional", [field("pk", 1, key=True), field("x", 3, "name")]),
        "records",
        None,
        "forbidden",
    ),
    ("person on closed data", PERSON, CLOSED, "records", None, "not_found"),
]


@pytest.mark.parametrize(
    ("name", "caller", "hosted", "mode", "grant_terms", "expected"),
    CASES,
    ids=[c[0] for c in CASES],
)
def test_decision_table(
    name: str,
    caller: Caller,
    hosted: HostedDataset,
    mode: str,
    grant_terms: GrantTerms | None,
    expected: Any,
):
    if isinstance(expected, str):
        with pytest.raises(Problem) as info:
            decide(caller=caller, hosted=hosted, mode=mode, grant=grant_terms)
        assert info.value.code == expected
        return
    plan = decide(caller=caller, hosted=hosted, mode=mode, grant=grant_terms)
    if isinstance(expected, tuple):
        assert dict(plan.row_filter) == expected[1]
        return
    for field_name, transform in expected.items():
        if transform is None:
            assert field_name not in plan.transforms
        else:
            assert plan.transforms[field_name] == transform, plan.fields


def test_the_table_is_big_enough():
    assert len(CASES) >= 60


def test_plan_carries_grant_and_k():
    plan = decide(
        caller=APP, hosted=CONDITIONAL, mode="aggregate", grant=grant(modes=("aggregate",), k=9)
    )
    assert plan.grant is not None and plan.grant.id == 7 and plan.grant.version == 2
    assert plan.k == 9 and plan.client_id == "og_app"
    reasons = {f.name: f.reason for f in plan.fields}
    assert "default" in reasons["l3_name"] and "grant" not in reasons["l3_name"]


def test_epsilon_bounds_default_to_floor_and_ceiling():
    assert grant().epsilon_bounds is None  # no budget, nothing to bound
    assert grant(epsilon=2.0).epsilon_bounds == (0.01, 1.0)
    assert grant(epsilon=0.005).epsilon_bounds == (0.005, 0.005)  # never above the budget
    assert grant(epsilon=2.0, epsilon_floor=0.1, epsilon_ceiling=0.5).epsilon_bounds == (0.1, 0.5)
