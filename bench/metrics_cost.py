"""What /metrics' counting costs a records request (issue 19: ≤ 3 %): two gateways on one
database, the same records request (100 rows, open data, audit and limits on), one with
metrics counted and one with OPENGATE_METRICS_ENABLED=false, loaded by wrk in alternating
rounds; medians compared, and the CPU each spent a request.

    python -m bench.metrics_cost [--seconds 8] [--rounds 4] [--connections 32]
"""

from __future__ import annotations

import argparse
import tempfile
from contextlib import ExitStack

from bench.common import PYTHON, free_port, server
from bench.proc import cpu_seconds, listening_pid
from bench.records_vs_bare import prepare, uptime
from bench.wrk import WrkResult, median, require_wrk, run_wrk

BAR = 0.97  # counted ≥ 0.97 × uncounted: metrics add ≤ 3 %


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args()
    require_wrk()
    with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
        url = f"sqlite:///{tmp}/metrics.db"
        prepare(url)
        bases = {}
        for name, enabled in (("counted", "true"), ("uncounted", "false")):
            port = free_port()
            env = {
                "OPENGATE_DATABASE_URL": url,
                "OPENGATE_DATA_DIR": f"{tmp}/var",
                "OPENGATE_ISSUER": f"http://127.0.0.1:{port}",
                "OPENGATE_METRICS_ENABLED": enabled,
                "OPENGATE_RATE_ANON": "100000000/minute",
                "OPENGATE_RATE_DATA": "100000000/minute",
            }
            command = [PYTHON, "-m", "gateway.cli", "serve", "--port", str(port)]
            bases[name] = (stack.enter_context(server(command, port, env, "/readyz")), port)
        targets = {
            n: f"{b}/api/v1/datasets/bench-records/records?limit=100" for n, (b, _) in bases.items()
        }
        for target in targets.values():
            run_wrk(target, seconds=2, connections=args.connections)
        runs: dict[str, list[WrkResult]] = {n: [] for n in targets}
        cpu = {n: [0.0, 0.0] for n in targets}
        pids = {n: listening_pid(port) for n, (_, port) in bases.items()}
        order = list(targets)
        for i in range(args.rounds):
            for name in order if i % 2 == 0 else order[::-1]:
                before = cpu_seconds(pids[name])
                runs[name].append(
                    run_wrk(targets[name], seconds=args.seconds, connections=args.connections)
                )
                cpu[name][0] += cpu_seconds(pids[name]) - before
                cpu[name][1] += runs[name][-1].requests_per_second * args.seconds
    on, off = median(runs["counted"]), median(runs["uncounted"])
    ratio = on.requests_per_second / off.requests_per_second
    ms = {n: 1000 * c[0] / c[1] for n, c in cpu.items()}
    print(
        f"records, 1 worker each, wrk -c{args.connections}, {args.rounds} alternating rounds of "
        f"{args.seconds}s | {uptime()}\n"
        f"counted {on.requests_per_second:7.0f} req/s p99 {on.p99_ms:6.1f} ms, CPU "
        f"{ms['counted']:.3f} ms | uncounted {off.requests_per_second:7.0f} req/s p99 "
        f"{off.p99_ms:6.1f} ms, CPU {ms['uncounted']:.3f} ms | ratio {ratio:.3f} "
        f"(bar ≥ {BAR}) {'ok' if ratio >= BAR else 'BELOW'} | CPU ratio "
        f"{ms['uncounted'] / ms['counted']:.3f}"
        + (f" non-2xx: {on.non_2xx + off.non_2xx}" if on.non_2xx + off.non_2xx else "")
    )


if __name__ == "__main__":
    main()
