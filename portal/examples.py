"""API examples on a dataset page, filled in for that dataset: its URL, a real field to
filter on, and — for conditional data — the token step an app needs first."""

from __future__ import annotations

import json
from dataclasses import dataclass

from catalog.hosted import HostedDataset
from services.catalog import HostedService


@dataclass(frozen=True, slots=True)
class Examples:
    curl: str
    python: str
    records_url: str


def _filter_field(hosted: HostedDataset) -> str | None:
    """A level-1 string field to show a filter on (filters need a clear field)."""
    for f in hosted.fields:
        if f.level == 1 and str(f.type) == "string" and not f.primary_key:
            return f.name
    return None


def for_dataset(base: str, hosted: HostedDataset) -> Examples:
    records = f"{base}/api/v1/datasets/{hosted.id}/records"
    names = [f.name for f in hosted.fields][:3]
    field = _filter_field(hosted)
    query = f"?fields={','.join(names)}&limit=10"
    if field is not None:
        query += f"&{field}__contains=…"
    conditional = hosted.open_type == "conditional"
    if conditional:
        curl = (
            "# 1. 用应用的 client_id / client_secret 换取访问令牌（需已获授权）\n"
            f'TOKEN=$(curl -s -u "$CLIENT_ID:$CLIENT_SECRET" -d grant_type=client_credentials \\\n'
            f'  -d scope="dataset:{hosted.id}:records" {base}/oauth/token | jq -r .access_token)\n'
            "# 2. 读取记录（字段按授权脱敏）\n"
            f'curl -H "Authorization: Bearer $TOKEN" "{records}{query}"'
        )
        python = (
            _python_token(base, f"dataset:{hosted.id}:records") + "page = httpx.get(\n"
            f'    f"{{BASE}}/api/v1/datasets/{hosted.id}/records",\n'
            f'    params={{"fields": "{",".join(names)}", "limit": 10}},\n'
            '    headers={"Authorization": f"Bearer {token}"},\n'
            ").json()\n"
            'for row in page["data"]:\n'
            "    print(row)"
        )
    else:
        curl = (
            f'curl "{records}{query}"\n'
            "# 全量导出（CSV，UTF-8 带 BOM）\n"
            f'curl -o {hosted.id}.csv "{base}/api/v1/datasets/{hosted.id}/export?format=csv"'
        )
        python = (
            "import httpx\n\n"
            f'url = "{records}"\n'
            f'params = {{"fields": "{",".join(names)}", "limit": 100}}\n'
            "while True:\n"
            "    page = httpx.get(url, params=params).json()\n"
            '    for row in page["data"]:\n'
            "        print(row)\n"
            '    if not page["next_cursor"]:\n'
            "        break\n"
            '    params["cursor"] = page["next_cursor"]'
        )
    return Examples(curl=curl, python=python, records_url=records)


def for_service(base: str, service: HostedService) -> Examples:
    """An interface service's call: the token step, then POST its declared parameters."""
    call = f"{base}/api/v1/services/{service.id}/call"
    sample = {p.name: _sample(p.type.value) for p in service.spec.parameters if p.required}
    body = json.dumps(sample, ensure_ascii=False)
    token = (
        "# 1. 用应用的 client_id / client_secret 换取访问令牌（需已获 call 授权）\n"
        f'TOKEN=$(curl -s -u "$CLIENT_ID:$CLIENT_SECRET" -d grant_type=client_credentials \\\n'
        f'  -d scope="dataset:{service.id}:call" {base}/oauth/token | jq -r .access_token)\n'
    )
    curl = (
        token + "# 2. 调用接口服务（应答按授权脱敏，未声明的成员已去除）\n"
        f'curl -X POST -H "Authorization: Bearer $TOKEN" -H "Content-Type: application/json" \\\n'
        f"  -d '{body}' {call}"
    )
    python = (
        _python_token(base, f"dataset:{service.id}:call") + "answer = httpx.post(\n"
        f'    f"{{BASE}}/api/v1/services/{service.id}/call",\n'
        f"    json={body},\n"
        '    headers={"Authorization": f"Bearer {token}"},\n'
        ").json()\n"
        "# 服务器间调用也可用接口签名代替令牌：services.signing.sign_request（契约 §12）"
    )
    return Examples(curl=curl, python=python, records_url=call)


def _python_token(base: str, scope: str) -> str:
    return (
        "import httpx\n\n"
        f'BASE = "{base}"\n'
        "token = httpx.post(\n"
        '    f"{BASE}/oauth/token",\n'
        "    auth=(CLIENT_ID, CLIENT_SECRET),\n"
        '    data={"grant_type": "client_credentials",\n'
        f'          "scope": "{scope}"}},\n'
        ').json()["access_token"]\n'
    )


def _sample(kind: str) -> object:
    return {"integer": 1, "number": 1.0, "boolean": True, "date": "2026-01-01"}.get(kind, "…")
