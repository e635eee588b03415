"""Records endpoint (100 rows, json) against a bare endpoint serving the same rows.

    python -m bench.records_vs_bare [--seconds 10] [--rounds 3] [--workers 1] [--connections 32]

Both servers run side by side with the same worker count, on SQLite and on PostgreSQL;
wrk (`--latency`) loads them in alternating rounds and the medians are compared. The
gateway runs with everything on: rate limits (counted, never refusing), the audit log and
an app's bearer token on every request. Bars (issues 2 and 14): gateway ≥ 0.8 × bare
requests/s, and its p99 ≤ 1.5 × bare's p99.
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
from contextlib import ExitStack

from bench.app_token import bearer_header, create_app_credentials
from bench.common import PYTHON, free_port, postgres_database, server, synthetic_package
from bench.proc import cpu_seconds, listening_pid
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
    env["OPENGATE_ISSUER"] = f"http://127.0.0.1:{gw_port}"
    credentials = create_app_credentials(env)
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
        auth = bearer_header(gateway, credentials)
        load = {"seconds": args.seconds, "connections": args.connections}
        run_wrk(gw_url, seconds=2, connections=args.connections, headers=auth)  # warm up
        run_wrk(bare_url, seconds=2, connections=args.connections)
        gw_runs: list[WrkResult] = []
        bare_runs: list[WrkResult] = []
        # CPU ms a request of each server process (all its threads), summed over the rounds.
        cpu = {"gateway": [0.0, 0.0], "bare": [0.0, 0.0]}
        pids = {"gateway": listening_pid(gw_port), "bare": listening_pid(bare_port)}
        for i in range(args.rounds):
            # Alternate which goes first: outside load drifts during a run.
            pair = [("gateway", gw_runs, gw_url, auth), ("bare", bare_runs, bare_url, None)]
            for name, runs, target, headers in pair if i % 2 == 0 else pair[::-1]:
                before = cpu_seconds(pids[name])
                runs.append(run_wrk(target, headers=headers, **load))
                cpu[name][0] += cpu_seconds(pids[name]) - before
                cpu[name][1] += runs[-1].requests_per_second * args.seconds
            if args.verbose:
                print(
                    f"  round {i + 1}: gateway {gw_runs[-1].requests_per_second:.0f} "
                    f"p99 {gw_runs[-1].p99_ms:.1f} ms, bare {bare_runs[-1].requests_per_second:.0f}"
                    f" p99 {bare_runs[-1].p99_ms:.1f} ms | {uptime()}"
                )
    gw, base = median(gw_runs), median(bare_runs)
    ratio = gw.requests_per_second / base.requests_per_second
    tail = gw.p99_ms / base.p99_ms
    gw_cpu, bare_cpu = (1000 * cpu[n][0] / cpu[n][1] for n in ("gateway", "bare"))
    print(
        f"{label:<11} gateway {gw.requests_per_second:8.0f} req/s  p99 {gw.p99_ms:6.1f} ms | "
        f"bare {base.requests_per_second:8.0f} req/s  p99 {base.p99_ms:6.1f} ms | "
        f"ratio {ratio:.2f} (bar ≥ 0.80) {'ok' if ratio >= 0.8 else 'BELOW'} | "
        f"p99 ratio {tail:.2f} (bar ≤ 1.50) {'ok' if tail <= 1.5 else 'ABOVE'}"
        + (f"  non-2xx: {gw.non_2xx + base.non_2xx}" if gw.non_2xx + base.non_2xx else "")
    )
    print(
        f"{'':<11} CPU a request: gateway {gw_cpu:.2f} ms, bare {bare_cpu:.2f} ms "
        f"(bare ÷ gateway {bare_cpu / gw_cpu:.2f}: the req/s ratio on an idle core)"
    )
    return ratio


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--verbose", action="store_true", help="each round's figures")
    parser.add_argument("--only", choices=["sqlite", "postgres"])
    args = parser.parse_args()
    require_wrk()
    print(uptime())
    print(
        f"records (100 rows, json) vs bare; workers={args.workers}, wrk -t1 "
        f"-c{args.connections}, {args.rounds} alternating rounds of {args.seconds}s, medians"
    )
    with tempfile.TemporaryDirectory() as tmp:
        if args.only in (None, "sqlite"):
            compare("SQLite", f"sqlite:///{tmp}/bench.db", f"{tmp}/sqlite", args)
        if args.only in (None, "postgres"):
            with postgres_database() as url:
                compare("PostgreSQL", url, f"{tmp}/postgres", args)
    print(uptime())


if __name__ == "__main__":
    main()
