"""schemathesis against the gateway's own `/openapi.json` (issue 12, finding 14): every
operation, as anonymous, an app with a grant and a data_admin, on SQLite and PostgreSQL.
No answer may be a 5xx, and every answer must match the schema its operation declares for
its status and media type (and the status must be one it declares).

Bounded and reproducible: hypothesis derandomized, a fixed number of examples per operation
and generation mode, rate limits off. The app runs in process (schemathesis's ASGI
transport), so the figures below are per test: operations, requests, failures.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.python import asgi
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from sqlalchemy.engine import Engine

from catalog.importer import import_package
from gateway.settings import Settings
from tests.auth.helpers import PASSWORD, developer_with_app, user
from tests.conftest import TestClient
from tests.packages import write_package

CHECKS = [
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
    content_type_conformance,
]
# Examples per operation: valid requests, then half as many invalid ones.
# OPENGATE_SCHEMATHESIS_EXAMPLES raises it for a longer run by hand.
EXAMPLES = int(os.environ.get("OPENGATE_SCHEMATHESIS_EXAMPLES", "20"))
MODES = {
    schemathesis.GenerationMode.POSITIVE: EXAMPLES,
    schemathesis.GenerationMode.NEGATIVE: max(1, EXAMPLES // 2),
}

CONDITIONAL = "social-insurance"
APPLIED = "tax-records"  # conditional too; the developer's application for it is pending
FIELDS = [
    {"name": "record_id", "type": "integer", "level": 1},
    {"name": "person_name", "type": "string", "level": 3, "pii": "name"},
    {"name": "id_number", "type": "string", "level": 4, "pii": "id_number", "subject_key": True},
    {"name": "district", "type": "string", "level": 1},
    {"name": "monthly_base", "type": "integer", "level": 3},
    {"name": "paid_on", "type": "date", "level": 1},
]
DISTRICTS = ["市南区", "市北区", "崂山区"]
ROWS = [
    [i, f"李{'四五六七'[i % 4]}", f"37020319850202{i:04d}", DISTRICTS[i % 3], 4000 + 100 * i,
     f"2024-0{i % 9 + 1}-1{i % 9}"]
    for i in range(1, 41)
]  # fmt: skip
# Path values that name real things, so generated requests reach past the 404s.
KNOWN_PATH: dict[str, list[Any]] = {
    "dataset_id": [CONDITIONAL, APPLIED, "air-readings", "closed-registry"],
    "key": ["1", "7", "40"],
    "application_id": [1],
    "grant_id": [1],
    "consent_id": [1],
    "seq": [1, 2],
}
# Operations each caller is run against: all of them, or (for the two extra roles) theirs.
CALLERS = {
    "anonymous": None,
    "app": None,
    "data_admin": None,
    "developer": r"^/(auth/|api/v1/(me|apps|applications)(/|$))",
    "auditor": r"^/api/v1/audit/",
}


@dataclass
class Run:
    """What one caller's run did."""

    operations: int = 0
    requests: int = 0
    statuses: dict[int, int] = field(default_factory=dict)
    failures: dict[tuple[str, str], str] = field(default_factory=dict)

    def summary(self) -> str:
        statuses = dict(sorted(self.statuses.items()))
        return (
            f"{self.operations} operations, {self.requests} requests, "
            f"{len(self.failures)} distinct failures; statuses {statuses}"
        )


def sometimes_known(values: Any, known: dict[str, list[Any]]) -> st.SearchStrategy:
    """The generated object, or the same with its members named in `known` swapped for
    values that exist (half of the time each)."""
    if not isinstance(values, dict):
        return st.just(values)
    chosen = {k: st.sampled_from(v) for k, v in known.items() if k in values}
    if not chosen:
        return st.just(values)
    return st.one_of(
        st.just(values), st.fixed_dictionaries(chosen).map(lambda real: {**values, **real})
    )


def fuzz(schema: Any, headers: dict[str, str], known_body: dict[str, list[Any]]) -> Run:
    run = Run()
    schema.hook("flatmap_path_parameters")(lambda _, values: sometimes_known(values, KNOWN_PATH))
    schema.hook("flatmap_body")(lambda _, values: sometimes_known(values, known_body))
    for result in schema.get_all_operations():
        operation = result.ok()
        run.operations += 1
        for mode in MODES:
            try:
                fuzz_operation(run, operation, mode, headers)
            except Unsatisfiable:
                # Nothing of this operation can be made invalid (e.g. free-form strings only).
                assert mode is schemathesis.GenerationMode.NEGATIVE, operation.label
    return run


def fuzz_operation(
    run: Run, operation: Any, mode: schemathesis.GenerationMode, headers: dict[str, str]
) -> None:
    @hypothesis_settings(
        max_examples=MODES[mode],
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def one(case: schemathesis.Case) -> None:
        response = case.call(headers=headers)
        run.requests += 1
        run.statuses[response.status_code] = run.statuses.get(response.status_code, 0) + 1
        try:
            case.validate_response(response, checks=CHECKS, headers=headers)
        except FailureGroup as group:
            for failure in group.exceptions:
                key = (operation.label, failure.title)
                run.failures.setdefault(key, f"{failure}\n{case.as_curl_command(headers)}")

    one()


@dataclass
class World:
    app: Any
    headers: dict[str, dict[str, str]]
    known_body: dict[str, list[Any]]


@pytest.fixture
def world(engine: Engine, settings: Settings, tmp_path: Path) -> Iterator[World]:
    from gateway.app import create_app

    packages = tmp_path / "packages"
    import_package(engine, write_package(packages))  # unconditional: air-readings
    for name, open_type in ((CONDITIONAL, "conditional"), (APPLIED, "conditional"),
                            ("closed-registry", "closed")):  # fmt: skip
        package = write_package(packages, name=name, open_type=open_type, fields=FIELDS, rows=ROWS)
        import_package(engine, package)
    reg = developer_with_app(engine, "bank")
    user(engine, "admin1", "data_admin")
    user(engine, "auditor1", "auditor")
    app = create_app(settings.model_copy(update={"rate_limits_enabled": False}), engine=engine)
    with TestClient(app) as client:

        def login(name: str) -> dict[str, str]:
            answer = client.post("/auth/login", json={"username": name, "password": PASSWORD})
            return {"Authorization": f"Bearer {answer.json()['access_token']}"}

        admin, developer = login("admin1"), login("bank")
        granted = client.post(
            "/api/v1/admin/grants",
            headers=admin,
            json={
                "client_id": reg.client_id,
                "dataset_id": CONDITIONAL,
                "purpose": "接口模糊测试",
                "modes": ["records", "aggregate", "verify"],
                "transforms": {"monthly_base": "bucket:1000"},
                "k": 3,
            },
        )
        assert granted.status_code == 201, granted.text
        applied = client.post(
            "/api/v1/applications",
            headers=developer,
            json={"client_id": reg.client_id, "dataset_id": APPLIED, "purpose": "接口模糊测试",
                  "modes": ["records", "aggregate"]},
        )  # fmt: skip
        assert applied.status_code == 201, applied.text
        token = client.post(
            "/oauth/token",
            auth=(reg.client_id, reg.client_secret),
            data={"grant_type": "client_credentials"},
        ).json()["access_token"]
        headers = {
            "anonymous": {},
            "app": {"Authorization": f"Bearer {token}"},
            "data_admin": admin,
            "developer": developer,
            "auditor": login("auditor1"),
        }
    known_body = {
        "client_id": [reg.client_id],
        "dataset_id": [CONDITIONAL, APPLIED, "air-readings"],
        "modes": [["records"], ["records", "aggregate", "verify"]],
        "match": [{"district": "市南区"}, {"id_number": ROWS[0][2]}, {"record_id": 3}],
        "username": ["bank", "admin1"],
    }
    yield World(app, headers, known_body)
    asgi.shutdown_lifespans()  # the writer flushes, the engine is disposed


@pytest.mark.parametrize("caller", list(CALLERS))
def test_schemathesis_finds_no_server_error_and_no_schema_violation(
    world: World, caller: str, capsys: pytest.CaptureFixture[str]
) -> None:
    started = time.monotonic()
    schema = schemathesis.openapi.from_asgi("/openapi.json", world.app)
    if CALLERS[caller]:
        schema = schema.include(path_regex=CALLERS[caller])
    run = fuzz(schema, world.headers[caller], world.known_body)
    with capsys.disabled():
        print(f"\nschemathesis as {caller}: {run.summary()} in {time.monotonic() - started:.0f} s")
    assert run.operations >= (40 if CALLERS[caller] is None else 5)
    assert run.requests >= run.operations * 2
    report = "\n\n".join(f"{op} — {title}\n{text}" for (op, title), text in run.failures.items())
    assert not run.failures, report


def test_every_json_answer_has_a_real_schema(client: TestClient) -> None:
    """No operation documents a JSON answer as a bare string or as anything-goes."""
    document = client.get("/openapi.json").json()
    weak: list[str] = []
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            for status, answer in operation["responses"].items():
                for media, content in answer.get("content", {}).items():
                    schema = content.get("schema") or {}
                    is_json = media == "application/json" or media.endswith("+json")
                    if is_json and (not schema or schema.get("type") == "string"):
                        weak.append(f"{method.upper()} {path} {status} {media}")
                if status.startswith("2") and not answer.get("content"):
                    weak.append(f"{method.upper()} {path} {status}: no content")
            if "422" in operation["responses"]:
                weak.append(f"{method.upper()} {path} declares 422; the gateway answers 400")
    assert not weak, "\n".join(weak)


# Every route that takes a row id, and the parameter it names (finding: a 500 from the driver).
ID_ROUTES = [
    ("data_admin", "POST", "/api/v1/admin/applications/{n}/approve", {}, "application_id"),
    ("data_admin", "POST", "/api/v1/admin/applications/{n}/reject", {"reason": "x"},
     "application_id"),
    ("data_admin", "POST", "/api/v1/admin/grants/{n}/revoke", {"reason": "否"}, "grant_id"),
    ("developer", "GET", "/api/v1/applications/{n}", None, "application_id"),
    ("developer", "POST", "/api/v1/me/consents/{n}/withdraw", None, "consent_id"),
    ("auditor", "GET", "/api/v1/audit/events/{n}", None, "seq"),
    ("auditor", "GET", "/api/v1/audit/events/{n}/proof", None, "seq"),
    ("auditor", "GET", "/api/v1/audit/events/1/proof?tree_size={n}", None, "tree_size"),
    ("auditor", "GET", "/api/v1/audit/events?grant_id={n}", None, "grant_id"),
    ("auditor", "GET", "/api/v1/audit/events?cursor={n}", None, "cursor"),
]  # fmt: skip


@pytest.mark.parametrize("too_large", [2**31, 2**63, 10**30])
def test_an_id_beyond_its_column_is_refused_not_a_500(
    client: TestClient, engine: Engine, too_large: int
) -> None:
    """SQLite overflowed past 2^63 - 1 and PostgreSQL's INTEGER past 2^31 - 1: both were 500s
    (found by schemathesis). Now: 400 invalid_parameter naming the parameter, audited."""
    developer_with_app(engine, "dev1")
    user(engine, "admin1", "data_admin")
    user(engine, "auditor1", "auditor")
    headers = {}
    for name, role in (("dev1", "developer"), ("admin1", "data_admin"), ("auditor1", "auditor")):
        answer = client.post("/auth/login", json={"username": name, "password": PASSWORD})
        headers[role] = {"Authorization": f"Bearer {answer.json()['access_token']}"}
    bigint = ("seq", "tree_size", "cursor")
    for role, method, path, body, parameter in ID_ROUTES:
        if too_large == 2**31 and parameter in bigint:
            continue  # a BIGINT column holds it: a plain 404 or an empty page
        url = path.format(n=too_large)
        answer = client.request(method, url, json=body, headers=headers[role])
        assert answer.status_code == 400, (url, answer.status_code, answer.text)
        problem = answer.json()
        assert problem["code"] == "invalid_parameter" and problem["parameter"] == parameter, url
    refused = client.get(
        "/api/v1/audit/events",
        params={"action": "application.approve"},
        headers=headers["auditor"],
    ).json()["data"]
    assert [(e["status"], e["outcome"]) for e in refused] == [(400, "error")]
