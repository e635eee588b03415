"""API examples on a dataset page, filled in for that dataset: its URL, a real field to
filter on, and — for conditional data — the token step an app needs first."""

from __future__ import annotations

from dataclasses import dataclass

from catalog.hosted import HostedDataset


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
            "import httpx\n\n"
            f'BASE = "{base}"\n'
            "token = httpx.post(\n"
            '    f"{BASE}/oauth/token",\n'
            "    auth=(CLIENT_ID, CLIENT_SECRET),\n"
            '    data={"grant_type": "client_credentials",\n'
            f'          "scope": "dataset:{hosted.id}:records"}},\n'
            ').json()["access_token"]\n'
            "page = httpx.get(\n"
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
