"""The aggregate endpoint over 1,000,000 rows against the bare SQL GROUP BY it runs.

    python -m bench.aggregate_cost [--rows 1000000] [--runs 5]

One gateway (1 worker) on a fresh PostgreSQL database serves `bench-masked` of
bench.masking_cost to an app holding an aggregate grant (k = 5). Sequential requests of
`/aggregate?group_by=district&metrics=count,avg:monthly_base` alternate with the bare
`SELECT district, count(*), avg(monthly_base) FROM <table> GROUP BY district` run through
psycopg on one connection to the same database; after one warm-up of each, the medians of
`--runs` timings (wall clock, the HTTP one as the client sees it) are compared.
Bar: the aggregate answers in ≤ 2 × the time of the bare GROUP BY.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import httpx
import psycopg

from bench.common import postgres_database
from bench.masking_cost import classified_gateway, classified_package

BAR = 2.0
DATASET = "bench-masked"
TABLE = f"data_{DATASET.replace('-', '_')}_v1"
BARE_SQL = f"SELECT district, count(*), avg(monthly_base) FROM {TABLE} GROUP BY district"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    package = classified_package(args.rows, DATASET)
    http_times: list[float] = []
    sql_times: list[float] = []
    with (
        tempfile.TemporaryDirectory() as tmp,
        postgres_database() as url,
        classified_gateway(url, tmp, [package]) as gateway,
        psycopg.connect(url, autocommit=True) as conn,
        httpx.Client(timeout=120) as client,
    ):
        app = gateway.app("bench-aggregate")
        gateway.grant(app, DATASET, modes=["aggregate"], k=5)
        target = (
            f"{gateway.base}/api/v1/datasets/{DATASET}/aggregate"
            "?group_by=district&metrics=count,avg:monthly_base"
        )
        headers = {"Authorization": f"Bearer {gateway.token(app)}"}

        def http() -> dict:
            answer = client.get(target, headers=headers)
            answer.raise_for_status()
            return answer.json()

        def bare() -> list[tuple]:
            return conn.execute(BARE_SQL).fetchall()

        body, rows = http(), bare()  # warm up (and check they agree)
        assert sum(g["count"] for g in body["groups"]) == args.rows, body
        assert len(body["groups"]) == len(rows) and body["suppressed_groups"] == 0, body
        for _ in range(args.runs):
            for call, times in ((http, http_times), (bare, sql_times)):
                started = time.perf_counter()
                call()
                times.append(time.perf_counter() - started)
    http_ms = statistics.median(http_times) * 1000
    sql_ms = statistics.median(sql_times) * 1000
    ratio = http_ms / sql_ms
    print(f"rows: {args.rows:,}, groups: {len(rows)}")
    print(
        f"aggregate (HTTP)  {http_ms:7.1f} ms  (runs: "
        + ", ".join(f"{t * 1000:.0f}" for t in http_times)
        + ")"
    )
    print(
        f"bare GROUP BY     {sql_ms:7.1f} ms  (runs: "
        + ", ".join(f"{t * 1000:.0f}" for t in sql_times)
        + ")"
    )
    print(f"ratio {ratio:.2f} (bar ≤ {BAR:.1f}) {'ok' if ratio <= BAR else 'BELOW'}")
    print(
        f"method: PostgreSQL, 1 worker, aggregate grant k=5; group_by=district "
        f"metrics=count,avg:monthly_base over HTTP vs `{BARE_SQL}` through psycopg; "
        f"1 warm-up each, then {args.runs} alternating sequential runs, medians"
    )


if __name__ == "__main__":
    main()
