"""The one error type of the API, rendered once by the gateway as RFC 9457 problem+json.

It lives at the bottom of the package graph so that every domain package can raise it
without importing the gateway.
"""

from __future__ import annotations

from typing import Any

TITLES: dict[str, str] = {
    "not_found": "资源不存在",
    "invalid_parameter": "参数无效",
    "unauthorized": "未认证",
    "forbidden": "无权访问",
    "grant_required": "需要授权",
    "field_not_permitted": "字段不允许此操作",
    "rate_limited": "请求过于频繁",
    "quota_exceeded": "超出配额",
    "privacy_budget_exhausted": "隐私预算已用尽",
    "unavailable": "服务暂不可用",
    "conflict": "资源冲突",
    "method_not_allowed": "方法不允许",
    "payload_too_large": "请求体过大",
    "internal_error": "内部错误",
}


class Problem(Exception):  # noqa: N818 (RFC 9457 calls it a problem)
    """An error a client is meant to see: a stable `code`, an HTTP status and a reason.

    `detail` is user-facing text. It must never carry a level-3/4 value or a secret.
    `extra` members are added to the problem document (e.g. `parameter`).
    """

    def __init__(
        self,
        status: int,
        code: str,
        detail: str,
        *,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(f"{code}: {detail}")
        self.status = status
        self.code = code
        self.detail = detail
        self.headers = headers or {}
        self.extra = extra

    @property
    def title(self) -> str:
        return TITLES.get(self.code, self.code)


def not_found(detail: str) -> Problem:
    return Problem(404, "not_found", detail)


def invalid_parameter(parameter: str, detail: str) -> Problem:
    return Problem(400, "invalid_parameter", detail, parameter=parameter)


def problem_document(
    status: int,
    code: str,
    detail: str,
    request_id: str | None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The RFC 9457 document every error of the API is rendered as."""
    document: dict[str, Any] = {
        "type": f"/problems/{code}",
        "title": TITLES.get(code, code),
        "status": status,
        "detail": detail,
        "code": code,
        "request_id": request_id,
    }
    if extra:
        document.update(extra)
    return document
