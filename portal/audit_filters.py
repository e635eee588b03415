"""The auditor console's search form: every filter of `GET /api/v1/audit/events` (plus
the address, for a denial burst), read from the query string and checked with the API's
rules; a bad value is one Chinese sentence naming the field."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from starlette.datastructures import QueryParams

from audit.search import EventQuery, parse_moment

TEXT_FILTERS = ("action", "client_id", "actor", "dataset", "request_id", "ip")
OUTCOMES = {"allowed": "允许", "denied": "拒绝", "error": "错误"}
DEFAULT_LIMIT = 50
MAX_LIMIT = 1000
LABELS = {
    "action": "操作（action）",
    "client_id": "应用（client_id）",
    "actor": "操作者（actor）",
    "dataset": "数据集（dataset）",
    "outcome": "结果（outcome）",
    "request_id": "请求编号（request_id）",
    "grant_id": "授权编号（grant_id）",
    "ip": "来源地址（ip）",
    "since": "起始时间（since）",
    "until": "截止时间（until）",
    "limit": "每页条数（limit）",
    "cursor": "翻页位置（cursor）",
}


class BadFilter(ValueError):  # noqa: N818 (reads as what the form got)
    """A filter value the API would refuse too; its message names the field."""


@dataclass(frozen=True)
class Filters:
    """What the form shows (`values`) and the query it runs."""

    values: dict[str, str]
    query: EventQuery

    def link(self, **changes: Any) -> str:
        """The query string of this search with some values changed (None drops one)."""
        merged = {**self.values, **changes}
        return urlencode({k: v for k, v in merged.items() if v not in (None, "")})


def _integer(values: dict[str, str], name: str, *, low: int, high: int) -> int | None:
    text = values.get(name, "")
    if not text:
        return None
    if not (text.isascii() and text.isdigit()) or not low <= int(text) <= high:
        raise BadFilter(f"{LABELS[name]}须为 {low} 到 {high} 之间的整数")
    return int(text)


def _moment(values: dict[str, str], name: str, *, end: bool) -> str | None:
    text = values.get(name, "")
    if not text:
        return None
    try:
        return parse_moment(text, end=end)
    except ValueError:
        raise BadFilter(
            f"{LABELS[name]}须为日期（如 2026-11-01）或 RFC 3339 时间（如 2026-11-01T08:00:00Z）"
        ) from None


def read_filters(params: QueryParams) -> Filters:
    """The search of this query string; BadFilter names the first bad field."""
    values = {
        name: params.get(name, "").strip()[:200]
        for name in (*TEXT_FILTERS, "outcome", "grant_id", "since", "until", "limit", "cursor")
    }
    outcome = values["outcome"] or None
    if outcome is not None and outcome not in OUTCOMES:
        raise BadFilter(f"{LABELS['outcome']}只能是 allowed、denied 或 error")
    since = _moment(values, "since", end=False)
    until = _moment(values, "until", end=True)
    if since and until and since > until:
        raise BadFilter("起始时间（since）不能晚于截止时间（until）")
    query = EventQuery(
        **{name: values[name] or None for name in TEXT_FILTERS},
        outcome=outcome,
        grant_id=_integer(values, "grant_id", low=1, high=2**31 - 1),
        since=since,
        until=until,
        before_seq=_integer(values, "cursor", low=1, high=2**62),
        limit=_integer(values, "limit", low=1, high=MAX_LIMIT) or DEFAULT_LIMIT,
    )
    return Filters(values, query)
