"""Keyset pagination cost: a page deep in a 1,000,000-row PostgreSQL table against the
first page.

    python -m bench.deep_page [--rows 1000000]

The deep page's cursor points near the end of the table (rows 999,901–1,000,000 follow
it). Bar (issue 2): deep page ≤ 1.5 × the cost of the first page, where cost is the
inverse of wrk's requests/s measured in alternating rounds.
"""

from __future__ import annotations

import argparse
import tempfile

import httpx

from bench.common import PYTHON, free_port, postgres_database, server, synthetic_package
from bench.wrk import median, require_wrk, run_wrk
from catalog.importer import import_package
from gateway.database import create_engine
from gateway.migrate import upgrade
from gateway.settings import Settings


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    require_wrk()
    package = synthetic_package(args.rows)
    with postgres_database() as url, tempfile.TemporaryDirectory() as tmp:
        engine = create_engine(Settings(database_url=url).sqlalchemy_url)
        upgrade(engine)
        import_package(engine, package)
        engine.dispose()
        port = free_port()
        env = {"OPENGATE_DATABASE_URL": url, "OPENGATE_DATA_DIR": tmp}
        command = [PYTHON, "-m", "gateway.cli", "serve", "--port", str(port)]
        with server(command, port, env, "/readyz") as base:
            records = f"{base}/api/v1/datasets/bench-records/records"
            near_end = args.rows - 200
            cursor = httpx.get(records, params={"record_id__gte": near_end, "limit": 100}).json()[
                "next_cursor"
            ]
            first_url = f"{records}?limit=100"
            deep_url = f"{records}?limit=100&cursor={cursor}"
            deep_rows = httpx.get(deep_url).json()["data"]
            assert deep_rows[0]["record_id"] == near_end + 100, deep_rows[0]
            for url_ in (first_url, deep_url):
                run_wrk(url_, seconds=2, connections=4)
            first, deep = [], []
            for _ in range(args.rounds):
                first.append(run_wrk(first_url, seconds=args.seconds, connections=4))
                deep.append(run_wrk(deep_url, seconds=args.seconds, connections=4))
    f, d = median(first), median(deep)
    cost = f.requests_per_second / d.requests_per_second
    print(f"rows {args.rows:,}; wrk -t1 -c4, {args.rounds} alternating rounds of {args.seconds}s")
    print(f"first page {f.requests_per_second:7.0f} req/s p99 {f.p99_ms:6.1f} ms")
    print(f"deep page  {d.requests_per_second:7.0f} req/s p99 {d.p99_ms:6.1f} ms")
    print(f"deep/first cost {cost:.2f} (bar ≤ 1.5) {'ok' if cost <= 1.5 else 'ABOVE'}")


if __name__ == "__main__":
    main()
