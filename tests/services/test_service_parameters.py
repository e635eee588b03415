"""A call's body against the declared parameters: what passes, split into query and body, and
each refusal naming the parameter in Chinese without echoing the value."""

from __future__ import annotations

import json
from typing import Any

import pytest

from kernel.problems import Problem
from services.package import parse_service
from services.parameters import CallLimits, check_call


@pytest.fixture
def service(descriptor: dict[str, Any]):
    descriptor["parameters"].append({"name": "since", "in": "query", "type": "date"})
    descriptor["parameters"].append({"name": "at", "in": "body", "type": "datetime"})
    descriptor["parameters"].append({"name": "score", "in": "body", "type": "number"})
    return parse_service(descriptor)


def body(**members: Any) -> bytes:
    return json.dumps(members, ensure_ascii=False).encode()


def refused(service, raw: bytes, limits: CallLimits = CallLimits()) -> Problem:
    with pytest.raises(Problem) as caught:
        check_call(service, raw, limits)
    return caught.value


def test_arguments_are_split_by_where_the_upstream_takes_them(service):
    call = check_call(
        service,
        body(
            year=2025,
            uscc="91370200163562681G",
            detail=False,
            legal_id="370202199001011234",
            since="2025-01-31",
            at="2025-01-31T08:00:00+08:00",
            score=1.5,
        ),
    )
    # In declaration order, whatever the order of the body.
    assert call.query == (("year", "2025"), ("detail", "false"), ("since", "2025-01-31"))
    assert call.body == {
        "uscc": "91370200163562681G",
        "legal_id": "370202199001011234",
        "at": "2025-01-31T08:00:00+08:00",
        "score": 1.5,
    }
    assert call.names == ("uscc", "legal_id", "year", "detail", "since", "at", "score")


def test_optional_parameters_may_be_left_out_or_null(service):
    call = check_call(service, body(uscc="x", legal_id=None, year=None))
    assert call.query == () and call.body == {"uscc": "x"} and call.names == ("uscc",)
    assert check_call(service, body(uscc="x", score=3)).body["score"] == 3


SECRET = "370202199001011234"


@pytest.mark.parametrize(
    ("members", "parameter", "detail"),
    [
        ({}, "uscc", "缺少必填参数 uscc"),
        ({"uscc": None}, "uscc", "缺少必填参数 uscc"),
        (
            {"uscc": "x", "name": SECRET},
            "name",
            "服务 company-credit 没有参数 name；可用：uscc、legal_id",
        ),
        ({"uscc": "x", "Uscc": "y"}, "Uscc", "服务 company-credit 没有参数 Uscc"),
        ({"uscc": 91370200}, "uscc", "参数 uscc 须为字符串"),
        ({"uscc": "x", "legal_id": 370202199001011234}, "legal_id", "参数 legal_id 须为字符串"),
        ({"uscc": "x", "legal_id": [SECRET]}, "legal_id", "参数 legal_id 须为字符串"),
        ({"uscc": "x", "year": "2025"}, "year", "参数 year 须为整数"),
        ({"uscc": "x", "year": 2025.0}, "year", "参数 year 须为整数"),
        ({"uscc": "x", "year": True}, "year", "参数 year 须为整数"),
        ({"uscc": "x", "year": 2**63}, "year", "参数 year 须为整数"),
        ({"uscc": "x", "detail": 1}, "detail", "参数 detail 须为布尔值（true 或 false）"),
        ({"uscc": "x", "detail": "true"}, "detail", "参数 detail 须为布尔值"),
        ({"uscc": "x", "score": "1.5"}, "score", "参数 score 须为数值"),
        ({"uscc": "x", "score": False}, "score", "参数 score 须为数值"),
        ({"uscc": "x", "since": "2025-02-30"}, "since", "参数 since 须为日期（YYYY-MM-DD）"),
        ({"uscc": "x", "since": "20250131"}, "since", "参数 since 须为日期"),
        ({"uscc": "x", "since": "2025-W05-5"}, "since", "参数 since 须为日期"),
        ({"uscc": "x", "at": "yesterday"}, "at", "参数 at 须为日期时间（ISO 8601）"),
        ({"uscc": "x" * 4097}, "uscc", "参数 uscc 须为字符串，至多 4096 个字符"),
        ({"uscc": "x", "n" * 300: 1}, "n" * 40 + "…", "没有参数 " + "n" * 40 + "…；"),
    ],
)
def test_refusals_name_the_parameter(service, members: dict, parameter: str, detail: str):
    problem = refused(service, body(**members))
    assert (problem.status, problem.code) == (400, "invalid_parameter")
    assert problem.extra == {"parameter": parameter}
    assert detail in problem.detail
    assert SECRET not in problem.detail and "370202" not in problem.detail


@pytest.mark.parametrize(
    ("raw", "detail"),
    [
        (b"{not json", "请求体不是有效的 JSON"),
        (b"\xff\xfe", "请求体不是有效的 JSON"),
        (b"[1]", "请求体须为 JSON 对象"),
        (b'"uscc"', "请求体须为 JSON 对象"),
        (b"null", "请求体须为 JSON 对象"),
    ],
)
def test_a_body_that_is_not_an_object(service, raw: bytes, detail: str):
    problem = refused(service, raw)
    assert (problem.code, problem.extra, problem.detail) == (
        "invalid_parameter",
        {"parameter": "body"},
        detail + ("，成员为服务声明的参数" if "对象" in detail else ""),
    )


def test_an_empty_body_is_an_empty_object(service, descriptor: dict[str, Any]):
    assert refused(service, b"").detail == "缺少必填参数 uscc"
    descriptor["parameters"] = []
    assert check_call(parse_service(descriptor), b" \n").names == ()


def test_the_size_limit(service):
    raw = body(uscc="x" * 100)
    assert check_call(service, raw, CallLimits(max_body_bytes=len(raw))).body["uscc"]
    problem = refused(service, raw, CallLimits(max_body_bytes=len(raw) - 1))
    assert (problem.status, problem.code) == (413, "payload_too_large")
    assert problem.detail == f"请求体超过 {len(raw) - 1} 字节的上限"
    problem = refused(service, body(uscc="x" * 11), CallLimits(max_string_chars=10))
    assert problem.detail == "参数 uscc 须为字符串，至多 10 个字符"
