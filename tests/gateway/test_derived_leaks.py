"""Issue 12, findings 3–7: nothing derived from a hidden value leaves the gateway.

Each test is the attack as the issue reports it, run over HTTP against a small package
shaped like the demo social-insurance data (record 777 pays a monthly base of 4416, the
demo's floor), and checks the attack now fails: sealed cursors, no key oracle on
`/records/{pk}`, no sums of masked fields, k on the whole matching set, differential
privacy decided on noisy numbers with an ε floor, a brake on verify, quotas everywhere.
"""

from __future__ import annotations

import base64
from functools import partial
from pathlib import Path

import orjson
import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from audit.models import AuditEvent
from auth.secrets import identity_hmac
from catalog.importer import import_package
from catalog.package import PackageError
from gateway.settings import Settings
from tests.auth.helpers import PASSWORD, developer_with_app, user
from tests.conftest import TestClient
from tests.gateway.test_classified_access import SI_FIELDS
from tests.keys import keys_of
from tests.packages import import_conditional, write_package

SI = "/api/v1/datasets/social-insurance"
LEDGER = "/api/v1/datasets/pension-ledger"
TARGET = 777
TARGET_BASE = 4416
TARGET_PHONE = "13701233160"  # shown masked as 137****3160
DISTRICTS = ["市南区", "市北区", "崂山区"]

# A conditional dataset whose primary key is the identity number (finding 3).
LEDGER_FIELDS = [
    {"name": "id_number", "type": "string", "level": 4, "pii": "id_number"},
    {"name": "district", "type": "string", "level": 1},
    {"name": "pension", "type": "integer", "level": 2},
]


def id_number(i: int) -> str:
    return f"11010519491231{i:04d}"


def si_rows() -> list[list]:
    rows = []
    for i in range(1, 801):
        base = TARGET_BASE if i == TARGET else 5000 + (i * 37) % 9000
        phone = TARGET_PHONE if i == TARGET else f"139{i:08d}"
        rows.append(
            [i, f"李{'四五六七'[i % 4]}", id_number(i), phone, DISTRICTS[i % 3], base, i % 200]
        )
    return rows


def ledger_rows(count: int = 30) -> list[list]:
    return [[id_number(i), DISTRICTS[i % 3], 3000 + i] for i in range(1, count + 1)]


def import_ledger(engine: Engine, packages: Path, name: str = "pension-ledger", **kw) -> object:
    package = write_package(
        packages,
        name=name,
        title="养老金台账",
        open_type="conditional",
        fields=LEDGER_FIELDS,
        rows=ledger_rows(),
    )
    return import_package(engine, package, **kw)


@pytest.fixture
def world(client: TestClient, engine: Engine, packages: Path, settings: Settings) -> dict:
    key = keys_of(settings, engine).identity
    import_conditional(
        engine, packages, fields=SI_FIELDS, rows=si_rows(), subject_hmac=partial(identity_hmac, key)
    )
    import_ledger(engine, packages)
    apps = [developer_with_app(engine, name) for name in ("bank", "rival")]
    user(engine, "admin1", "data_admin")

    def token(reg: object) -> dict[str, str]:
        answer = client.post(
            "/oauth/token",
            auth=(reg.client_id, reg.client_secret),  # type: ignore[attr-defined]
            data={"grant_type": "client_credentials"},
        )
        return {"Authorization": f"Bearer {answer.json()['access_token']}"}

    admin = client.post("/auth/login", json={"username": "admin1", "password": PASSWORD})
    return {
        "client_id": apps[0].client_id,
        "rival_id": apps[1].client_id,
        "app": token(apps[0]),
        "rival": token(apps[1]),
        "admin": {"Authorization": f"Bearer {admin.json()['access_token']}"},
    }


def grant(
    client: TestClient,
    world: dict,
    dataset: str = "social-insurance",
    app: str = "client_id",
    **terms,
) -> dict:
    body = {
        "client_id": world[app],
        "dataset_id": dataset,
        "purpose": "个人贷款授信评估",
        "modes": ["records"],
        **terms,
    }
    response = client.post("/api/v1/admin/grants", json=body, headers=world["admin"])
    assert response.status_code == 201, response.text
    return response.json()


def last_event(engine: Engine, action: str) -> AuditEvent:
    with Session(engine) as session:
        event = session.exec(
            select(AuditEvent)
            .where(AuditEvent.action == action)
            .order_by(col(AuditEvent.seq).desc())
        ).first()
    assert event is not None, f"no {action} event"
    return event


def assert_refused(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    problem = response.json()
    assert problem["code"] == code
    assert any("\u4e00" <= ch <= "\u9fff" for ch in problem["detail"]), problem["detail"]
    return problem


# --- finding 3: cursors and single records -------------------------------------------------


def test_cursors_never_carry_the_hidden_key(client: TestClient, world: dict):
    grant(client, world, dataset="pension-ledger")
    first = client.get(f"{LEDGER}/records", headers=world["app"], params={"limit": 1})
    body = first.json()
    assert body["fields"][0] == {"name": "id_number", "transform": "pseudonym"}
    cursor = body["next_cursor"]
    decoded = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
    for text in (cursor, decoded.decode("latin-1"), first.headers["link"]):
        assert id_number(1) not in text and "11010519491231" not in text
    # Sealed cursors still page exactly: every row once, none skipped or repeated.
    seen, params = [], {"limit": 7}
    while True:
        page = client.get(f"{LEDGER}/records", headers=world["app"], params=params).json()
        seen.extend(row["id_number"] for row in page["data"])
        if page["next_cursor"] is None:
            break
        params = {"limit": 7, "cursor": page["next_cursor"]}
    assert len(seen) == len(set(seen)) == 30


def test_pages_are_not_ordered_by_a_hidden_key(client: TestClient, world: dict):
    """The ledger's key is the identity number, sent as a pseudonym; its rows were imported
    in key order, and `pension` (clear) grows with it. Pages ordered by the key would tell
    each row's rank among the hidden numbers; they are ordered by the row key instead:
    stable from request to request, exact when paged, unrelated to the key."""
    grant(client, world, dataset="pension-ledger")

    def pensions(limit: int) -> list[int]:
        seen, params = [], {"limit": limit}
        while True:
            page = client.get(f"{LEDGER}/records", headers=world["app"], params=params).json()
            seen.extend(row["pension"] for row in page["data"])
            if page["next_cursor"] is None:
                return seen
            params = {"limit": limit, "cursor": page["next_cursor"]}

    paged = pensions(7)
    assert sorted(paged) == [3000 + i for i in range(1, 31)]  # every row once
    assert paged != sorted(paged) and paged != sorted(paged, reverse=True)
    assert pensions(30) == paged == pensions(4)  # one order, however it is paged
    exported = client.get(f"{LEDGER}/export", headers=world["app"], params={"format": "jsonl"})
    assert [orjson.loads(line)["pension"] for line in exported.content.splitlines()] == paged
    # ordering by the hidden key itself stays refused
    by_key = client.get(f"{LEDGER}/records", headers=world["app"], params={"order_by": "id_number"})
    assert_refused(by_key, 400, "field_not_permitted")


def test_a_hand_made_cursor_is_refused(client: TestClient, world: dict, engine: Engine):
    grant(client, world, dataset="pension-ledger", quotas={"requests_per_day": 100})
    # The old format, as the issue decoded it: a range test on the hidden key.
    for forged in (["id_number", [id_number(15)]], ["id_number", ["110105194912310021"]]):
        cursor = base64.urlsafe_b64encode(orjson.dumps(forged)).rstrip(b"=").decode()
        response = client.get(f"{LEDGER}/records", headers=world["app"], params={"cursor": cursor})
        assert_refused(response, 400, "invalid_parameter")
        assert id_number(15) not in response.text
    event = last_event(engine, "data.records")
    assert event.status == 400 and event.detail["error"] == "invalid_parameter"
    policy = client.get(f"{LEDGER}/policy", headers=world["app"]).json()
    assert policy["quotas"]["requests_per_day"]["used"] == 0  # refused before it counted


def test_cursors_are_bound_to_dataset_version_and_caller(
    client: TestClient, world: dict, engine: Engine, packages: Path
):
    import_ledger(engine, packages, name="pension-ledger-copy")
    for dataset in ("pension-ledger", "pension-ledger-copy"):
        grant(client, world, dataset=dataset)
        grant(client, world, dataset=dataset, app="rival_id")
    cursor = client.get(f"{LEDGER}/records", headers=world["app"], params={"limit": 3}).json()[
        "next_cursor"
    ]
    assert client.get(
        f"{LEDGER}/records", headers=world["app"], params={"limit": 3, "cursor": cursor}
    ).json()["data"]
    tampered = cursor[:-2] + ("A" if cursor[-2] != "A" else "B") + cursor[-1]
    refused = [
        client.get(f"{LEDGER}/records", headers=world["rival"], params={"cursor": cursor}),
        client.get(
            "/api/v1/datasets/pension-ledger-copy/records",
            headers=world["app"],
            params={"cursor": cursor},
        ),
        client.get(f"{LEDGER}/records", headers=world["app"], params={"cursor": tampered}),
    ]
    import_ledger(engine, packages, replace=True)  # version 2
    refused.append(client.get(f"{LEDGER}/records", headers=world["app"], params={"cursor": cursor}))
    details = {assert_refused(r, 400, "invalid_parameter")["detail"] for r in refused}
    assert len(details) == 1  # one answer: which binding failed is not said


def test_single_record_by_a_hidden_key_is_refused_like_a_filter(
    client: TestClient, world: dict, engine: Engine
):
    grant(client, world, dataset="pension-ledger", quotas={"rows_per_day": 100})
    bodies = []
    for key in (id_number(3), id_number(9999), "not-a-number"):
        response = client.get(f"{LEDGER}/records/{key}", headers=world["app"])
        problem = assert_refused(response, 403, "field_not_permitted")
        assert key not in response.text
        bodies.append({k: v for k, v in problem.items() if k != "request_id"})
    assert bodies[0] == bodies[1] == bodies[2]  # present, absent, malformed: one answer
    assert last_event(engine, "data.record").status == 403
    assert_refused(
        client.get(f"{LEDGER}/records", headers=world["app"], params={"id_number": id_number(3)}),
        400,
        "field_not_permitted",
    )
    policy = client.get(f"{LEDGER}/policy", headers=world["app"]).json()
    assert policy["quotas"]["rows_per_day"]["used"] == 0


def test_importer_warns_for_a_sensitive_key_and_refuses_it_in_open_data(
    engine: Engine, packages: Path
):
    result = import_ledger(engine, packages)
    assert len(result.warnings) == 1 and "主键 primaryKey id_number 为 4 级" in result.warnings[0]
    open_package = write_package(
        packages,
        name="open-ledger",
        open_type="unconditional",
        fields=[{"name": "phone", "type": "string", "level": 3, "pii": "phone"}],
        rows=[["13812345678"]],
    )
    with pytest.raises(PackageError) as refused:
        import_package(engine, open_package)
    message = str(refused.value)
    assert "主键 primaryKey phone 为 3 级" in message and "\n" not in message
    assert "13812345678" not in message


# --- finding 4: differencing ---------------------------------------------------------------


def test_sums_of_a_bucketed_field_cannot_be_differenced(client: TestClient, world: dict):
    grant(client, world, modes=["aggregate"], transforms={"monthly_base": "bucket:5000"}, k=5)
    for metric in ("sum:monthly_base", "avg:monthly_base"):
        answers = [
            client.get(
                f"{SI}/aggregate",
                headers=world["app"],
                params={"metrics": f"count,{metric}", "record_id__lte": str(upto)},
            )
            for upto in (TARGET, TARGET - 1)
        ]
        for answer in answers:
            assert_refused(answer, 400, "field_not_permitted")
            assert str(TARGET_BASE) not in answer.text
    # A level-2 field the grant redacts is not comparable either.
    grant(client, world, modes=["aggregate"], transforms={"months_paid": "redact"})
    assert_refused(
        client.get(f"{SI}/aggregate", headers=world["app"], params={"metrics": "max:months_paid"}),
        400,
        "field_not_permitted",
    )


def test_k_applies_to_the_whole_matching_set(client: TestClient, world: dict):
    grant(client, world, modes=["aggregate"], k=5)

    def ask(**params: str) -> dict:
        answer = client.get(f"{SI}/aggregate", headers=world["app"], params=params)
        assert answer.status_code == 200, answer.text
        return {k: v for k, v in answer.json().items() if k != "request_id"}

    one = ask(group_by="district", record_id=str(TARGET))
    none = ask(group_by="district", record_id="100000")
    assert one == none and one["groups"] == [] and one["suppressed_groups"] is None
    assert ask(record_id=str(TARGET)) == ask(record_id="100000")  # no group_by as well
    assert ask(metrics="count", record_id__lte="4") == ask(metrics="count", record_id="100000")
    # At or above k the answer is as before.
    big = ask(group_by="district")
    assert sum(g["count"] for g in big["groups"]) == 800 and big["suppressed_groups"] == 0


# --- finding 5: the privacy budget ---------------------------------------------------------


def test_tiny_epsilon_is_refused_not_charged(client: TestClient, world: dict, engine: Engine):
    grant(client, world, modes=["aggregate"], epsilon=0.1, k=5)
    attack = {"group_by": "record_id", "record_id": str(TARGET), "monthly_base__gte": "4000"}
    for epsilon in ("1e-9", "0.009", "0.2"):
        assert_refused(
            client.get(
                f"{SI}/aggregate", headers=world["app"], params={**attack, "epsilon": epsilon}
            ),
            400,
            "invalid_parameter",
        )
    policy = client.get(f"{SI}/policy", headers=world["app"]).json()["privacy"]
    assert policy["epsilon_spent"] == 0
    assert policy["epsilon_floor"] == 0.01 and policy["epsilon_ceiling"] == 0.1
    assert last_event(engine, "data.aggregate").detail["error"] == "invalid_parameter"


def test_binary_search_on_a_hidden_value_learns_nothing(client: TestClient, world: dict):
    """The issue's attack at the lowest ε the grant allows: the answer for "the hidden base
    is ≥ X" reads the same whether it is true or false, until the budget is spent."""
    grant(client, world, modes=["aggregate"], epsilon=0.1, k=5)
    answers = {True: [], False: []}
    for i in range(10):
        above = i % 2 == 0  # 4416 ≥ 4416 is true, 4416 ≥ 4417 is false
        params = {
            "group_by": "record_id",
            "record_id": str(TARGET),
            "monthly_base__gte": str(TARGET_BASE if above else TARGET_BASE + 1),
            "epsilon": "0.01",
        }
        body = client.get(f"{SI}/aggregate", headers=world["app"], params=params).json()
        answers[above].append((body["groups"], body["suppressed_groups"]))
    assert answers[True] == answers[False] == [([], None)] * 5
    over = client.get(
        f"{SI}/aggregate", headers=world["app"], params={"record_id": "1", "epsilon": "0.01"}
    )
    assert_refused(over, 403, "privacy_budget_exhausted")


def test_private_groups_are_chosen_on_noisy_counts(client: TestClient, world: dict):
    grant(client, world, modes=["aggregate"], epsilon=5.0, k=5)
    body = client.get(
        f"{SI}/aggregate",
        headers=world["app"],
        params={
            "group_by": "district",
            "metrics": "count,sum:monthly_base",
            "bounds": "monthly_base:0:20000",
            "epsilon": "1",
        },
    ).json()
    assert body["suppressed_groups"] is None and body["privacy"]["threshold"] >= 5
    counts = {g["district"]: g["count"] for g in body["groups"]}
    assert set(counts) == set(DISTRICTS) and all(abs(c - 267) < 60 for c in counts.values())


@pytest.mark.parametrize(
    ("terms", "parameter"),
    [
        ({"epsilon_floor": 0.01}, "epsilon_floor"),  # no budget to bound
        ({"epsilon": 0.5, "epsilon_floor": 0.6}, "epsilon_floor"),
        ({"epsilon": 0.5, "epsilon_ceiling": 0}, "epsilon_ceiling"),
        ({"epsilon": 0.5, "epsilon_floor": 0.1, "epsilon_ceiling": 0.05}, "epsilon_ceiling"),
    ],
)
def test_bad_epsilon_terms_are_refused(client: TestClient, world: dict, terms: dict, parameter):
    body = {
        "client_id": world["client_id"],
        "dataset_id": "social-insurance",
        "purpose": "统计分析",
        "modes": ["aggregate"],
        **terms,
    }
    answer = client.post("/api/v1/admin/grants", json=body, headers=world["admin"])
    assert assert_refused(answer, 400, "invalid_parameter")["parameter"] == parameter
    assert client.get("/api/v1/admin/grants", headers=world["admin"]).json()["data"] == []


def test_grant_shows_its_epsilon_terms(client: TestClient, world: dict):
    shown = grant(client, world, modes=["aggregate"], epsilon=2.0, epsilon_ceiling=0.5)
    assert shown["epsilon_floor"] == 0.01 and shown["epsilon_ceiling"] == 0.5


# --- finding 6: verify as an oracle --------------------------------------------------------


def guess_hidden_digits(client: TestClient, headers: dict, **extra: str) -> tuple[int, str | None]:
    """The attack of finding 6: try every value of the four hidden digits of 137****3160.
    (calls made, the number found or None)."""
    for calls, digits in enumerate(range(10_000), start=1):
        phone = f"137{digits:04d}3160"
        answer = client.post(
            f"{SI}/verify", headers=headers, json={"match": {"phone": phone, **extra}}
        )
        if answer.status_code != 200:
            return calls, None
        if answer.json()["match"]:
            return calls, phone
    return 10_000, None


def test_guessing_a_masked_phone_is_stopped_and_the_grant_suspended(
    client: TestClient, world: dict, engine: Engine
):
    shown = grant(client, world, modes=["verify"], fields=["phone", "id_number"])
    calls, found = guess_hidden_digits(client, world["app"])
    assert found is None and calls <= 51  # TARGET_PHONE is guess 124: never reached
    refused = client.post(
        f"{SI}/verify", headers=world["app"], json={"match": {"phone": TARGET_PHONE}}
    )
    assert_refused(refused, 403, "grant_required")
    grants = client.get("/api/v1/admin/grants", headers=world["admin"]).json()["data"]
    assert grants[0]["status"] == "suspended" and grants[0]["suspend_reason"] == "verify_sweep"
    notices = client.get("/api/v1/admin/notices?unread=true", headers=world["admin"]).json()
    assert [n["grant_id"] for n in notices["data"]] == [shown["id"]]
    assert "3160" not in str(notices) and "1370" not in str(notices)
    event = last_event(engine, "grant.suspend")
    assert event.grant_id == shown["id"] and event.detail["reason"] == "verify_sweep"
    # The reviewer looks, reinstates, and the grant works again.
    read = client.post(
        f"/api/v1/admin/notices/{notices['data'][0]['id']}/read", headers=world["admin"]
    )
    assert read.json()["read_at"] is not None
    back = client.post(
        f"/api/v1/admin/grants/{shown['id']}/reinstate",
        headers=world["admin"],
        json={"reason": "已核实为测试流量"},
    )
    assert back.status_code == 200 and back.json()["status"] == "active"
    again = client.post(
        f"{SI}/verify", headers=world["app"], json={"match": {"phone": TARGET_PHONE}}
    )
    assert again.json() == {"match": True}
    assert last_event(engine, "grant.reinstate").status == 200


def test_verifying_many_people_suspends_like_the_audit_flag_says(
    client: TestClient, world: dict, engine: Engine
):
    """A sweep of hits (real identity numbers, every answer true) is what the audit log's
    `verify_sweep` flag names: it suspends the grant as many misses do, at the flag's
    threshold, instead of showing up on the dashboard afterwards."""
    from audit.stats import VERIFY_SWEEP

    shown = grant(client, world, modes=["verify"], fields=["id_number"])
    answers = [
        client.post(
            f"{SI}/verify", headers=world["app"], json={"match": {"id_number": id_number(i)}}
        )
        for i in range(1, VERIFY_SWEEP + 2)
    ]
    assert [a.json() for a in answers[:VERIFY_SWEEP]] == [{"match": True}] * VERIFY_SWEEP
    assert_refused(answers[VERIFY_SWEEP], 403, "grant_required")  # suspended after the 50th
    grants = client.get("/api/v1/admin/grants", headers=world["admin"]).json()["data"]
    assert grants[0]["status"] == "suspended" and grants[0]["suspend_reason"] == "verify_sweep"
    event = last_event(engine, "grant.suspend")
    assert event.grant_id == shown["id"]
    assert event.detail == {
        "decision": "suspend",
        "grant_status": "suspended",
        "reason": "verify_sweep",
        "distinct_values": VERIFY_SWEEP,
        "threshold": VERIFY_SWEEP,
    }
    notices = client.get("/api/v1/admin/notices?unread=true", headers=world["admin"]).json()
    assert [n["grant_id"] for n in notices["data"]] == [shown["id"]]
    # and the dashboard's flag agrees
    user(engine, "auditor1", "auditor")
    auditor = client.post("/auth/login", json={"username": "auditor1", "password": PASSWORD})
    flags = client.get(
        "/api/v1/audit/stats",
        headers={"Authorization": f"Bearer {auditor.json()['access_token']}"},
    ).json()["anomalies"]
    assert [f["client_id"] for f in flags if f["kind"] == "verify_sweep"] == [world["client_id"]]
    # A reviewer who reinstates it has judged the day's traffic: the next new person does
    # not suspend it again.
    back = client.post(
        f"/api/v1/admin/grants/{shown['id']}/reinstate",
        headers=world["admin"],
        json={"reason": "已核实为批量开户核验"},
    )
    assert back.status_code == 200
    for i in (VERIFY_SWEEP + 5, VERIFY_SWEEP + 6):
        again = client.post(
            f"{SI}/verify", headers=world["app"], json={"match": {"id_number": id_number(i)}}
        )
        assert again.json() == {"match": True}


def test_one_subject_value_is_verified_a_few_times_a_day(client: TestClient, world: dict):
    grant(client, world, modes=["verify"], fields=["phone", "id_number"])
    calls, found = guess_hidden_digits(client, world["app"], id_number=id_number(TARGET))
    assert found is None and calls == 6  # five answers for that person today, then 429
    refused = client.post(
        f"{SI}/verify",
        headers=world["app"],
        json={"match": {"id_number": id_number(TARGET), "phone": TARGET_PHONE}},
    )
    problem = assert_refused(refused, 429, "quota_exceeded")
    assert problem["quota"] == "verifies_per_subject_per_day"
    other = client.post(
        f"{SI}/verify", headers=world["app"], json={"match": {"id_number": id_number(5)}}
    )
    assert other.json() == {"match": True}  # another person is not held up


def test_verify_has_a_daily_quota_when_the_reviewer_sets_none(
    client: TestClient, world: dict, settings: Settings
):
    client.app.state.settings = settings.model_copy(update={"verify_default_per_day": 3})
    grant(client, world, modes=["verify"], fields=["id_number"])
    statuses = [
        client.post(
            f"{SI}/verify", headers=world["app"], json={"match": {"id_number": id_number(i)}}
        ).status_code
        for i in range(1, 5)
    ]
    assert statuses == [200, 200, 200, 429]
    policy = client.get(f"{SI}/policy", headers=world["app"]).json()
    assert policy["quotas"]["verifies_per_day"] == {"limit": 3, "used": 3, "remaining": 0}


def test_verify_says_only_true_or_false(client: TestClient, world: dict):
    grant(client, world, modes=["verify"], fields=["phone", "id_number"])
    absent = client.post(
        f"{SI}/verify", headers=world["app"], json={"match": {"id_number": id_number(9999)}}
    )
    mismatch = client.post(
        f"{SI}/verify",
        headers=world["app"],
        json={"match": {"id_number": id_number(TARGET), "phone": "13800000000"}},
    )
    assert absent.content == mismatch.content == b'{"match":false}'
    assert set(absent.headers) == set(mismatch.headers)


# --- finding 7: quotas on every data route -------------------------------------------------


def test_single_records_count_against_the_quotas(client: TestClient, world: dict):
    grant(client, world, quotas={"requests_per_day": 3, "rows_per_day": 5})
    assert (
        len(client.get(f"{SI}/records", headers=world["app"], params={"limit": 5}).json()["data"])
        == 5
    )
    rows_out = client.get(f"{SI}/records/1", headers=world["app"])
    assert assert_refused(rows_out, 429, "quota_exceeded")["quota"] == "rows_per_day"
    grant(client, world, quotas={"requests_per_day": 3})  # a new version: rows unlimited
    assert client.get(f"{SI}/records/2", headers=world["app"]).status_code == 200  # the 3rd
    requests_out = client.get(f"{SI}/records/3", headers=world["app"])
    assert assert_refused(requests_out, 429, "quota_exceeded")["quota"] == "requests_per_day"
    assert "retry-after" in requests_out.headers


def test_single_record_refunds_a_missing_row_and_aggregates_count_too(
    client: TestClient, world: dict
):
    grant(
        client,
        world,
        modes=["records", "aggregate"],
        quotas={"requests_per_day": 4, "rows_per_day": 1},
    )
    assert client.get(f"{SI}/records/100000", headers=world["app"]).status_code == 404
    assert client.get(f"{SI}/records/1", headers=world["app"]).status_code == 200  # row refunded
    assert client.get(f"{SI}/aggregate", headers=world["app"]).status_code == 200
    assert client.get(f"{SI}/aggregate", headers=world["app"]).status_code == 200
    over = client.get(f"{SI}/aggregate", headers=world["app"])
    assert assert_refused(over, 429, "quota_exceeded")["quota"] == "requests_per_day"
