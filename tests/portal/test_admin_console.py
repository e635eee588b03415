"""The administrator console over HTTP: the review queue with who is behind each app,
approval through a confirm step whose policy is exactly what the app then reads, rejection,
grants (views, filters, revocation, direct grants), datasets, 纠错 and demand workflows;
bad input refused in Chinese naming the field, nothing saved."""

from __future__ import annotations

import json
import re
from html import unescape
from pathlib import Path

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from tests.portal.admin_setup import DATASET, bank_application, signed_in
from tests.portal.web import TOKEN

POLICY = re.compile(r'<pre class="policy" id="policy-json">(.*?)</pre>', re.S)


def count(engine: Engine, table: str, where: str = "") -> int:
    with engine.connect() as conn:
        return conn.execute(sa.text(f"SELECT count(*) FROM {table} {where}")).scalar()


def token_of(page_text: str) -> str:
    return TOKEN.search(page_text).group(1)


@pytest.fixture
def admin(client: TestClient, engine: Engine) -> TestClient:
    return signed_in(client, engine, "data_admin")


def conditions(**extra: object) -> dict[str, object]:
    form: dict[str, object] = {
        "fields": ["record_id", "district", "person_name", "phone", "id_number"],
        "modes": ["records"],
        "transform.phone": "redact",
        "quota.requests_per_day": "500",
        "k": "5",
        "duration_days": "90",
    }
    form.update(extra)
    return form


def preview(admin: TestClient, application_id: int, form: dict[str, object]):
    page = admin.get(f"/admin/applications/{application_id}")
    return admin.post(
        f"/admin/applications/{application_id}/preview",
        data={**form, "csrf_token": token_of(page.text)},
    )


def test_the_queue_names_the_app_its_organization_account_and_fields(
    admin: TestClient, engine: Engine, packages: Path
):
    bank = bank_application(engine, packages)
    queue = admin.get("/admin/applications")
    assert queue.status_code == 200
    assert "普惠授信系统" in queue.text and "青岛银行股份有限公司" in queue.text
    assert "qdbank" in queue.text and "核实小微企业主社保缴纳情况" in queue.text
    page = admin.get(f"/admin/applications/{bank.application_id}")
    assert page.status_code == 200
    text = page.text
    # each field beside its level and default transform; only allowed transforms offered
    assert "4 级 高度敏感" in text and "<code>mask_name</code>" in text
    id_select = re.search(r'<select name="transform.id_number".*?</select>', text, re.S).group(0)
    assert re.findall(r'value="([^"]+)"', id_select) == ["redact", "pseudonym"]
    name_select = re.search(r'<select name="transform.person_name".*?</select>', text, re.S)
    options = unescape(name_select.group(0))
    assert "mask_name）→ 张**" in options and "clear）→ 张三丰" in options
    # a field the bank did not ask for is offered unticked
    assert re.search(r'name="fields" value="monthly_base">', text)
    # the applicant's history is there (nothing yet)
    assert 'id="history"' in text


def test_approval_shows_the_exact_policy_the_app_then_reads(
    admin: TestClient, client: TestClient, engine: Engine, packages: Path
):
    bank = bank_application(engine, packages)
    shown = preview(admin, bank.application_id, conditions(row_filter="district=市南区"))
    assert shown.status_code == 200, shown.text
    assert count(engine, "grants") == 0  # the preview saves nothing
    previewed = json.loads(unescape(POLICY.search(shown.text).group(1)))
    hidden = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', shown.text))
    assert hidden["transform.phone"] == "redact"
    form = re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', shown.text)
    saved = admin.post(
        f"/admin/applications/{bank.application_id}/approve",
        content="&".join(
            f"{name}={__import__('urllib.parse').parse.quote(unescape(value))}"
            for name, value in form
        ),
        headers={"content-type": "application/x-www-form-urlencoded"},
        follow_redirects=False,
    )
    assert saved.status_code == 303, saved.text
    token = client.post(
        "/oauth/token",
        data={"grant_type": "client_credentials"},
        auth=(bank.client_id, bank.secret),
    ).json()["access_token"]
    auth = {"Authorization": f"Bearer {token}"}
    policy = client.get(f"/api/v1/datasets/{DATASET}/policy", headers=auth).json()
    # the same document; only the new grant's id was not known before it was saved
    assert previewed["grant"]["id"] is None and policy["grant"]["id"] is not None
    grant_id = policy["grant"]["id"]
    read = json.dumps(policy["modes"], ensure_ascii=False)
    assert read.replace(f"grant {grant_id} ", "grant new ") == json.dumps(
        previewed["modes"], ensure_ascii=False
    )
    assert policy["quotas"]["requests_per_day"] == previewed["quotas"]["requests_per_day"]
    fields = {f["name"]: f["transform"] for f in policy["modes"]["records"]["fields"]}
    assert fields == {
        "record_id": "clear",
        "district": "clear",
        "person_name": "mask_name",
        "phone": "redact",
        "id_number": "pseudonym",
    }
    rows = client.get(f"/api/v1/datasets/{DATASET}/records", headers=auth).json()["data"]
    assert {r["district"] for r in rows} == {"市南区"}  # the row filter holds
    assert rows[0]["person_name"] == "欧**" + "*" and rows[0]["phone"] is None
    with engine.connect() as conn:
        status = conn.execute(sa.text("SELECT status FROM applications")).scalar()
        actions = [
            r[0]
            for r in conn.execute(
                sa.text("SELECT action FROM audit_events WHERE action LIKE 'application.%'")
            )
        ]
    assert status == "approved"
    assert "application.approve" in actions


BAD = [
    ({"transform.id_number": "clear"}, "transforms", "id_number", "可用：redact, pseudonym"),
    ({"transform.phone": "hash"}, "transforms", "'hash'", "可用：clear, redact, mask_name"),
    ({"row_filter": "person_name=李四"}, "row_filter", "person_name", "1–2 级字段"),
    ({"epsilon": "0"}, "epsilon", "隐私预算", "大于 0"),
    ({"epsilon": "-0.5"}, "epsilon", "隐私预算", "大于 0"),
    ({"epsilon": "许多"}, "epsilon", "隐私预算", "须为数字"),
    ({"duration_days": "3651"}, "duration_days", "授权期限", "1–3650"),
    ({"k": "1"}, "k", "k", "不小于 2"),
    ({"quota.rows_per_day": "-3"}, "quotas", "rows_per_day", "非负整数"),
    ({"modes": []}, "modes", "使用方式", "至少选择"),
]


@pytest.mark.parametrize(("change", "parameter", "names", "says"), BAD)
def test_bad_conditions_are_refused_in_chinese_naming_the_field_nothing_saved(
    admin: TestClient,
    engine: Engine,
    packages: Path,
    change: dict,
    parameter: str,
    names: str,
    says: str,
):
    bank = bank_application(engine, packages)
    for step in ("preview", "approve"):
        page = admin.get(f"/admin/applications/{bank.application_id}")
        answer = admin.post(
            f"/admin/applications/{bank.application_id}/{step}",
            data={**conditions(**change), "csrf_token": token_of(page.text)},
        )
        assert answer.status_code == 400, (step, answer.text[:300])
        message = unescape(re.search(r'id="error">(.*?)</p>', answer.text, re.S).group(1))
        assert names in message and says in message, message
        assert f"<code>{parameter}</code>" in message
        assert "未做任何更改" in message
    assert count(engine, "grants") == 0
    assert count(engine, "applications", "WHERE status = 'pending'") == 1


def test_the_api_lists_the_valid_transforms_in_chinese(
    client: TestClient, engine: Engine, packages: Path
):
    from tests.auth.helpers import PASSWORD, user

    bank = bank_application(engine, packages)
    user(engine, "reviewer", "data_admin")
    token = client.post("/auth/login", json={"username": "reviewer", "password": PASSWORD}).json()[
        "access_token"
    ]
    answer = client.post(
        f"/api/v1/admin/applications/{bank.application_id}/approve",
        json={"transforms": {"phone": "hash"}},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert answer.status_code == 400
    detail = answer.json()["detail"]
    assert "未知的脱敏方式 'hash'" in detail and "mask_phone" in detail and "bucket:W" in detail
    loose = client.post(
        f"/api/v1/admin/applications/{bank.application_id}/approve",
        json={"transforms": {"id_number": "mask_id_number"}},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert loose.status_code == 400 and "可用：redact, pseudonym" in loose.json()["detail"]
    assert count(engine, "grants") == 0


def test_a_forged_or_decided_application_id_is_refused_nothing_saved(
    admin: TestClient, engine: Engine, packages: Path
):
    bank = bank_application(engine, packages)
    token = token_of(admin.get(f"/admin/applications/{bank.application_id}").text)
    for forged in ("999999", "0", "abc", "1 OR 1=1", "99999999999"):
        for step in ("preview", "approve", "reject"):
            answer = admin.post(
                f"/admin/applications/{forged}/{step}",
                data={**conditions(), "reason": "x", "csrf_token": token},
            )
            assert answer.status_code == 404, (forged, step)
            assert "application_id" in answer.text and "未做任何更改" in answer.text
    rejected = admin.post(
        f"/admin/applications/{bank.application_id}/reject",
        data={"reason": "用途与数据范围不符，请缩小字段范围", "csrf_token": token},
        follow_redirects=False,
    )
    assert rejected.status_code == 303
    again = admin.post(
        f"/admin/applications/{bank.application_id}/approve",
        data={**conditions(), "csrf_token": token},
    )
    assert again.status_code == 409 and "已处理" in again.text
    assert count(engine, "grants") == 0
    with engine.connect() as conn:
        reason = conn.execute(sa.text("SELECT reason FROM applications")).scalar()
    assert reason == "用途与数据范围不符，请缩小字段范围"


def test_a_rejection_needs_a_reason(admin: TestClient, engine: Engine, packages: Path):
    bank = bank_application(engine, packages)
    token = token_of(admin.get(f"/admin/applications/{bank.application_id}").text)
    answer = admin.post(
        f"/admin/applications/{bank.application_id}/reject",
        data={"reason": " ", "csrf_token": token},
    )
    assert answer.status_code == 400 and "驳回须说明理由" in answer.text
    assert count(engine, "applications", "WHERE status = 'pending'") == 1


def approve_quickly(admin: TestClient, application_id: int) -> int:
    page = admin.get(f"/admin/applications/{application_id}")
    saved = admin.post(
        f"/admin/applications/{application_id}/approve",
        data={**conditions(), "csrf_token": token_of(page.text)},
        follow_redirects=False,
    )
    assert saved.status_code == 303, saved.text
    return int(re.search(r"approved=(\d+)", saved.headers["location"]).group(1))


def test_grants_are_listed_filtered_and_revoked_once(
    admin: TestClient, client: TestClient, engine: Engine, packages: Path
):
    bank = bank_application(engine, packages)
    grant_id = approve_quickly(admin, bank.application_id)
    listing = admin.get("/admin/grants?view=active")
    assert f'id="grant-{grant_id}"' in listing.text and "青岛银行股份有限公司" in listing.text
    assert f'id="grant-{grant_id}"' not in admin.get("/admin/grants?view=revoked").text
    assert f'id="grant-{grant_id}"' in admin.get("/admin/grants?organization=青岛银行").text
    assert f'id="grant-{grant_id}"' not in admin.get("/admin/grants?organization=某证券").text
    assert f'id="grant-{grant_id}"' in admin.get(f"/admin/grants?dataset={DATASET}").text
    assert f'id="grant-{grant_id}"' not in admin.get("/admin/grants?app=nobody").text
    # expiring within 7 days
    with engine.begin() as conn:
        conn.execute(
            sa.text("UPDATE grants SET expires_at = :t"),
            {
                "t": __import__("datetime").datetime.now(__import__("datetime").UTC)
                + __import__("datetime").timedelta(days=3)
            },
        )
    assert f'id="grant-{grant_id}"' in admin.get("/admin/grants?view=expiring").text
    token = token_of(listing.text)
    empty = admin.post(f"/admin/grants/{grant_id}/revoke", data={"reason": "", "csrf_token": token})
    assert empty.status_code == 400 and "撤销须说明理由" in empty.text
    assert count(engine, "grants", "WHERE status = 'active'") == 1
    done = admin.post(
        f"/admin/grants/{grant_id}/revoke",
        data={"reason": "合作协议终止", "csrf_token": token},
        follow_redirects=False,
    )
    assert done.status_code == 303
    twice = admin.post(
        f"/admin/grants/{grant_id}/revoke", data={"reason": "再次撤销", "csrf_token": token}
    )
    assert twice.status_code == 409 and "不能重复撤销" in twice.text
    with engine.connect() as conn:
        reason = conn.execute(sa.text("SELECT revoke_reason FROM grants")).scalar()
    assert reason == "合作协议终止"  # the second revocation changed nothing
    forged = admin.post("/admin/grants/424242/revoke", data={"reason": "x", "csrf_token": token})
    assert forged.status_code == 404 and "grant_id" in forged.text
    app_token = client.post(
        "/oauth/token",
        data={"grant_type": "client_credentials"},
        auth=(bank.client_id, bank.secret),
    ).json()["access_token"]
    refused = client.get(
        f"/api/v1/datasets/{DATASET}/records", headers={"Authorization": f"Bearer {app_token}"}
    )
    assert refused.status_code == 403


def test_a_direct_grant_goes_through_the_confirm_step(
    admin: TestClient, engine: Engine, packages: Path
):
    bank = bank_application(engine, packages)
    page = admin.get(f"/admin/grants/new?dataset={DATASET}&client_id={bank.client_id}")
    assert page.status_code == 200 and "transform.id_number" in page.text
    token = token_of(page.text)
    form = {
        **conditions(),
        "client_id": bank.client_id,
        "dataset_id": DATASET,
        "purpose": "授权运营：普惠金融数据产品",
        "csrf_token": token,
    }
    bad = admin.post("/admin/grants/new/preview", data={**form, "transform.id_number": "clear"})
    assert bad.status_code == 400 and "可用：redact, pseudonym" in unescape(bad.text)
    no_app = admin.post("/admin/grants/new", data={**form, "client_id": "forged"})
    assert no_app.status_code == 400 and "client_id" in no_app.text
    assert count(engine, "grants") == 0
    shown = admin.post("/admin/grants/new/preview", data=form)
    assert shown.status_code == 200 and "policy-json" in shown.text
    assert count(engine, "grants") == 0
    saved = admin.post("/admin/grants/new", data=form, follow_redirects=False)
    assert saved.status_code == 303
    with engine.connect() as conn:
        row = conn.execute(sa.text("SELECT purpose, application_id FROM grants")).one()
    assert row == ("授权运营：普惠金融数据产品", None)


def test_datasets_show_levels_pii_and_import_history(
    admin: TestClient, engine: Engine, packages: Path
):
    bank_application(engine, packages)
    listing = admin.get("/admin/datasets")
    assert "有条件开放" in listing.text and DATASET in listing.text
    page = admin.get(f"/admin/datasets/{DATASET}")
    assert page.status_code == 200
    assert "身份证号" in page.text and "<code>pseudonym</code>" in page.text
    assert "导入历史" in page.text and "v1" in page.text
    assert admin.get("/admin/datasets/nothing-here").status_code == 404


def test_feedback_and_demand_workflows(
    admin: TestClient, client: TestClient, engine: Engine, packages: Path
):
    from participation import demands

    bank_application(engine, packages)
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO feedback (dataset_id, version, field, message, redacted, reporter,"
                " source, status, response, created_at, updated_at)"
                " VALUES (:d, 1, 'district', '区市名称有误', false, 'qdbank', '', 'submitted',"
                " '', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
            ),
            {"d": DATASET},
        )
    demand = demands.create(
        engine,
        requester="qdbank",
        title="企业用电数据",
        description="用于授信",
        department="",
        scenario="",
    )
    queue = admin.get("/admin/feedback")
    assert "区市名称有误" in queue.text
    token = token_of(queue.text)
    accepted = admin.post(
        "/admin/feedback/1/accept",
        data={"response": "已转数据提供部门", "csrf_token": token},
        follow_redirects=False,
    )
    assert accepted.status_code == 303
    not_newer = admin.post("/admin/feedback/1/fixed", data={"version": "1", "csrf_token": token})
    assert not_newer.status_code == 400 and "修正版本" in not_newer.text
    answered = admin.post(
        f"/admin/demands/{demand.id}/satisfy",
        data={"dataset_id": "no-such", "csrf_token": token},
    )
    assert answered.status_code == 400 and "no-such" in answered.text
    satisfied = admin.post(
        f"/admin/demands/{demand.id}/satisfy",
        data={"dataset_id": DATASET, "csrf_token": token},
        follow_redirects=False,
    )
    assert satisfied.status_code == 303
    closed = admin.post(
        f"/admin/demands/{demand.id}/decline", data={"reason": "x", "csrf_token": token}
    )
    assert closed.status_code == 409
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT status FROM feedback")).scalar() == "accepted"
        assert conn.execute(sa.text("SELECT status FROM demands")).scalar() == "satisfied"
