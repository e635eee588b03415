"""The one table of problem codes: every `code` an error document of the API may carry, its
Chinese title, and the statuses it is answered with.

`kernel.problems` and `gateway.problems.HTTP_CODES` are read from here;
tests/kernel/test_problem_codes.py holds every `Problem(status, code, …)` of the code to it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ProblemCode:
    title: str
    statuses: frozenset[int]
    # The status whose bare framework errors (no route, wrong method, a plain HTTPException)
    # are named by this code; one code per status.
    names_status: int | None = None


def _code(title: str, *statuses: int, names_status: int | None = None) -> ProblemCode:
    return ProblemCode(title, frozenset(statuses), names_status)


CODES: dict[str, ProblemCode] = {
    "invalid_parameter": _code("参数无效", 400, 415, names_status=400),
    "field_not_permitted": _code("字段不允许此操作", 400, 403),
    "unauthorized": _code("未认证", 401, names_status=401),
    "forbidden": _code("无权访问", 403, names_status=403),
    "grant_required": _code("需要授权", 403),
    "grant_outside_agreement": _code("超出授权运营协议范围", 403),
    "insufficient_scope": _code("令牌权限范围不足", 403),
    "privacy_budget_exhausted": _code("隐私预算已用尽", 403),
    "not_found": _code("资源不存在", 404, names_status=404),
    "method_not_allowed": _code("方法不允许", 405, names_status=405),
    "not_acceptable": _code("无法提供所请求的格式", 406, names_status=406),
    "conflict": _code("资源冲突", 409),
    "payload_too_large": _code("请求体过大", 413, names_status=413),
    "rate_limited": _code("请求过于频繁", 429, names_status=429),
    "quota_exceeded": _code("超出配额", 429),
    "internal_error": _code("内部错误", 500, names_status=500),
    "upstream_error": _code("上游接口出错", 502),
    "unavailable": _code("服务暂不可用", 503, names_status=503),
    "upstream_timeout": _code("上游接口超时", 504),
}

TITLES: dict[str, str] = {name: c.title for name, c in CODES.items()}
BY_STATUS: dict[int, str] = {
    c.names_status: name for name, c in CODES.items() if c.names_status is not None
}
