"""What projecting a 2 kB upstream answer costs (issue 18): the CPU a service call adds on
top of the proxying itself, on one core.

    python -m bench.service_projection [--seconds 1] [--rounds 5]

The answer is a 企业信用信息核验 reply of ~2 kB: a company record with a legal person, an
identity number, a phone and an address, ten shareholders and a list of change records,
plus undeclared members (internal ids, a raw record) the projection must drop. The service
declares 17 response paths; under the default transforms of contract §3 six of them are
transformed: names, the phone and the address masked, identity numbers pseudonymised (an
HMAC each) — 13 masked and 11 pseudonymised values an answer — the rest clear. Measured,
per answer (median of `--rounds`):

- `orjson loads+dumps`: the floor — parsing and writing the answer with nothing between.
- `project (all clear)`: the projection alone on a parsed answer, every path clear.
- `project (masked)`: the same under the default transforms.
- `returned_paths`: naming the paths of a projected answer for the audit event.
- `bytes → bytes (masked)`: parse, project, `returned_paths`, write: what the call path does.
- `bind`: compiling the projector for one plan (done once per plan, not per call).

Figures are CPU time of this process (`time.process_time`), so other load on the machine
inflates them less than wall time would.

Bar (no figure fixed by the issue for this part): bytes → bytes ≤ 50 µs, a small share of
the ≤ 2 ms p50 the issue allows a proxied call to add.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

import orjson

from policies.pseudonyms import derive_app_key
from services.masking import compile_specs, default_specs
from services.package import parse_service
from services.paths import CLEAR, returned_paths

FIELDS = [
    ("$.code", "integer", 1, "none"),
    ("$.message", "string", 1, "none"),
    ("$.data.uscc", "string", 1, "none"),
    ("$.data.company_name", "string", 1, "none"),
    ("$.data.legal_person", "string", 3, "name"),
    ("$.data.legal_id", "string", 4, "id_number"),
    ("$.data.phone", "string", 3, "phone"),
    ("$.data.address", "string", 3, "address"),
    ("$.data.capital", "integer", 2, "none"),
    ("$.data.founded", "date", 1, "none"),
    ("$.data.status", "string", 1, "none"),
    ("$.data.shareholders[*].name", "string", 3, "name"),
    ("$.data.shareholders[*].id_number", "string", 4, "id_number"),
    ("$.data.shareholders[*].ratio", "number", 2, "none"),
    ("$.data.changes[*].date", "date", 1, "none"),
    ("$.data.changes[*].item", "string", 1, "none"),
    ("$.data.tags[*]", "string", 1, "none"),
]

SERVICE = parse_service(
    {
        "name": "company-credit",
        "title": "企业信用信息核验",
        "open_type": "conditional",
        "upstream": {"url": "http://127.0.0.1:9101/credit", "method": "POST"},
        "response": {
            "fields": [
                {"path": p, "type": t, "level": level, "pii": pii} for p, t, level, pii in FIELDS
            ]
        },
    }
)

SURNAMES = "赵钱孙李周吴郑王冯陈"
ANSWER: dict[str, Any] = {
    "code": 0,
    "message": "查询成功",
    "request_id": "8f14e45fceea167a5a36dedd4bea2543",
    "data": {
        "uscc": "91370200163562681G",
        "company_name": "青岛海晏信息科技有限公司",
        "legal_person": "张三丰",
        "legal_id": "370202199001011234",
        "phone": "13812345678",
        "address": "青岛市市南区香港中路10号",
        "capital": 50_000_000,
        "founded": "2012-03-08",
        "status": "存续",
        "internal_id": 99812,
        "shareholders": [
            {
                "name": f"{SURNAMES[i]}{'晓明' if i % 2 else '丽'}",
                "id_number": f"3702021985{i:02d}011234",
                "ratio": round(0.1 - i * 0.001, 4),
                "internal": {"row": i},
            }
            for i in range(10)
        ],
        "changes": [
            {
                "date": f"2020-0{m}-15",
                "item": "注册资本变更",
                "before": "1000万元",
                "after": "5000万元",
            }
            for m in range(1, 7)
        ],
        "tags": ["高新技术企业", "专精特新", "纳税信用A级"],
        "raw": {"source": "市场监管总局", "fetched": "2026-12-04T01:00:00+08:00"},
    },
}
BODY = orjson.dumps(ANSWER)


def per_call(fn: Callable[[], Any], seconds: float) -> float:
    """CPU microseconds of this process per call of `fn`, over about `seconds` of it: on a
    machine shared with other work, wall time would count their turns too."""
    n, start = 0, time.process_time()
    deadline = start + seconds
    while True:
        for _ in range(200):
            fn()
        n += 200
        now = time.process_time()
        if now >= deadline:
            return (now - start) / n * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=1.0)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    key = derive_app_key(b"m" * 32, "bench-app")
    specs = default_specs(SERVICE)
    tree = SERVICE.tree
    masked = tree.bind(compile_specs(SERVICE, specs, key=key))
    clear = tree.bind(dict.fromkeys(tree.paths, CLEAR))

    projected = masked(ANSWER)

    def through() -> bytes:
        out = masked.answer(BODY)
        returned_paths(out, tree)
        return orjson.dumps(out)

    cases = {
        "orjson loads+dumps": lambda: orjson.dumps(orjson.loads(BODY)),
        "project (all clear)": lambda: clear(ANSWER),
        "project (masked)": lambda: masked(ANSWER),
        "returned_paths": lambda: returned_paths(projected, tree),
        "bytes → bytes (masked)": through,
        "bind": lambda: tree.bind(compile_specs(SERVICE, specs, key=key)),
    }
    transformed = sum(1 for s in specs.values() if s != "clear")
    print(
        f"answer {len(BODY)} bytes, {len(tree.paths)} declared paths "
        f"({transformed} transformed), {len(through())} bytes out"
    )
    for name, fn in cases.items():
        figures = [per_call(fn, args.seconds) for _ in range(args.rounds)]
        print(f"{name:24} {statistics.median(figures):8.2f} µs  (min {min(figures):.2f})")


if __name__ == "__main__":
    main()
