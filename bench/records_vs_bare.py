"""Records endpoint (100 rows, json) against a bare endpoint serving the same rows.

    python -m bench.records_vs_bare [--seconds 10] [--rounds 3] [--workers 1]

Both servers run side by side with the same worker count, on SQLite and on PostgreSQL;
wrk loads them in alternating rounds and the medians are compared. Bar (issue 2): gateway
≥ 0.8 × bare requests/s.
"""

from __future__ import annotations

import argparse
import tempfile
from contextlib import ExitStack

from bench.common import PYTHON, free_port, postgres_database, server, synthetic_package
from bench.wrk import WrkResult, median, require_wrk, run_wrk
from catalog.importer import import_package
from gateway.database import create_engine
from gateway.migrate import upgrade
from gateway.settings import Settings

ROWS = 10_000


def prepare(url: str) -> str:
    engine = create_engine(Settings(database_url=url).sqlalchemy_url)
    upgrade(engine)
    result = import_package(engine, synthetic_package(ROWS))
    engine.dispose()
    return f"data_{result.dataset_id.replace('-', '_')}_v{result.version}"


def compare(label: str, url: str, data_dir: str, args: argparse.Namespace) -> float:
    table = prepare(url)
    env = {
        "OPENGATE_DATABASE_URL": url,
        "OPENGATE_DATA_DIR": data_dir,
        "BENCH_DATABASE_URL": url,
        "BENCH_TABLE": table,
    }
    gw_port, bare_port = free_port(), free_port()
    workers = str(args.workers)
    with ExitStack() as stack:
        gateway = stack.enter_context(
            server(
                [
                    PYTHON,
                    "-m",
                    "gateway.cli",
                    "serve",
                    "--port",
                    str(gw_port),
                    "--workers",
                    workers,
                ],
                gw_port,
                env,
                "/readyz",
            )
        )
        bare = stack.enter_context(
            server(
                [
                    PYTHON,
                    "-m",
                    "uvicorn",
                    "bench.bare_app:app",
                    "--port",
                    str(bare_port),
                    "--workers",
                    workers,
                    "--no-server-header",
                    "--log-level",
                    "info",
                ],
                bare_port,
                env,
                "/healthz",
            )
        )
        gw_url = f"{gateway}/api/v1/datasets/bench-records/records?limit=100"
        bare_url = f"{bare}/bare"
        for url_ in (gw_url, bare_url):  # warm up pools and caches
            run_wrk(url_, seconds=2, connections=args.connections)
        gw_runs: list[WrkResult] = []
        bare_runs: list[WrkResult] = []
        for _ in range(args.rounds):
            gw_runs.append(run_wrk(gw_url, seconds=args.seconds, connections=args.connections))
            bare_runs.append(run_wrk(bare_url, seconds=args.seconds, connections=args.connections))
    gw, base = median(gw_runs), median(bare_runs)
    ratio = gw.requests_per_second / base.requests_per_second
    print(
        f"{label:<11} gateway {gw.requests_per_second:8.0f} req/s  p99 {gw.p99_ms:6.1f} ms | "
        f"bare {base.requests_per_second:8.0f} req/s  p99 {base.p99_ms:6.1f} ms | "
        f"ratio {ratio:.2f} (bar ≥ 0.80) {'ok' if ratio >= 0.8 else 'BELOW'}"
        + (f"  non-2xx: {gw.non_2xx + base.non_2xx}" if gw.non_2xx + base.non_2xx else "")
    )
    return ratio


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--only", choices=["sqlite", "postgres"])
    args = parser.parse_args()
    require_wrk()
    print(
        f"records (100 rows, json) vs bare; workers={args.workers}, wrk -t1 "
        f"-c{args.connections}, {args.rounds} alternating rounds of {args.seconds}s, medians"
    )
    with tempfile.TemporaryDirectory() as tmp:
        if args.only in (None, "sqlite"):
            compare("SQLite", f"sqlite:///{tmp}/bench.db", tmp, args)
        if args.only in (None, "postgres"):
            with postgres_database() as url:
                compare("PostgreSQL", url, tmp, args)


if __name__ == "__main__":
    main()
