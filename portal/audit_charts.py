"""What the auditor's charts show, from `audit.stats` (the numbers of `/api/v1/audit/stats`):
plain lists the page embeds as `<script type="application/json">` for
`static/audit-charts.js` (no inline script: the page's CSP allows only files of its own)."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from audit.stats import denial_reasons, stats

TOP = 10
_OUTCOMES = ("allowed", "denied", "error")


def _is_request(action: str) -> bool:
    # a streamed export's completion event is the same request counted twice
    return action.startswith("data.") and not action.endswith(".completed")


def _search(**filters: Any) -> str:
    return "/audit?" + urlencode({k: v for k, v in filters.items() if v not in (None, "")})


def _days(since: str, until: str) -> list[str]:
    first = datetime.strptime(since[:10], "%Y-%m-%d")
    last = datetime.strptime(until[:10], "%Y-%m-%d")
    return [
        (first + timedelta(days=i)).strftime("%Y-%m-%d") for i in range((last - first).days + 1)
    ]


def flag_view(flag: dict[str, Any]) -> dict[str, Any]:
    """An anomaly flag with a sentence in Chinese and the search of the events behind it."""
    kind = flag["kind"]
    if kind == "row_spike":
        text = (
            f"应用 {flag['client_id']} 在 {flag['day']} 共获取 {flag['rows']:,} 行，"
            f"超过阈值 {flag['threshold']:,}（前 7 天日中位数 {flag['median_rows']:,} 的 10 倍）"
        )
        link = _search(
            client_id=flag["client_id"], action="data", since=flag["day"], until=flag["day"]
        )
    elif kind == "denial_burst":
        who = f"操作者 {flag['actor']}" if "actor" in flag else f"地址 {flag['ip']}"
        text = f"{who} 在一小时内被拒绝 {flag['count']} 次（{flag['from']} 至 {flag['to']}）"
        link = _search(
            actor=flag.get("actor"),
            ip=flag.get("ip"),
            outcome="denied",
            since=flag["from"],
            until=flag["to"],
        )
    else:  # verify_sweep
        text = (
            f"应用 {flag['client_id']} 在 {flag['day']} 对 {flag['distinct_values']} 个"
            "不同的值调用了核验接口（逐一试探个人信息的迹象）"
        )
        link = _search(
            client_id=flag["client_id"], action="data.verify", since=flag["day"], until=flag["day"]
        )
    return {"kind": kind, "text": text, "events": link, "flag": flag}


KIND_TITLES = {
    "row_spike": "行数激增",
    "denial_burst": "集中拒绝",
    "verify_sweep": "核验扫描",
}


def chart_data(engine: Any, *, since: str, until: str) -> dict[str, Any]:
    numbers = stats(engine, since=since, until=until, top=TOP)
    days = _days(since, until)
    per_day: dict[str, dict[str, int]] = {o: dict.fromkeys(days, 0) for o in _OUTCOMES}
    per_dataset: dict[str, int] = defaultdict(int)
    for row in numbers["counts"]:
        if not _is_request(row["action"]):
            continue
        per_day.setdefault(row["outcome"], dict.fromkeys(days, 0))
        per_day[row["outcome"]][row["day"]] = (
            per_day[row["outcome"]].get(row["day"], 0) + row["events"]
        )
        if row["dataset"]:
            per_dataset[row["dataset"]] += row["events"]
    top_datasets = sorted(per_dataset.items(), key=lambda kv: (-kv[1], kv[0]))[:TOP]
    consumers = numbers["top_consumers"]
    return {
        "days": days,
        "per_day": {o: [per_day[o][d] for d in days] for o in per_day},
        "top_datasets": [{"name": d, "value": n} for d, n in top_datasets],
        "top_apps": [
            {"name": c["client_id"], "value": c["requests"]} for c in consumers["by_requests"]
        ],
        "rows_per_app": [
            {"name": c["client_id"], "value": c["rows"]} for c in consumers["by_rows"]
        ],
        "denials": [
            {"name": r["code"], "value": r["count"]}
            for r in denial_reasons(engine, since=since, until=until)
        ],
        "anomalies": [flag_view(f) for f in numbers["anomalies"]],
    }
