"""The portal's forms: 纠错 on a dataset page and 数据需求 with +1. Without a valid
csrf_token a POST is 403 and stores nothing; bad input shows the page again with a Chinese
reason and stores nothing; HTML typed into any field is shown escaped."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from tests.participation.conftest import CANARY_ID, World
from tests.portal.web import csrf_of, web_login

SCRIPT = '<script>alert("x")</script>'


def count(engine: Engine, table: str) -> int:
    with engine.connect() as conn:
        return conn.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one()


def feedback_form(world: World, **values: str) -> dict[str, str]:
    return {
        "csrf_token": csrf_of(world.client, "/datasets/social-insurance"),
        "field": "",
        "record": "",
        "message": "",
        **values,
    }


def test_feedback_without_a_valid_token_is_403_and_stores_nothing(world: World):
    url = "/datasets/social-insurance/feedback"
    for token in (None, "", "forged-token-value"):
        body = {"message": "有误"} if token is None else {"message": "有误", "csrf_token": token}
        answer = world.client.post(url, data=body, follow_redirects=False)
        assert answer.status_code == 403 and "csrf_token" in answer.text
    # a valid token from another origin
    body = feedback_form(world, message="有误")
    answer = world.client.post(url, data=body, headers={"Origin": "https://evil.example"})
    assert answer.status_code == 403
    assert count(world.engine, "feedback") == 0


def test_feedback_through_the_form_anonymous_and_signed_in(world: World):
    url = "/datasets/social-insurance/feedback"
    answer = world.client.post(
        url,
        data=feedback_form(world, field="district", record="2", message="区划有误"),
        follow_redirects=False,
    )
    assert answer.status_code == 303
    assert answer.headers["location"].startswith("/datasets/social-insurance?feedback=")
    assert "纠错已提交" in world.client.get(answer.headers["location"]).text
    web_login(world.client, "dev-b")
    answer = world.client.post(
        url, data=feedback_form(world, message=f"{CANARY_ID} 错了", record="1")
    )
    assert answer.status_code == 200 and "开发者中心" in answer.text
    with world.engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT reporter, message FROM feedback ORDER BY id")).all()
    assert rows[0] == ("", "区划有误")
    assert rows[1][0] == "dev-b" and CANARY_ID not in rows[1][1]


def test_bad_feedback_shows_the_reason_and_stores_nothing(world: World):
    url = "/datasets/social-insurance/feedback"
    cases = [
        ({"message": ""}, 400, "请填写问题说明"),
        ({"message": "错" * 10_000}, 400, "问题说明最多 2000 个字"),
        ({"record": "999", "message": "没有这条"}, 404, "没有主键为“999”的记录"),
        ({"field": SCRIPT, "message": "字段不存在"}, 400, "没有字段"),
    ]
    for values, status, reason in cases:
        answer = world.client.post(url, data=feedback_form(world, **values))
        assert answer.status_code == status, answer.text[:300]
        assert reason in answer.text
        assert SCRIPT not in answer.text  # escaped wherever it is shown
    answer = world.client.post(url, data=feedback_form(world, record="999", message=SCRIPT))
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in answer.text
    assert count(world.engine, "feedback") == 0


def demand_form(world: World, token_from: str = "/demands", **values: str) -> dict[str, str]:
    return {
        "csrf_token": csrf_of(world.client, token_from),
        "title": "公交实时位置",
        "description": "每 30 秒更新",
        "department": "市交通运输局",
        "scenario": "出行",
        **values,
    }


def test_demand_forms_without_a_valid_token_are_403(world: World):
    web_login(world.client, "dev-a")
    body = demand_form(world)
    body["csrf_token"] = "x" * 43
    assert world.client.post("/demands", data=body).status_code == 403
    assert world.client.post("/demands", data={"title": "t", "description": "d"}).status_code == 403
    assert count(world.engine, "demands") == 0
    created = world.client.post("/demands", data=demand_form(world), follow_redirects=False)
    assert created.status_code == 303
    demand_id = created.headers["location"].split("created=")[1].split("#")[0]
    world.client.cookies.clear()
    web_login(world.client, "dev-b")
    second = f"/demands/{demand_id}/second"
    assert world.client.post(second, data={}).status_code == 403
    assert world.client.post(second, data={"csrf_token": "bad"}).status_code == 403
    assert count(world.engine, "demand_seconds") == 0


def test_an_anonymous_demand_goes_to_sign_in_and_stores_nothing(world: World):
    page = world.client.get("/demands").text
    assert "请先" in page and 'name="title"' not in page
    answer = world.client.post(
        "/demands",
        data=demand_form(world, token_from="/login"),  # a valid anonymous token
        follow_redirects=False,
    )
    assert answer.status_code == 303 and answer.headers["location"].startswith("/login")
    assert count(world.engine, "demands") == 0


def test_demands_through_the_form_with_escaped_html_and_seconding(world: World):
    web_login(world.client, "dev-a")
    empty = world.client.post("/demands", data=demand_form(world, title=""))
    assert empty.status_code == 400 and "请填写需求名称" in empty.text
    long = world.client.post("/demands", data=demand_form(world, description="长" * 10_000))
    assert long.status_code == 400 and "需求描述最多 2000 个字" in long.text
    assert count(world.engine, "demands") == 0
    created = world.client.post(
        "/demands", data=demand_form(world, title=SCRIPT, scenario=SCRIPT), follow_redirects=False
    )
    assert created.status_code == 303
    page = world.client.get(created.headers["location"]).text
    assert SCRIPT not in page and "&lt;script&gt;" in page and "数据需求已提交" in page
    demand_id = created.headers["location"].split("created=")[1].split("#")[0]
    assert f'action="/demands/{demand_id}/second"' not in page  # no +1 on one's own
    own = world.client.post(
        f"/demands/{demand_id}/second", data={"csrf_token": csrf_of(world.client, "/demands")}
    )
    assert own.status_code == 409 and "不能附议自己提出的数据需求" in own.text

    world.client.cookies.clear()
    web_login(world.client, "dev-b")
    form = {"csrf_token": csrf_of(world.client, "/demands")}
    first = world.client.post(f"/demands/{demand_id}/second", data=form, follow_redirects=False)
    assert first.status_code == 303
    assert "您已附议" in world.client.get("/demands").text
    twice = world.client.post(f"/demands/{demand_id}/second", data=form)
    assert twice.status_code == 409 and "您已附议过该数据需求" in twice.text
    assert count(world.engine, "demand_seconds") == 1
