"""The response path language, the tree, and the projection of an answer onto it."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from policies.compiled import compile_transform, map_columns
from policies.pseudonyms import derive_app_key
from services.masking import compile_specs, default_specs, projector
from services.package import parse_service
from services.paths import (
    CLEAR,
    PathError,
    PathLimits,
    ProjectionError,
    ProjectionLimits,
    compile_paths,
    parse_answer,
    parse_path,
    project,
    returned_paths,
)


@pytest.mark.parametrize(
    ("text", "segments", "canonical"),
    [
        ("$.a", ("a",), "$.a"),
        ("$.a.b_c-d", ("a", "b_c-d"), "$.a.b_c-d"),
        ("$[*]", (None,), "$[*]"),
        ("$.a[*].c", ("a", None, "c"), "$.a[*].c"),
        ("$.data.items[*].owner.name", ("data", "items", None, "owner", "name"), None),
        ("$.a[*][*]", ("a", None, None), None),
        ("$.企业名称", ("企业名称",), None),
        ("$['a b']", ("a b",), None),
        ('$["a"]', ("a",), "$.a"),
        ("$['it\\'s']", ("it's",), "$['it\\'s']"),
        ("$['a\\\\b']", ("a\\b",), "$['a\\\\b']"),
        ("$['1st']", ("1st",), "$['1st']"),
        ("$['a.b'].c", ("a.b", "c"), "$['a.b'].c"),
        ("$['[*]']", ("[*]",), "$['[*]']"),
    ],
)
def test_paths(text: str, segments: tuple, canonical: str | None):
    parsed = parse_path(text)
    assert parsed.segments == segments
    assert parsed.text == (canonical or text)
    assert parse_path(parsed.text) == parsed  # the canonical form reads back the same


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("$", "路径不能只是 $"),
        ("a.b", "须以 $ 开头"),
        ("", "须以 $ 开头"),
        ("$.", "第 3 个字符：点号后须为成员名"),
        ("$..a", "第 3 个字符：点号后须为成员名"),
        ("$.1a", "点号后须为成员名"),
        ("$.a b", "第 4 个字符：应为 .成员名、['成员名'] 或 [*]"),
        ("$.a[0]", "第 4 个字符：应为"),
        ("$.a[?(@.x)]", "应为"),
        ("$.a[]", "应为"),
        ("$['a'", "引号括起的成员名须以 '] 结束"),
        ("$['a']]", "第 7 个字符"),
        ("$['']", "成员名不能为空"),
        ("$." + "a" * 129, "成员名超过 128 个字符的上限"),
        ("$" + ".a" * 17, "超过 16 段的上限"),
        ("$." + "a" * 600, "超过 512 个字符的上限"),
    ],
)
def test_bad_paths(text: str, message: str):
    with pytest.raises(PathError) as caught:
        parse_path(text)
    assert message in str(caught.value)
    assert len(str(caught.value)) < 200  # a huge path is not echoed whole


def test_limits_are_configurable():
    assert parse_path("$.a.b.c", PathLimits(max_segments=3))
    with pytest.raises(PathError, match="超过 2 段的上限"):
        parse_path("$.a.b.c", PathLimits(max_segments=2))
    with pytest.raises(PathError, match="应答字段超过 2 个的上限"):
        compile_paths(
            [("$.a", "string"), ("$.b", "string"), ("$.c", "string")], PathLimits(max_paths=2)
        )


@pytest.mark.parametrize(
    ("declared", "message"),
    [
        (
            [("$.a", "string"), ("$.a.b", "string")],
            "路径 $.a.b 与 $.a 冲突：$.a 不能既是标量又是对象",
        ),
        (
            [("$.a.b", "string"), ("$.a", "string")],
            "路径 $.a 与 $.a.b 冲突：$.a 不能既是对象又是标量",
        ),
        ([("$.a[*]", "string"), ("$.a.b", "string")], "$.a 不能既是数组又是对象"),
        ([("$[*]", "string"), ("$.a", "string")], "$ 不能既是数组又是对象"),
        ([("$.a[*].b", "string"), ("$.a[*]", "integer")], "$.a[*] 不能既是对象又是标量"),
        ([("$.a", "string"), ("$['a']", "integer")], "路径 $.a 重复声明"),
        ([("$.a", "text")], "路径 $.a：type 的取值 'text' 无效"),
        ([], "至少需要声明一个应答字段"),
    ],
)
def test_conflicting_declarations(declared: list, message: str):
    with pytest.raises(PathError) as caught:
        compile_paths(declared)
    assert message in str(caught.value)


TREE = compile_paths(
    [
        ("$.code", "integer"),
        ("$.data.name", "string"),
        ("$.data.items[*].owner.name", "string"),
        ("$.data.items[*].n", "integer"),
        ("$.data.tags[*]", "string"),
        ("$.data.ok", "boolean"),
        ("$.data.score", "number"),
        ("$.data.born", "date"),
        ("$.data.seen", "datetime"),
        ("$['企业 名称']", "string"),
    ]
)


def marked(path: str):
    return lambda v: f"<{path}:{v}>"


MARKED = {p: marked(p) for p in TREE.paths}


def test_only_declared_members_each_through_its_transform():
    answer = {
        "code": 0,
        "msg": "ok",
        "data": {
            "name": "张三",
            "secret": "370202199001011234",
            "items": [{"owner": {"name": "李四", "id": "x"}, "n": 5, "extra": 1}],
            "tags": ["a", "b"],
            "ok": True,
            "score": 1.5,
            "born": "1990-05-17",
            "seen": "2026-12-04T01:00:00Z",
        },
        "企业 名称": "青岛啤酒",
    }
    assert project(answer, TREE, MARKED) == {
        "code": "<$.code:0>",
        "data": {
            "name": "<$.data.name:张三>",
            "items": [
                {
                    "owner": {"name": "<$.data.items[*].owner.name:李四>"},
                    "n": "<$.data.items[*].n:5>",
                }
            ],
            "tags": ["<$.data.tags[*]:a>", "<$.data.tags[*]:b>"],
            "ok": "<$.data.ok:True>",
            "score": "<$.data.score:1.5>",
            "born": "<$.data.born:1990-05-17>",
            "seen": "<$.data.seen:2026-12-04T01:00:00Z>",
        },
        "企业 名称": "<$['企业 名称']:青岛啤酒>",
    }
    assert answer["data"]["items"][0]["extra"] == 1  # the answer itself is left as it was


@pytest.mark.parametrize(
    ("data", "projected"),
    [
        # Missing members stay missing.
        ({}, {}),
        # A wrong kind of value is null at that member, never passed through.
        ({"name": {"first": "张"}}, {"name": None}),
        ({"name": ["张三"]}, {"name": None}),
        ({"name": 5}, {"name": None}),
        ({"items": {"owner": {"name": "x"}}}, {"items": None}),
        ({"items": "x"}, {"items": None}),
        (
            {"items": [5, None, "x", [], {"owner": "x"}, {"owner": None}]},
            {"items": [None, None, None, None, {"owner": None}, {"owner": None}]},
        ),
        (
            {"items": [{"n": "5"}, {"n": 5.0}, {"n": True}, {"n": 2**70}, {"n": 2**63}]},
            {
                "items": [
                    {"n": None},
                    {"n": None},
                    {"n": None},
                    {"n": None},
                    {"n": "<$.data.items[*].n:9223372036854775808>"},
                ]
            },
        ),
        ({"tags": [1, "a", None, {"x": 1}]}, {"tags": [None, "<$.data.tags[*]:a>", None, None]}),
        ({"ok": 1}, {"ok": None}),
        ({"ok": "true"}, {"ok": None}),
        ({"score": True}, {"score": None}),
        ({"score": "1.5"}, {"score": None}),
        ({"born": "1990-02-30"}, {"born": None}),
        ({"born": "1990-05-17T00:00:00"}, {"born": None}),
        ({"born": 19900517}, {"born": None}),
        ({"born": "2026-W01-1"}, {"born": None}),
        ({"born": "２０２６-01-01"}, {"born": None}),
        ({"seen": "2026-W01-1T08:00"}, {"seen": None}),
        ({"seen": "not a time"}, {"seen": None}),
        # null stays null and is not given to the transform.
        ({"name": None, "items": None, "tags": None}, {"name": None, "items": None, "tags": None}),
        ({"items": []}, {"items": []}),
    ],
)
def test_wrong_shapes_become_null(data: Any, projected: Any):
    assert project({"data": data}, TREE, MARKED) == {"data": projected}


def test_data_of_the_wrong_kind():
    assert project({"data": "x", "code": None}, TREE, MARKED) == {"data": None, "code": None}
    assert project({"data": [1]}, TREE, MARKED) == {"data": None}


@pytest.mark.parametrize("answer", [[], "x", 1, None, True])
def test_a_top_level_of_the_wrong_kind_is_refused(answer: Any):
    with pytest.raises(ProjectionError, match="上游应答的顶层应为 JSON 对象"):
        project(answer, TREE, MARKED)


def test_a_top_level_array():
    tree = compile_paths([("$[*].id", "integer")])
    assert project([{"id": 1, "x": 2}, 3], tree, {"$[*].id": CLEAR}) == [{"id": 1}, None]
    with pytest.raises(ProjectionError, match="顶层应为 JSON 数组"):
        project({"id": 1}, tree, {"$[*].id": CLEAR})


def test_array_bounds():
    tree = compile_paths([("$.a[*].b[*]", "integer")])
    limits = ProjectionLimits(max_array_items=3, max_total_items=7)
    bound = tree.bind({"$.a[*].b[*]": CLEAR}, limits)
    assert bound({"a": [{"b": [1, 2, 3]}, {"b": [4]}]}) == {"a": [{"b": [1, 2, 3]}, {"b": [4]}]}
    with pytest.raises(ProjectionError, match="上游应答的单个数组超过 3 个元素的上限"):
        bound({"a": [{"b": [1, 2, 3, 4]}]})
    with pytest.raises(ProjectionError, match="上游应答的数组元素总数超过 7 个元素的上限"):
        bound({"a": [{"b": [1, 2, 3]}, {"b": [1, 2, 3]}]})  # 2 + 3 + 3 elements
    # Each call has its own budget.
    assert bound({"a": [{"b": [1, 2, 3]}, {"b": [4]}]})


def test_every_leaf_needs_a_transform():
    with pytest.raises(ValueError, match=r"no transform for \$\.data\.name"):
        TREE.bind({p: CLEAR for p in TREE.paths if p != "$.data.name"})


def test_only_keeps_the_paths_a_grant_shows():
    shown = TREE.only(["$.data.tags[*]", "$.code"])
    assert shown.paths == ("$.code", "$.data.tags[*]")
    out = project({"code": 1, "data": {"name": "张三", "tags": ["a"]}}, shown, MARKED)
    assert out == {"code": "<$.code:1>", "data": {"tags": ["<$.data.tags[*]:a>"]}}
    with pytest.raises(ValueError, match="not declared"):
        TREE.only(["$.nope"])


def test_returned_paths_name_the_members_that_carry_a_value():
    out = project(
        {
            "code": 0,
            "data": {"name": None, "items": [{"owner": "x"}, {"owner": {"name": "a"}}], "tags": []},
        },
        TREE,
        {p: CLEAR for p in TREE.paths},
    )
    assert returned_paths(out, TREE) == ("$.code", "$.data.items[*].owner.name")
    assert returned_paths({}, TREE) == ()
    assert returned_paths(None, TREE) == ()


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"<html>502</html>", "上游应答不是有效的 JSON"),
        (b"", "上游应答不是有效的 JSON"),
        (b'{"a": NaN}', "上游应答不是有效的 JSON"),
        (b"[" * 2000 + b"]" * 2000, "上游应答不是有效的 JSON"),
        (b"\xff", "上游应答不是有效的 JSON"),
        (b" " * 101, "上游应答超过 100 字节的上限"),
    ],
)
def test_unreadable_answers(body: bytes, message: str):
    with pytest.raises(ProjectionError, match=message):
        parse_answer(body, ProjectionLimits(max_answer_bytes=100 if body.isspace() else 10_000))


def test_answer_parses_and_projects():
    bound = TREE.bind(MARKED)
    assert bound.answer(b'{"code": 3, "x": 1}') == {"code": "<$.code:3>"}


# --- under a grant: the transforms of contract §3, exactly as for a record field -----------


@pytest.fixture
def service(descriptor: dict[str, Any]):
    return parse_service(descriptor)


ANSWER = {
    "code": 0,
    "message": "查询成功",
    "data": {
        "company_name": "青岛海晏科技有限公司",
        "legal_person": "张三丰",
        "legal_id": "370202199001011234",
        "phone": "13812345678",
        "capital": 5_000_000,
        "founded": "2012-03-08",
        "registered_address": "青岛市市南区香港中路10号",
        "shareholders": [
            {"name": "李四", "ratio": 0.6, "id": "x"},
            {"name": "王小二", "ratio": 0.4},
        ],
        "tags": ["高新技术企业"],
    },
}


def test_default_specs_follow_the_records_defaults(service):
    assert default_specs(service) == {
        "$.code": "clear",
        "$.data.company_name": "clear",
        "$.data.legal_person": "mask_name",
        "$.data.legal_id": "pseudonym",
        "$.data.phone": "mask_phone",
        "$.data.capital": "clear",
        "$.data.founded": "clear",
        "$.data.shareholders[*].name": "mask_name",
        "$.data.shareholders[*].ratio": "clear",
        "$.data.tags[*]": "clear",
    }


def test_a_masked_answer(service):
    key = derive_app_key(b"m" * 32, "app-1")
    out = projector(service, default_specs(service), key=key)(ANSWER)
    pseudonym = compile_transform("pseudonym", key=key, pii="id_number")("370202199001011234")
    assert out == {
        "code": 0,
        "data": {
            "company_name": "青岛海晏科技有限公司",
            "legal_person": "张**",
            "legal_id": pseudonym,
            "phone": "138****5678",
            "capital": 5_000_000,
            "founded": "2012-03-08",
            "shareholders": [{"name": "李*", "ratio": 0.6}, {"name": "王**", "ratio": 0.4}],
            "tags": ["高新技术企业"],
        },
    }
    assert pseudonym.startswith("p_") and len(pseudonym) == 18
    other = projector(service, default_specs(service), key=derive_app_key(b"m" * 32, "app-2"))
    assert other(ANSWER)["data"]["legal_id"] != pseudonym  # per app, as for records
    assert orjson.loads(orjson.dumps(out)) == out  # plain JSON


def test_a_path_is_transformed_exactly_as_a_record_field(service):
    """The same spec, pii and value through the records path's column masker and through a
    response path give the same output, for every spec a grant may set."""
    key = derive_app_key(b"k" * 32, "app-1")
    values = {
        "$.data.legal_person": ["张三丰", "欧阳", "z", ""],
        "$.data.phone": ["13812345678", "0532-8888888", "12"],
        "$.data.capital": [12345, -1, 0],
    }
    for spec in (
        "clear",
        "redact",
        "mask_default",
        "mask_name",
        "mask_phone",
        "pseudonym",
        "bucket:5000",
        "year_only",
    ):
        for path, column in values.items():
            field = service.by_path[path]
            fn = compile_transform(spec, key=key, pii=field.pii.value)
            records = [row[0] for row in map_columns([(v,) for v in column], [(0, fn)])]
            bound = projector(service, {path: spec}, key=key)
            paths = [bound({"data": {path.rsplit(".", 1)[1]: v}})["data"] for v in column]
            assert [next(iter(p.values())) for p in paths] == records, (spec, path)


def test_a_grant_showing_some_paths(service):
    out = projector(
        service, {"$.data.company_name": "clear", "$.data.legal_id": "redact"}, key=None
    )(ANSWER)
    assert out == {"data": {"company_name": "青岛海晏科技有限公司", "legal_id": None}}
    with pytest.raises(ValueError, match="pseudonym needs the app's key"):
        compile_specs(service, {"$.data.legal_id": "pseudonym"}, key=None)
    with pytest.raises(ValueError, match="not declared by company-credit"):
        compile_specs(service, {"$.data.secret": "clear"}, key=None)
    with pytest.raises(ValueError, match="no response path of company-credit is shown"):
        projector(service, {}, key=None)
