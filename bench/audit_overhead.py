"""What the audit log costs a records request (100 rows, json) on PostgreSQL, 2 workers.

    python -m bench.audit_overhead [--seconds 5] [--rounds 8] [--workers 2]

Two `opengate serve --workers N` on one fresh PostgreSQL database, side by side: one with
the audit log (every request's event committed before its answer), one with
`OPENGATE_AUDIT_SINK=null` (nothing stored). wrk loads them in alternating rounds; the
medians are compared. Afterwards the audited server's events are counted against the
requests wrk completed. Bar (issue 6): audit on adds ≤ 15 %, i.e. on ≥ 0.85 × null
requests/s. Eight rounds by default: with three, two runs of the same code differed by
10 points of overhead on this 2-vCPU machine.
"""

from __future__ import annotations

import argparse
import tempfile
from contextlib import ExitStack

import psycopg

from bench.common import PYTHON, free_port, postgres_database, server
from bench.records_vs_bare import prepare
from bench.wrk import WrkResult, median, require_wrk, run_wrk

BAR = 0.85


def serve(stack: ExitStack, url: str, data_dir: str, workers: int, **env: str) -> str:
    port = free_port()
    command = [PYTHON, "-m", "gateway.cli", "serve", "--port", str(port)]
    environment = {"OPENGATE_DATABASE_URL": url, "OPENGATE_DATA_DIR": data_dir, **env}
    base = stack.enter_context(
        server([*command, "--workers", str(workers)], port, environment, "/readyz")
    )
    return f"{base}/api/v1/datasets/bench-records/records?limit=100"


def events(url: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT count(*) FROM audit_events WHERE action = 'data.records'")
        return int(row.fetchone()[0])  # type: ignore[index]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--connections", type=int, default=16)
    args = parser.parse_args()
    require_wrk()
    print(
        f"records (100 rows, json), PostgreSQL, audit on vs null sink; workers={args.workers}, "
        f"wrk -t1 -c{args.connections}, {args.rounds} alternating rounds of {args.seconds}s"
    )
    on_runs: list[WrkResult] = []
    off_runs: list[WrkResult] = []
    with ExitStack() as stack:
        url = stack.enter_context(postgres_database())
        data_dir = stack.enter_context(tempfile.TemporaryDirectory())
        prepare(url)
        on = serve(stack, url, data_dir, args.workers)
        off = serve(stack, url, data_dir, args.workers, OPENGATE_AUDIT_SINK="null")
        for target in (on, off):  # warm up pools and caches
            run_wrk(target, seconds=2, connections=args.connections)
        before = events(url)
        for i in range(args.rounds):
            on_runs.append(run_wrk(on, seconds=args.seconds, connections=args.connections))
            off_runs.append(run_wrk(off, seconds=args.seconds, connections=args.connections))
            print(
                f"  round {i + 1}: on {on_runs[-1].requests_per_second:7.0f} req/s "
                f"(p99 {on_runs[-1].p99_ms:6.1f} ms) | null {off_runs[-1].requests_per_second:7.0f}"
                f" req/s (p99 {off_runs[-1].p99_ms:6.1f} ms)"
            )
        stored = events(url) - before
    on_median, off_median = median(on_runs), median(off_runs)
    ratio = on_median.requests_per_second / off_median.requests_per_second
    print(
        f"audit on {on_median.requests_per_second:.0f} req/s (p99 {on_median.p99_ms:.1f} ms) | "
        f"null {off_median.requests_per_second:.0f} req/s (p99 {off_median.p99_ms:.1f} ms) | "
        f"on/null {ratio:.2f}, overhead {(1 - ratio) * 100:.1f} % (bar ≤ 15 %) "
        f"{'ok' if ratio >= BAR else 'BELOW'}; {stored:,} events stored during the rounds"
        + (f"; non-2xx: {on_median.non_2xx + off_median.non_2xx}" if on_median.non_2xx else "")
    )


if __name__ == "__main__":
    main()
