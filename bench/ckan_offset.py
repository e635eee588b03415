"""CKAN `datastore_search` offset windows against the records API's keyset cursors: the
time to page a whole table, and one page at the start against one at the end.

    python -m bench.ckan_offset [--rows 100000] [--only sqlite|postgres]

In process (the ASGI app through Starlette's TestClient, one request at a time), so the
figures compare the two paths, not a server's throughput. An offset window is an
`ORDER BY <key> LIMIT n OFFSET m`: the database walks the key index past `m` rows, so a
deep window costs more than the first, and paging a table by windows of `n` is quadratic
in rows / n; the figures say where that stops being sane.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from typing import Any

from bench.common import each_backend, synthetic_package
from catalog.importer import import_package
from gateway.app import create_app
from gateway.database import create_engine
from gateway.migrate import upgrade
from gateway.settings import Settings
from tests.conftest import TestClient

SEARCH = "/api/3/action/datastore_search"


def _walk_offsets(client: Any, rows: int, limit: int) -> float:
    began = time.perf_counter()
    offset = 0
    while offset < rows:
        body = {"resource_id": "bench-records", "limit": limit, "offset": offset}
        body["include_total"] = offset == 0
        got = client.post(SEARCH, json=body).json()["result"]["records"]
        assert got, offset
        offset += len(got)
    return time.perf_counter() - began


def _walk_cursors(client: Any, limit: int) -> float:
    began = time.perf_counter()
    url: str | None = f"/api/v1/datasets/bench-records/records?limit={limit}"
    while url:
        page = client.get(url).json()
        cursor = page["next_cursor"]
        url = (
            f"/api/v1/datasets/bench-records/records?limit={limit}&cursor={cursor}"
            if cursor
            else None
        )
    return time.perf_counter() - began


def _one(client: Any, offset: int, repeat: int = 20) -> float:
    body = {"resource_id": "bench-records", "limit": 100, "offset": offset, "include_total": False}
    client.post(SEARCH, json=body)
    began = time.perf_counter()
    for _ in range(repeat):
        client.post(SEARCH, json=body)
    return (time.perf_counter() - began) / repeat * 1000


def compare(label: str, url: str, args: argparse.Namespace) -> None:
    engine = create_engine(Settings(database_url=url).sqlalchemy_url)
    upgrade(engine)
    import_package(engine, synthetic_package(args.rows))
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(database_url=url, data_dir=tmp, rate_limits_enabled=False)
        with TestClient(create_app(settings, engine=engine)) as client:
            print(f"{label}, {args.rows:,} rows")
            deep = args.rows - 100
            print(f"  window of 100 at offset 0       {_one(client, 0):7.1f} ms")
            print(f"  window of 100 at offset {deep:,} {_one(client, deep):7.1f} ms")
            for limit in (32_000, 10_000, 1_000, 100):
                took = _walk_offsets(client, args.rows, limit)
                print(f"  all rows by offset, limit {limit:>6,}  {took:6.1f} s")
            print(f"  all rows by cursor, limit 10,000  {_walk_cursors(client, 10_000):6.1f} s")
    engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--only", choices=("sqlite", "postgres"))
    each_backend(compare, parser.parse_args())


if __name__ == "__main__":
    main()
