"""数据需求 over HTTP: created by an account, listed publicly, seconded once per account and
never by its author, answered and closed by a data_admin; bad input changes nothing."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from tests.participation.conftest import World

DEMAND = {
    "title": "公交车辆实时位置",
    "description": "希望开放公交车辆实时 GPS 位置，每 30 秒更新",
    "department": "市交通运输局",
    "scenario": "出行导航",
}


def count(engine: Engine, table: str) -> int:
    with engine.connect() as conn:
        return conn.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one()


def test_a_demand_is_created_listed_and_shown(world: World):
    created = world.client.post("/api/v1/demands", headers=world.as_("dev-a"), json=DEMAND)
    assert created.status_code == 201, created.text
    demand = created.json()
    assert demand["status"] == "open" and demand["status_label"] == "待答复"
    assert "requester" not in demand  # the public list names nobody
    listed = world.client.get("/api/v1/demands").json()
    assert [d["id"] for d in listed["data"]] == [demand["id"]] and listed["next_cursor"] is None
    assert world.client.get(f"/api/v1/demands/{demand['id']}").json()["title"] == DEMAND["title"]
    assert world.client.get("/api/v1/demands/999").status_code == 404
    mine = world.client.get("/api/v1/me/demands", headers=world.as_("dev-a")).json()["data"]
    assert [d["id"] for d in mine] == [demand["id"]]


def test_an_anonymous_demand_is_refused(world: World):
    assert world.client.post("/api/v1/demands", json=DEMAND).status_code == 401
    assert count(world.engine, "demands") == 0


def test_bad_demands_are_refused_in_chinese_and_store_nothing(world: World):
    cases = [
        ({**DEMAND, "title": ""}, "请填写需求名称"),
        ({**DEMAND, "description": " "}, "请填写需求描述"),
        ({**DEMAND, "description": "长" * 10_000}, "需求描述最多 2000 个字"),
        ({**DEMAND, "title": "标" * 101}, "需求名称最多 100 个字"),
    ]
    for body, detail in cases:
        answer = world.client.post("/api/v1/demands", headers=world.as_("dev-a"), json=body)
        assert answer.status_code == 400 and detail in answer.json()["detail"], answer.text
    unknown = world.client.post(
        "/api/v1/demands", headers=world.as_("dev-a"), json={**DEMAND, "requester": "x"}
    )
    assert unknown.status_code == 400
    assert count(world.engine, "demands") == 0


def test_seconding_once_per_account_and_never_ones_own(world: World):
    demand = world.client.post("/api/v1/demands", headers=world.as_("dev-a"), json=DEMAND).json()
    url = f"/api/v1/demands/{demand['id']}/second"
    for _ in range(2):
        own = world.client.post(url, headers=world.as_("dev-a"))
        assert own.status_code == 409 and own.json()["detail"] == "不能附议自己提出的数据需求"
    first = world.client.post(url, headers=world.as_("dev-b"))
    assert first.status_code == 200 and first.json()["seconds"] == 1
    twice = world.client.post(url, headers=world.as_("dev-b"))
    assert twice.status_code == 409 and twice.json()["detail"] == "您已附议过该数据需求"
    assert world.client.get(f"/api/v1/demands/{demand['id']}").json()["seconds"] == 1
    assert count(world.engine, "demand_seconds") == 1
    assert world.client.post(url).status_code == 401
    assert (
        world.client.post("/api/v1/demands/999/second", headers=world.as_("dev-b")).status_code
        == 404
    )


def test_the_workflow_open_answered_satisfied_or_declined(world: World):
    admin = world.as_("admin")
    one = world.client.post("/api/v1/demands", headers=world.as_("dev-a"), json=DEMAND).json()
    two = world.client.post("/api/v1/demands", headers=world.as_("dev-b"), json=DEMAND).json()
    base = "/api/v1/admin/demands"
    assert (
        world.client.post(
            f"{base}/{one['id']}/answer", headers=world.as_("dev-a"), json={"response": "x"}
        ).status_code
        == 403
    )
    answered = world.client.post(
        f"{base}/{one['id']}/answer", headers=admin, json={"response": "正在协调交通局"}
    )
    assert answered.json()["status"] == "answered" and answered.json()["answered_at"]
    # a dataset that is closed or missing cannot satisfy a demand
    for dataset in ("sealed-registry", "no-such"):
        refused = world.client.post(
            f"{base}/{one['id']}/satisfy", headers=admin, json={"dataset_id": dataset}
        )
        assert refused.status_code == 400 and "不能用来满足需求" in refused.json()["detail"]
    satisfied = world.client.post(
        f"{base}/{one['id']}/satisfy", headers=admin, json={"dataset_id": "air-readings"}
    )
    assert (
        satisfied.json()["status"] == "satisfied"
        and satisfied.json()["dataset_id"] == "air-readings"
    )
    no_reason = world.client.post(f"{base}/{two['id']}/decline", headers=admin, json={"reason": ""})
    assert no_reason.status_code == 400
    declined = world.client.post(
        f"{base}/{two['id']}/decline", headers=admin, json={"reason": "涉及国家秘密"}
    )
    assert declined.json()["status"] == "declined" and declined.json()["response"] == "涉及国家秘密"
    closed = world.client.post(
        f"{base}/{two['id']}/answer", headers=admin, json={"response": "再答"}
    )
    assert closed.status_code == 409
    assert (
        world.client.post(
            f"/api/v1/demands/{two['id']}/second", headers=world.as_("dev-a")
        ).status_code
        == 409
    )
    assert [
        d["status"] for d in world.client.get("/api/v1/demands?status=declined").json()["data"]
    ] == ["declined"]

    overview = world.client.get("/api/v1/stats/overview").json()
    assert overview["demands"] == {
        "received": 2,
        "answered": 2,
        "satisfied": 1,
        "declined": 1,
        "open": 0,
        "satisfaction_rate": 0.5,
    }


def test_list_pages_with_a_cursor(world: World):
    ids = [
        world.client.post("/api/v1/demands", headers=world.as_("dev-a"), json=DEMAND).json()["id"]
        for _ in range(3)
    ]
    first = world.client.get("/api/v1/demands?limit=2").json()
    second = world.client.get(f"/api/v1/demands?limit=2&cursor={first['next_cursor']}").json()
    assert [d["id"] for d in first["data"] + second["data"]] == ids[::-1]
    assert second["next_cursor"] is None
    bad = world.client.get("/api/v1/demands?cursor=abc")
    assert bad.status_code == 400 and "cursor" in bad.json()["detail"]
