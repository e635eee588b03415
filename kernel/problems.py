"""The one error type of the API, rendered once by the gateway as RFC 9457 problem+json.

It lives at the bottom of the package graph so that every domain package can raise it
without importing the gateway.
"""

from __future__ import annotations

from typing import Any

from kernel.problem_codes import TITLES


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
