"""A granted conditional dataset with masking (100 rows, json) against the bare endpoint
serving the same table, side by side in one run (issue 14: masked ≥ 0.7 × bare), with the
open records endpoint of the same gateway (anonymous, 100 rows of an unconditional table
of as many rows) as the third column: what the conditional path costs over the open one.

    python -m bench.masked_vs_bare [--rows 100000] [--seconds 8] [--rounds 3] [--only sqlite]

One gateway (1 worker, limits and audit on, a bearer token) serves `bench-masked` of
bench.masking_cost — five transformed personal fields (mask_name, mask_phone, mask_address,
two pseudonyms) beside six clear ones — through a direct grant with the defaults; the bare
app (bench/bare_app.py, same driver, pool and thread settings) reads the first 100 rows of
the same hosted table. wrk loads `/records?limit=100` and `/bare` in alternating rounds;
and the open records in alternating rounds; medians are compared. A run with any non-2xx
answer is reported INVALID.
"""

from __future__ import annotations

import argparse
import tempfile

from bench.common import PYTHON, each_backend, free_port, server, synthetic_package
from bench.masking_cost import PERSONAL, classified_gateway, classified_package, transforms_of
from bench.wrk import WrkResult, median, require_wrk, run_wrk
from catalog.hosted import table_name

BAR = 0.7


def compare(label: str, url: str, args: argparse.Namespace) -> None:
    packages = [classified_package(args.rows, "bench-masked"), synthetic_package(args.rows)]
    with (
        tempfile.TemporaryDirectory() as tmp,
        classified_gateway(url, tmp, packages) as gateway,
    ):
        client_id = gateway.app("bench-masked")
        gateway.grant(client_id, "bench-masked", modes=["records"])  # the default masks
        auth = {"Authorization": f"Bearer {gateway.token(client_id)}"}
        masked_url = f"{gateway.base}/api/v1/datasets/bench-masked/records?limit=100"
        open_url = f"{gateway.base}/api/v1/datasets/bench-records/records?limit=100"
        transformed = {n: t for n, t in transforms_of(masked_url, auth).items() if t != "clear"}
        assert set(transformed) == set(PERSONAL), transformed
        port = free_port()
        env = {"BENCH_DATABASE_URL": url, "BENCH_TABLE": table_name("bench-masked", 1)}
        bare_args = [PYTHON, "-m", "uvicorn", "bench.bare_app:app", "--port", str(port)]
        bare_args += ["--workers", "1", "--no-server-header", "--log-level", "warning"]
        with server(bare_args, port, env, "/healthz") as bare:
            bare_url = f"{bare}/bare"
            run_wrk(masked_url, seconds=2, connections=args.connections, headers=auth)
            run_wrk(bare_url, seconds=2, connections=args.connections)
            run_wrk(open_url, seconds=2, connections=args.connections)
            masked_runs: list[WrkResult] = []
            bare_runs: list[WrkResult] = []
            open_runs: list[WrkResult] = []
            for _ in range(args.rounds):
                masked_runs.append(
                    run_wrk(
                        masked_url, seconds=args.seconds, connections=args.connections, headers=auth
                    )
                )
                bare_runs.append(
                    run_wrk(bare_url, seconds=args.seconds, connections=args.connections)
                )
                open_runs.append(
                    run_wrk(open_url, seconds=args.seconds, connections=args.connections)
                )
    masked, base, opened = median(masked_runs), median(bare_runs), median(open_runs)
    ratio = masked.requests_per_second / base.requests_per_second
    errors = masked.non_2xx + base.non_2xx + opened.non_2xx
    verdict = "INVALID (non-2xx answers)" if errors else "ok" if ratio >= BAR else "BELOW"
    print(
        f"{label:<11} masked {masked.requests_per_second:7.0f} req/s  p99 {masked.p99_ms:6.1f} ms"
        f" | bare {base.requests_per_second:7.0f} req/s  p99 {base.p99_ms:6.1f} ms"
        f" | ratio {ratio:.2f} (bar ≥ {BAR:.2f}) {verdict}"
        f" | open records {opened.requests_per_second:7.0f} req/s"
        f" ({opened.requests_per_second / base.requests_per_second:.2f} × bare;"
        f" masked {masked.requests_per_second / opened.requests_per_second:.2f} × open)"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--only", choices=["sqlite", "postgres"])
    args = parser.parse_args()
    require_wrk()
    print(
        f"masked conditional records (100 rows, json, {args.rows:,}-row table) vs bare; 1 worker "
        f"each, wrk -t1 -c{args.connections}, {args.rounds} alternating rounds of "
        f"{args.seconds}s after 2s warm-ups; medians"
    )
    each_backend(compare, args)


if __name__ == "__main__":
    main()
