"""纠错 over HTTP: anonymous and signed-in reports, bad input refused in Chinese with nothing
stored, level-3/4 quotes kept only as digests, and the data_admin workflow."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from participation.feedback import ANONYMOUS_PER_HOUR
from tests.auth.helpers import audit_events
from tests.participation.conftest import CANARY_ID, CANARY_NAME, CANARY_PHONE, World

URL = "/api/v1/datasets/social-insurance/feedback"


def stored(engine: Engine) -> list[dict]:
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(sa.text("SELECT * FROM feedback"))]


def test_an_anonymous_report_is_stored_submitted(world: World):
    answer = world.client.post(
        URL, json={"field": "district", "record": "3", "message": "所属区市应为市北区"}
    )
    assert answer.status_code == 201, answer.text
    body = answer.json()
    assert body["status"] == "submitted" and body["status_label"] == "已提交"
    assert body["reporter"] is None and body["version"] == 1
    [row] = stored(world.engine)
    assert row["message"] == "所属区市应为市北区" and row["reporter"] == ""
    assert row["source"].startswith("hmac:")  # the address only as a keyed digest
    [event] = audit_events(world.engine, "feedback.submit")
    assert event["outcome"] == "allowed" and event["resource"] == "datasets/social-insurance"


def test_quoted_level_3_4_values_of_the_record_are_stored_as_digests(world: World):
    message = f"姓名{CANARY_NAME}和身份证号{CANARY_ID}、电话{CANARY_PHONE}都录错了"
    answer = world.client.post(
        URL, headers=world.as_("dev-a"), json={"record": "1", "message": message}
    )
    assert answer.status_code == 201, answer.text
    body = answer.json()
    assert body["redacted"] is True and body["reporter"] == "dev-a"
    [row] = stored(world.engine)
    for canary in (CANARY_NAME, CANARY_ID, CANARY_PHONE):
        assert canary not in row["message"] and canary not in answer.text
    assert row["message"].count("[已隐去 hmac:") == 3
    # The same value gives the same digest: an administrator can match two reports.
    again = world.client.post(URL, json={"record": "1", "message": f"{CANARY_ID} 有误"})
    assert again.json()["message"].split(" ")[1] in row["message"]


def test_a_value_that_is_not_the_records_is_kept(world: World):
    answer = world.client.post(URL, json={"record": "2", "message": "姓名应为王小明"})
    assert answer.json()["message"] == "姓名应为王小明" and answer.json()["redacted"] is False


def test_bad_reports_are_refused_in_chinese_and_store_nothing(world: World):
    cases = [
        ({"message": ""}, 400, "请填写问题说明"),
        ({"message": "   "}, 400, "请填写问题说明"),
        ({"message": "错" * 10_000}, 400, "问题说明最多 2000 个字"),
        ({"field": "no_such", "message": "x有误"}, 400, "没有字段“no_such”"),
        ({"record": "999", "message": "不存在的记录"}, 404, "没有主键为“999”的记录"),
        ({"record": "abc", "message": "主键不是整数"}, 400, "不是有效的记录编号"),
        ({"message": "控制\u0007字符"}, 400, "控制字符"),
    ]
    for body, status, detail in cases:
        answer = world.client.post(URL, json=body)
        assert answer.status_code == status, (body, answer.text)
        assert detail in answer.json()["detail"], answer.json()
    assert (
        world.client.post("/api/v1/datasets/no-such/feedback", json={"message": "x"}).status_code
        == 404
    )
    # A closed dataset is not found for anyone but a data administrator.
    closed = world.client.post("/api/v1/datasets/sealed-registry/feedback", json={"message": "x"})
    assert closed.status_code == 404
    assert stored(world.engine) == []


def test_html_in_a_report_is_kept_as_text(world: World):
    script = '<script>alert("x")</script><img src=x onerror=alert(1)>'
    answer = world.client.post(URL, json={"message": script})
    assert answer.status_code == 201 and answer.json()["message"] == script


def test_anonymous_reports_are_limited_per_address(world: World):
    for i in range(ANONYMOUS_PER_HOUR):
        assert world.client.post(URL, json={"message": f"第 {i} 条"}).status_code == 201
    refused = world.client.post(URL, json={"message": "再来一条"})
    assert refused.status_code == 429 and "每小时最多" in refused.json()["detail"]
    assert len(stored(world.engine)) == ANONYMOUS_PER_HOUR
    # An account is counted on its own.
    signed = world.client.post(URL, headers=world.as_("dev-a"), json={"message": "登录后提交"})
    assert signed.status_code == 201


def test_the_workflow_submitted_accepted_fixed_and_rejected(world: World):
    admin = world.as_("admin")
    first = world.client.post(URL, headers=world.as_("dev-a"), json={"message": "a 有误"}).json()
    second = world.client.post(URL, json={"message": "b 有误"}).json()

    listed = world.client.get("/api/v1/admin/feedback?status=submitted", headers=admin)
    assert [f["id"] for f in listed.json()["data"]] == [second["id"], first["id"]]
    assert world.client.get("/api/v1/admin/feedback", headers=world.as_("dev-a")).status_code == 403

    # fixed before accepted, or in a version that is not newer: refused, nothing changes
    early = world.client.post(
        f"/api/v1/admin/feedback/{first['id']}/fixed", headers=admin, json={"version": 1}
    )
    assert early.status_code == 400
    accepted = world.client.post(
        f"/api/v1/admin/feedback/{first['id']}/accept", headers=admin, json={"response": "已核实"}
    )
    assert accepted.json()["status"] == "accepted" and accepted.json()["handled_at"]
    not_newer = world.client.post(
        f"/api/v1/admin/feedback/{first['id']}/fixed", headers=admin, json={"version": 1}
    )
    assert not_newer.status_code == 400 and "晚于纠错时版本" in not_newer.json()["detail"]

    no_reason = world.client.post(
        f"/api/v1/admin/feedback/{second['id']}/reject", headers=admin, json={"reason": ""}
    )
    assert no_reason.status_code == 400 and "请填写不予采纳的理由" in no_reason.json()["detail"]
    rejected = world.client.post(
        f"/api/v1/admin/feedback/{second['id']}/reject", headers=admin, json={"reason": "数据无误"}
    )
    assert rejected.json()["status"] == "rejected" and rejected.json()["response"] == "数据无误"
    again = world.client.post(
        f"/api/v1/admin/feedback/{second['id']}/accept", headers=admin, json={}
    )
    assert again.status_code == 409 and "未采纳" in again.json()["detail"]

    mine = world.client.get("/api/v1/me/feedback", headers=world.as_("dev-a")).json()["data"]
    assert [(f["id"], f["status"], f["response"]) for f in mine] == [
        (first["id"], "accepted", "已核实")
    ]
    assert (
        world.client.post("/api/v1/admin/feedback/9999/accept", headers=admin, json={}).status_code
        == 404
    )
    outcomes = [e["outcome"] for e in audit_events(world.engine, "feedback.accept")]
    assert outcomes == ["allowed", "error", "error"]


def test_a_primary_key_above_level_2_is_not_an_oracle(world: World, packages, settings):
    from catalog.importer import import_package
    from tests.packages import write_package

    fields = [
        {
            "name": "id_number",
            "type": "string",
            "title": "身份证号",
            "level": 4,
            "pii": "id_number",
        },
        {"name": "district", "type": "string", "title": "区", "level": 1},
    ]
    import_package(
        world.engine,
        write_package(
            packages,
            name="keyed-by-id",
            open_type="conditional",
            fields=fields,
            rows=[[CANARY_ID, "市南区"]],
            primary_key="id_number",
        ),
    )
    for record in (CANARY_ID, "110101199001011234"):
        answer = world.client.post(
            "/api/v1/datasets/keyed-by-id/feedback", json={"record": record, "message": "有误"}
        )
        assert answer.status_code == 400 and answer.json()["code"] == "field_not_permitted"
        assert CANARY_ID not in answer.text
