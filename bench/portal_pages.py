"""Portal page time: the dataset page of a 1,000,000-row dataset and the portal home,
served by `opengate serve` (one worker) on PostgreSQL.

    python -m bench.portal_pages [--rows 1000000] [--requests 100] [--overview-seconds 1]
                                 [--audit-events 300000]

Sequential requests from one local client; the time of each is measured from the request
sent to the last byte received, so it bounds the server's time from above (loopback adds
well under a millisecond). The dataset page includes its preview, which is a real
`/records` request through the whole stack (decision, masking, rate limit, audit event
stored before the answer). Bars (issue 15): dataset page ≤ 150 ms, home ≤ 100 ms (median;
p95 printed too). No count of the hosted table is on the page path
(tests/portal/test_pages.py checks that); `datasets.row_count` is shown.

The home page's figures are the overview cache's (participation/overview.py). The server
runs with `OPENGATE_OVERVIEW_CACHE_SECONDS=--overview-seconds` (default 1 s, not the
production 30 s) so that the home requests find the figures stale several times during the
run: with the refresh off the request path, none of them should pay for it. What one
refresh costs (`compute()` on the same database, in this process) is printed beside. So
that a refresh costs what it does on a gateway in use, the audit log is seeded first with
`--audit-events` allowed data reads spread over the last 30 days (raw rows at negative
`seq`, below the real chain: synthetic load for the overview's GROUP BYs, not a chain;
nothing in this bench verifies one).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import httpx
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from bench.common import PYTHON, free_port, postgres_database, server, synthetic_package
from catalog.importer import import_package
from gateway.database import create_engine
from gateway.migrate import upgrade
from gateway.settings import Settings
from participation import overview


def timings(client: httpx.Client, url: str, count: int) -> list[float]:
    for _ in range(5):  # warm caches and the worker
        assert client.get(url).status_code == 200
    out = []
    for _ in range(count):
        start = time.perf_counter()
        answer = client.get(url)
        out.append((time.perf_counter() - start) * 1000)
        assert answer.status_code == 200, answer.text[:200]
    return out


def seed_data_reads(engine: Engine, count: int) -> None:
    """`count` allowed `data.records` events over the last 30 days (see the docstring)."""
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO audit_events (seq, ts, action, resource, outcome, prev_hash, hash) "
                "SELECT -g, to_char((now() AT TIME ZONE 'UTC') - (g % 30) * interval '1 day' "
                "- (g % 86400) * interval '1 second', :format), 'data.records', "
                "'datasets/bench-records', 'allowed', repeat('0', 64), repeat('0', 64) "
                "FROM generate_series(1, :count) AS g"
            ),
            # audit.canonical.format_ts's shape (text; the overview compares it as text)
            {"count": count, "format": 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'},
        )
        conn.execute(sa.text("ANALYZE audit_events"))


def report(name: str, values: list[float], bar: float) -> None:
    median = statistics.median(values)
    ranked = sorted(values)
    p95, p99 = (ranked[max(0, int(len(values) * q) - 1)] for q in (0.95, 0.99))
    verdict = "ok" if median <= bar else "ABOVE"
    print(
        f"{name:<28} median {median:6.1f} ms  p95 {p95:6.1f} ms  p99 {p99:6.1f} ms  max"
        f" {ranked[-1]:6.1f} ms  (bar ≤ {bar:.0f} ms) {verdict}"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=100)
    parser.add_argument("--overview-seconds", type=float, default=1.0)
    parser.add_argument("--audit-events", type=int, default=300_000)
    args = parser.parse_args()
    package = synthetic_package(args.rows)
    with postgres_database() as url, tempfile.TemporaryDirectory() as tmp:
        engine = create_engine(Settings(database_url=url).sqlalchemy_url)
        upgrade(engine)
        import_package(engine, package)
        seed_data_reads(engine, args.audit_events)
        engine.dispose()
        port = free_port()
        env = {
            "OPENGATE_DATABASE_URL": url,
            "OPENGATE_DATA_DIR": tmp,
            "OPENGATE_RATE_ANON": "100000/minute",
            "OPENGATE_RATE_WEB": "100000/minute",  # the pages are counted, as in production
            "OPENGATE_RATE_DATA": "100000/minute",
            "OPENGATE_OVERVIEW_CACHE_SECONDS": str(args.overview_seconds),
        }
        command = [PYTHON, "-m", "gateway.cli", "serve", "--port", str(port)]
        with server(command, port, env, "/readyz") as base, httpx.Client(timeout=30) as client:
            page = client.get(f"{base}/datasets/bench-records").text
            assert 'id="preview-table"' in page and f"{args.rows:,}" in page
            dataset = timings(client, f"{base}/datasets/bench-records", args.requests)
            start = time.perf_counter()
            home = timings(client, f"{base}/", args.requests)
            home_seconds = time.perf_counter() - start
        engine = create_engine(Settings(database_url=url).sqlalchemy_url)
        refresh = []
        for _ in range(5):
            start = time.perf_counter()
            overview.compute(engine)
            refresh.append((time.perf_counter() - start) * 1000)
        engine.dispose()
    print(f"rows {args.rows:,}; {args.requests} sequential requests each, one worker, PostgreSQL")
    report("dataset page (1M rows)", dataset, 150)
    report("portal home", home, 100)
    print(
        f"home run {home_seconds:.1f} s with the overview stale after {args.overview_seconds:g} s;"
        f" one overview compute over {args.audit_events:,} audit events (in process) median"
        f" {statistics.median(refresh):.1f} ms"
    )


if __name__ == "__main__":
    main()
