"""Interface services over HTTP (contract §12): a call passes the same door as a dataset
(grant, mode `call`, per-path transforms), reaches the real upstream on loopback, and
answers only the declared members, masked; every upstream failure is one of the
contract's three codes with nothing of the upstream's answer in it; the circuit opens and
closes by itself. On SQLite and PostgreSQL."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given
from hypothesis import settings as fuzzing
from hypothesis import strategies as st
from sqlalchemy.engine import Engine

from gateway.demo_upstreams import DemoUpstreams, service_packages
from gateway.settings import Settings
from services.registry import import_service
from tests.auth.helpers import PASSWORD, developer_with_app, user
from tests.conftest import TestClient

CREDIT = "enterprise-credit-verify"
SOCIAL = "social-insurance-status"
# Values the upstreams hold that no caller of these grants may see in clear.
SECRETS = ("370202198507114517", "13806421357", "王海涛", "刘晓燕", "AMR-000183", "香港中路")


@pytest.fixture
def upstream() -> Iterator[DemoUpstreams]:
    server = DemoUpstreams().start()
    yield server
    server.stop()


def control(upstream: DemoUpstreams, **state: Any) -> None:
    httpx.post(f"{upstream.url}/_control", json=state).raise_for_status()


@pytest.fixture
def world(
    engine: Engine, settings: Settings, upstream: DemoUpstreams, tmp_path: Path
) -> Iterator[dict[str, Any]]:
    from gateway.app import create_app

    for name, doc in service_packages(upstream.url).items():
        folder = tmp_path / name
        folder.mkdir()
        (folder / "service.json").write_text(json.dumps(doc, ensure_ascii=False))
        import_service(engine, folder)
    bank = developer_with_app(engine, "bank-dev")
    user(engine, "admin1", "data_admin")
    fast = settings.model_copy(
        update={"service_breaker_failures": 2, "service_breaker_seconds": 0.5}
    )
    with TestClient(create_app(fast, engine=engine)) as client:
        admin = client.post("/auth/login", json={"username": "admin1", "password": PASSWORD})
        token = client.post(
            "/oauth/token",
            auth=(bank.client_id, bank.client_secret),
            data={"grant_type": "client_credentials"},
        ).json()["access_token"]
        yield {
            "client": client,
            "admin": {"Authorization": f"Bearer {admin.json()['access_token']}"},
            "app": {"Authorization": f"Bearer {token}"},
            "client_id": bank.client_id,
        }


def grant(world: dict[str, Any], service: str, **terms: Any) -> dict[str, Any]:
    answer = world["client"].post(
        "/api/v1/admin/grants",
        json={
            "client_id": world["client_id"],
            "dataset_id": service,
            "purpose": "授信前核验企业登记信息",
            "modes": ["call"],
            **terms,
        },
        headers=world["admin"],
    )
    assert answer.status_code == 201, answer.text
    return answer.json()


def call(world: dict[str, Any], service: str, body: Any, headers: Any = None) -> httpx.Response:
    return world["client"].post(
        f"/api/v1/services/{service}/call",
        content=json.dumps(body),
        headers={"Content-Type": "application/json", **(headers or world["app"])},
    )


def events(engine: Engine, action: str = "service.call") -> list[dict[str, Any]]:
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT resource, outcome, status, fields, detail, grant_id FROM audit_events "
                "WHERE action = :a ORDER BY seq"
            ),
            {"a": action},
        ).mappings()
        return [dict(r) for r in rows]


def raw_audit(engine: Engine) -> str:
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT * FROM audit_events")).all()
    return json.dumps([list(map(str, r)) for r in rows], ensure_ascii=False)


def test_a_granted_call_answers_the_declared_paths_masked(world: dict, engine: Engine):
    refused = call(world, CREDIT, {"credit_code": "91370202MA3C1PQ52K"})
    assert refused.status_code == 403 and refused.json()["code"] == "grant_required"
    granted = grant(world, CREDIT)
    answer = call(world, CREDIT, {"credit_code": "91370202MA3C1PQ52K"})
    assert answer.status_code == 200, answer.text
    data = answer.json()["data"]
    assert data["name"] == "青岛海澜数字科技有限公司" and data["status"] == "存续"
    assert data["legal_person"] == "王**"  # level 3 name: masked as a record field is
    assert data["legal_person_id"] != "370202198507114517"
    assert [s["share"] for s in data["shareholders"]] == [0.6, 0.4]
    assert {s["name"] for s in data["shareholders"]} == {"王**", "刘**"}
    # Undeclared members never leave: the upstream's internal id, address, phone, trace.
    assert set(data) <= {
        "credit_code", "name", "status", "abnormal", "legal_person", "legal_person_id",
        "shareholders",
    }  # fmt: skip
    assert set(data["shareholders"][0]) == {"name", "share"}
    assert answer.headers["x-service-version"] == "1"
    for secret in SECRETS:
        assert secret not in answer.text and secret not in str(answer.headers)
    (denied, served) = events(engine)
    assert denied["outcome"] == "denied" and denied["resource"] == f"services/{CREDIT}"
    assert served["resource"] == f"services/{CREDIT}" and served["grant_id"] == granted["id"]
    detail = (
        served["detail"] if isinstance(served["detail"], dict) else json.loads(served["detail"])
    )
    assert detail["parameters"] == ["credit_code"] and detail["mode"] == "call"
    fields = (
        served["fields"] if isinstance(served["fields"], list) else json.loads(served["fields"])
    )
    named = {f["name"]: f["transform"] for f in fields}
    assert named["$.data.legal_person"] != "clear" and "$.data.name" in named
    for secret in SECRETS:
        assert secret not in raw_audit(engine)
    # The catalog lists it as a service; its description names levels, never the upstream.
    listed = {d["id"]: d for d in world["client"].get("/api/v1/datasets").json()["data"]}
    assert listed[CREDIT]["kind"] == "service"
    described = world["client"].get(f"/api/v1/services/{CREDIT}").json()
    assert described["parameters"][0] == {
        "name": "credit_code", "in": "body", "type": "string", "required": True, "level": 1,
        "pii": "none", "title": "统一社会信用代码",
    }  # fmt: skip
    levels = {f["path"]: f["level"] for f in described["response"]}
    assert levels["$.data.legal_person_id"] == 4 and described["call"].endswith("/call")
    assert "127.0.0.1" not in json.dumps(described)
    assert {s["id"] for s in world["client"].get("/api/v1/services").json()["data"]} == {
        CREDIT,
        SOCIAL,
    }
    # A dataset route on a service, and a call of a dataset: clear refusals.
    records = world["client"].get(f"/api/v1/datasets/{CREDIT}/records", headers=world["app"])
    assert records.status_code == 404 and "接口服务" in records.json()["detail"]


def test_bad_parameters_are_refused_before_the_upstream_is_called(
    world: dict, upstream: DemoUpstreams
):
    grant(world, SOCIAL)
    before = upstream.server.control["calls"]
    for body, parameter in (
        ({"id_number": "370202198507114517", "name": "王海涛"}, "name"),
        ({"id_number": 370202198507114517}, "id_number"),
        ({}, "id_number"),
        ([1, 2], "body"),
    ):
        answer = call(world, SOCIAL, body)
        assert answer.status_code == 400, (body, answer.text)
        problem = answer.json()
        assert problem["code"] == "invalid_parameter" and problem["parameter"] == parameter
        assert "370202198507114517" not in answer.text
    not_json = world["client"].post(
        f"/api/v1/services/{SOCIAL}/call", content=b"{oops", headers=world["app"]
    )
    assert not_json.status_code == 400
    assert upstream.server.control["calls"] == before
    answer = call(world, SOCIAL, {"id_number": "370202198507114517"})
    assert answer.status_code == 200, answer.text
    assert answer.json()["data"]["insured"] is True
    assert answer.json()["data"]["phone"] != "13806421357"
    assert upstream.server.control["calls"] == before + 1


def test_upstream_failures_are_the_contracts_codes_and_the_circuit_recovers(
    world: dict, upstream: DemoUpstreams
):
    grant(world, SOCIAL)
    person = {"id_number": "370202198507114517"}
    for answer_kind in ("html", "redirect", "huge"):
        control(upstream, answer=answer_kind)
        answer = call(world, SOCIAL, person)
        assert answer.status_code == 502 and answer.json()["code"] == "upstream_error", answer.text
        assert "系统维护中" not in answer.text and "203.0.113.9" not in answer.text
        assert "location" not in answer.headers
        control(upstream)  # one good call closes the count again
        assert call(world, SOCIAL, person).status_code == 200
    control(upstream, delay_ms=1500)  # its timeout_ms is 1000
    timed_out = call(world, SOCIAL, person)
    assert timed_out.status_code == 504 and timed_out.json()["code"] == "upstream_timeout"
    control(upstream, fail=True)
    failed = call(world, SOCIAL, person)
    assert failed.status_code == 502 and "ORA-12541" not in failed.text
    # Two consecutive failures (the timeout, the 500): the circuit is open, no call goes.
    calls = upstream.server.control["calls"]
    opened = call(world, SOCIAL, person)
    assert opened.status_code == 503 and opened.json()["code"] == "unavailable"
    assert int(opened.headers["retry-after"]) >= 1
    assert upstream.server.control["calls"] == calls
    # The other service is not affected.
    grant(world, CREDIT)
    assert call(world, CREDIT, {"credit_code": "91370211MA3D2RT17X"}).status_code == 200
    control(upstream)  # the upstream is back: after the cool-down the probe closes it
    deadline = time.monotonic() + 15
    while (status := call(world, SOCIAL, person).status_code) != 200:
        assert status == 503 and time.monotonic() < deadline
        time.sleep(0.1)


def test_calls_under_a_product_bound_grant_are_metered_like_records(world: dict, engine: Engine):
    from datetime import date, timedelta

    from operation import statements
    from tests.operation.test_operation_api import uscc

    client, admin = world["client"], world["admin"]
    operator = client.post(
        "/api/v1/admin/operators",
        json={"name": "青岛金融数据运营有限公司", "credit_code": uscc()},
        headers=admin,
    ).json()
    agreement = client.post(
        "/api/v1/admin/agreements",
        json={
            "operator_id": operator["id"],
            "title": "社保核验授权运营协议",
            "datasets": [],
            "services": [SOCIAL],
            "modes": ["call"],
            "starts_on": (date.today() - timedelta(days=1)).isoformat(),
            "ends_on": (date.today() + timedelta(days=900)).isoformat(),
        },
        headers=admin,
    )
    assert agreement.status_code == 201, agreement.text
    active = client.post(
        f"/api/v1/admin/agreements/{agreement.json()['id']}/activate", json={}, headers=admin
    )
    assert active.json()["status"] == "active", active.text
    product = client.post(
        "/api/v1/admin/products",
        json={
            "code": "QD-HRSS-0001",
            "operator_id": operator["id"],
            "title": "参保状态核验",
            "datasets": [],
            "services": [SOCIAL],
            "modes": ["call"],
            "unit": "call",
            "price_fen": 5,
            "cap_fen": 10,
        },
        headers=admin,
    )
    assert product.status_code == 201, product.text
    scenario = client.post(
        "/api/v1/scenarios",
        json={"name": "信贷申请人参保核验", "category": "industry", "organization": "青岛某银行"},
        headers=admin,
    ).json()
    client.post(f"/api/v1/admin/scenarios/{scenario['id']}/approve", headers=admin)
    granted = grant(world, SOCIAL)
    bound = client.post(
        f"/api/v1/admin/grants/{granted['id']}/operation",
        json={"scenario_id": scenario["id"], "product_id": product.json()["id"]},
        headers=admin,
    )
    assert bound.status_code == 200, bound.text
    for _ in range(3):
        assert call(world, SOCIAL, {"id_number": "370202198507114517"}).status_code == 200
    assert call(world, SOCIAL, {"nobody": 1}).status_code == 400  # refusals are free
    (line,) = statements.compute(engine, statements.current_month())
    assert (line["calls"], line["amount_fen"]) == (3, 15)
    assert statements.reconcile(engine, statements.current_month()) == []


def test_signed_calls_run_as_the_app_and_refuse_replays_and_forgeries(
    world: dict, engine: Engine, settings: Settings, redis_url: str
):
    import uuid

    from gateway.app import create_app
    from services.signing import sign_request

    client = world["client"]
    grant(world, CREDIT)
    developer = client.post("/auth/login", json={"username": "bank-dev", "password": PASSWORD})
    owner = {"Authorization": f"Bearer {developer.json()['access_token']}"}
    made = client.post(f"/api/v1/apps/{world['client_id']}/signing-secret", headers=owner)
    assert made.status_code == 200, made.text
    assert made.headers["cache-control"] == "no-store"
    secret = made.json()["signing_secret"].encode()
    path = f"/api/v1/services/{CREDIT}/call"
    body = json.dumps({"credit_code": "91370202MA3C1PQ52K"}).encode()

    def signed(**change: Any) -> dict[str, str]:
        args: dict[str, Any] = {"client_id": world["client_id"], "secret": secret, "body": body}
        return {"Content-Type": "application/json", **sign_request("POST", path, **(args | change))}

    good = signed()
    answer = client.post(path, content=body, headers=good)
    assert answer.status_code == 200, answer.text
    assert answer.json()["data"]["legal_person"] == "王**"
    served = events(engine)[-1]
    detail = json.loads(served["detail"]) if isinstance(served["detail"], str) else served["detail"]
    assert detail["auth"] == "signature" and served["outcome"] == "allowed"
    stale = int(time.time() * 1000) - 6 * 60 * 1000
    refusals = {
        "replayed": (path, body, good),
        "stale": (path, body, signed(timestamp_ms=stale)),
        "another path": (f"/api/v1/services/{SOCIAL}/call", body, signed()),
        "another body": (path, b'{"credit_code": "91370211MA3D2RT17X"}', signed()),
        "another secret": (path, body, signed(secret=b"not the secret")),
        "missing header": (path, body, {k: v for k, v in signed().items() if k != "X-Nonce"}),
    }
    for why, (where, content, headers) in refusals.items():
        refused = client.post(where, content=content, headers=headers)
        assert refused.status_code == 401, (why, refused.text)
        assert refused.json()["code"] == "unauthorized", why
        assert secret.decode() not in refused.text
    denied = [e for e in events(engine, "access.denied") if e["status"] == 401]
    assert len(denied) >= len(refusals)
    # Two hosts sharing Redis: a nonce used on one is refused on the other.
    shared = settings.model_copy(
        update={"redis_url": redis_url, "rate_limit_prefix": f"T{uuid.uuid4().hex[:12]}"}
    )
    with (
        TestClient(create_app(shared, engine=engine)) as host_a,
        TestClient(create_app(shared, engine=engine)) as host_b,
    ):
        once = signed()
        assert host_a.post(path, content=body, headers=once).status_code == 200
        assert host_b.post(path, content=body, headers=once).status_code == 401


def test_the_portal_shows_a_service_and_a_developer_applies_for_it(
    world: dict, upstream: DemoUpstreams
):
    from tests.portal.web import TOKEN, web_login

    client = world["client"]
    page = client.get(f"/datasets/{SOCIAL}")
    assert page.status_code == 200
    assert "接口服务" in page.text and f"/api/v1/services/{SOCIAL}/call" in page.text
    assert 'id="service-parameters"' in page.text and "id_number" in page.text
    assert "数据预览" not in page.text and "/export?format=csv" not in page.text
    assert upstream.url not in page.text and "/hrss/" not in page.text  # no upstream address
    web_login(client, "bank-dev", PASSWORD)
    form = client.get("/console/apply", params={"dataset": SOCIAL})
    assert 'value="call"' in form.text and 'value="records"' not in form.text
    submitted = client.post(
        "/console/applications",
        data={
            "csrf_token": TOKEN.search(form.text).group(1),
            "dataset_id": SOCIAL,
            "client_id": world["client_id"],
            "fields": ["$.code", "$.data.insured", "$.data.months"],
            "modes": ["call"],
            "purpose": "授信前核验借款人参保状态",
            "duration_days": "90",
        },
        follow_redirects=False,
    )
    assert submitted.status_code == 303, submitted.text
    (pending,) = client.get("/api/v1/admin/applications", headers=world["admin"]).json()["data"]
    approved = client.post(
        f"/api/v1/admin/applications/{pending['id']}/approve", json={}, headers=world["admin"]
    )
    assert approved.status_code == 200 and approved.json()["modes"] == ["call"], approved.text
    answer = call(world, SOCIAL, {"id_number": "370202198507114517"})
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"code": 0, "data": {"insured": True, "months": 118}}


SENTINEL = "机密值-370202198507114517"
# What a fuzzed upstream may answer: JSON of any shape, the declared members often present
# with wrong types or sensitive sentinel values, deep and wide.
_leaf = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.just(SENTINEL),
    st.text(max_size=8),
)  # fmt: skip
_json = st.recursive(
    _leaf,
    lambda inner: st.one_of(
        st.lists(inner, max_size=6),
        st.dictionaries(
            st.sampled_from(["code", "data", "name", "phone", "unit", "insured", "x"]),
            inner,
            max_size=6,
        ),
    ),
    max_leaves=40,
)
_answers = st.one_of(
    _json.map(lambda v: json.dumps(v, ensure_ascii=False)),
    st.builds(
        lambda name, phone, extra: json.dumps(
            {"code": 0, "data": {"name": name, "phone": phone, "secret": extra}},
            ensure_ascii=False,
        ),
        _json,
        _json,
        _json,
    ),
    st.sampled_from(["", "{", "[1,", "null", '"text"', "{" * 2000 + "}" * 2000]),
)


def test_fuzzed_upstream_answers_never_500_never_leak(
    world: dict, engine: Engine, settings: Settings, upstream: DemoUpstreams
):
    from gateway.app import create_app

    grant(world, SOCIAL)
    patient = settings.model_copy(update={"service_breaker_failures": 1000})  # keep calling
    with TestClient(create_app(patient, engine=engine)) as client:

        @fuzzing(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
        @given(raw=_answers)
        def one(raw: str) -> None:
            control(upstream, answer="raw", raw=raw)
            answer = client.post(
                f"/api/v1/services/{SOCIAL}/call",
                json={"id_number": "370202198507114517"},
                headers=world["app"],
            )
            assert answer.status_code in (200, 502), (raw[:200], answer.text)
            if answer.status_code == 502:
                assert answer.json()["code"] == "upstream_error"
                assert SENTINEL not in answer.text  # nothing of the upstream's answer
                return
            body = answer.json()
            assert isinstance(body, dict) and set(body) <= {"code", "message", "data"}
            data = body.get("data")
            if isinstance(data, dict):
                assert set(data) <= {"name", "insured", "unit", "months", "phone"}
                for key in ("insured", "unit", "months"):
                    assert not isinstance(data.get(key), dict | list), (key, data)
                for key in ("name", "phone"):  # level 3: never the value as sent
                    assert SENTINEL not in json.dumps(data.get(key), ensure_ascii=False)

        one()


def test_a_dataset_and_a_service_never_share_a_name(world: dict, engine: Engine, tmp_path: Path):
    from catalog.importer import import_package
    from catalog.package import PackageError
    from tests.packages import write_package

    with pytest.raises(PackageError, match="已是一个接口服务"):
        import_package(engine, write_package(tmp_path / "pkgs", name=SOCIAL), replace=True)
    assert world["client"].get(f"/api/v1/services/{SOCIAL}").status_code == 200
    import_package(engine, write_package(tmp_path / "pkgs2", name="plain-table"))
    folder = tmp_path / "svc"
    folder.mkdir()
    doc = {**service_packages("http://127.0.0.1:9")[SOCIAL], "name": "plain-table"}
    (folder / "service.json").write_text(json.dumps(doc, ensure_ascii=False))
    with pytest.raises(PackageError, match="已是一个数据集"):
        import_service(engine, folder)
