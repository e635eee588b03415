"""What the rate limiter costs a 100-row records request, with Redis.

    python -m bench.ratelimit_overhead [--seconds 10] [--rounds 3] [--workers 1]
                                       [--redis redis://HOST:PORT/DB] [--postgres]

Two `opengate serve` processes run side by side on the same database and the same Redis
(`OPENGATE_REDIS_URL`): one with rate limits on — far above what wrk reaches, so nothing
is refused but every request is counted, in two windows (the anonymous caller's and the
data group's, the most an anonymous records request pays) — and one with
`OPENGATE_RATE_LIMITS_ENABLED=false`. Redis is a private `redis-server` on a free port
(nobody else's commands in its CPU figures), or the one given with `--redis`.

Each round is one wrk run per setting (which goes first alternates); the figures are
medians over the rounds:
- cost ratio = off req/s ÷ on req/s — the bar (issue 5): ≤ 1.10;
- CPU per request: the gateway process's (utime + stime from /proc) and Redis's
  (`INFO cpu`, on runs only) — the same cost seen from the other side.
On a shared machine other work moves single rounds a lot; use several.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, ExitStack, nullcontext
from dataclasses import dataclass
from pathlib import Path

import httpx
import redis

from bench.common import (
    PYTHON,
    free_port,
    load_options,
    postgres_database,
    server,
    synthetic_package,
)
from bench.wrk import WrkResult, require_wrk, run_wrk
from catalog.importer import import_package
from gateway.database import create_engine
from gateway.migrate import upgrade
from gateway.settings import Settings

ROWS = 10_000
PATH = "/api/v1/datasets/bench-records/records?limit=100"
# Far above what one wrk client reaches in a minute, but counted; the data group's is
# lower than the caller's so that both windows are checked (a group limit no lower than
# the caller's own could never refuse first, and the gateway skips it).
LIMITS_ON = {"OPENGATE_RATE_ANON": "100000000/minute", "OPENGATE_RATE_DATA": "50000000/minute"}
TICK = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Run:
    wrk: WrkResult
    gateway_us: float  # gateway CPU per request
    redis_us: float  # Redis CPU per request


def prepare(url: str) -> None:
    engine = create_engine(Settings(database_url=url).sqlalchemy_url)
    upgrade(engine)
    import_package(engine, synthetic_package(ROWS))
    engine.dispose()


@contextlib.contextmanager
def private_redis(folder: str) -> Iterator[str]:
    if shutil.which("redis-server") is None:
        raise SystemExit("redis-server is not installed; or pass --redis URL")
    port = free_port()
    command = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
    process = subprocess.Popen(
        [*command, "--appendonly", "no", "--daemonize", "no"],
        cwd=folder,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    try:
        for _ in range(100):
            with contextlib.suppress(redis.ConnectionError):
                redis.Redis.from_url(url).ping()
                break
            time.sleep(0.05)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


def gateway(port: int, workers: int, env: dict[str, str]) -> AbstractContextManager[str]:
    command = [PYTHON, "-m", "gateway.cli", "serve", "--port", str(port)]
    return server([*command, "--workers", str(workers)], port, env, "/readyz")


def processes_serving(port: int) -> list[int]:
    """The `opengate serve` process on `port` and its workers."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        with contextlib.suppress(OSError):
            args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            if b"serve" in args and b"--port" in args and str(port).encode() in args:
                found.append(int(pid))
    children = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        with contextlib.suppress(OSError):
            stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            if int(stat[1]) in found:
                children.append(int(pid))
    return found + children


def cpu_seconds(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        with contextlib.suppress(OSError):
            stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(stat[11]) + int(stat[12])) / TICK
    return total


def redis_cpu(client: redis.Redis) -> float:
    info = client.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def measure(url: str, pids: list[int], client: redis.Redis, args: argparse.Namespace) -> Run:
    gateway0, redis0 = cpu_seconds(pids), redis_cpu(client)
    result = run_wrk(url, seconds=args.seconds, connections=args.connections)
    served = result.requests_per_second * args.seconds
    return Run(
        result,
        (cpu_seconds(pids) - gateway0) / served * 1e6,
        (redis_cpu(client) - redis0) / served * 1e6,
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    load_options(parser)
    parser.add_argument("--redis", help="an existing Redis (default: a private redis-server)")
    parser.add_argument("--postgres", action="store_true", help="PostgreSQL instead of SQLite")
    args = parser.parse_args()
    require_wrk()
    with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
        redis_url = args.redis or stack.enter_context(private_redis(tmp))
        client = redis.Redis.from_url(redis_url)
        client.flushdb()
        print(
            f"records (100 rows, json), limits on (Redis {redis_url}) vs off; "
            f"workers={args.workers}, wrk -t1 -c{args.connections}, {args.rounds} alternating "
            f"rounds of {args.seconds}s"
        )
        database = stack.enter_context(
            postgres_database() if args.postgres else nullcontext(f"sqlite:///{tmp}/bench.db")
        )
        prepare(database)
        common = {
            "OPENGATE_DATABASE_URL": database,
            "OPENGATE_DATA_DIR": tmp,
            "OPENGATE_REDIS_URL": redis_url,
        }
        on_port, off_port = free_port(), free_port()
        on = stack.enter_context(gateway(on_port, args.workers, {**common, **LIMITS_ON}))
        off_env = {**common, "OPENGATE_RATE_LIMITS_ENABLED": "false"}
        off = stack.enter_context(gateway(off_port, args.workers, off_env))
        on_url, off_url = on + PATH, off + PATH
        assert "ratelimit" in httpx.get(on_url).headers, "limits are not on"
        assert "ratelimit" not in httpx.get(off_url).headers, "limits are not off"
        on_pids, off_pids = processes_serving(on_port), processes_serving(off_port)
        for url in (on_url, off_url):  # warm up pools and caches
            run_wrk(url, seconds=2, connections=args.connections)
        rounds: list[tuple[Run, Run]] = []
        for i in range(args.rounds):
            if i % 2:  # every other round the other way round: neither always goes first
                b = measure(off_url, off_pids, client, args)
                a = measure(on_url, on_pids, client, args)
            else:
                a = measure(on_url, on_pids, client, args)
                b = measure(off_url, off_pids, client, args)
            rounds.append((a, b))
            print(
                f"round {i + 1}: on {a.wrk.requests_per_second:5.0f} req/s "
                f"p99 {a.wrk.p99_ms:5.1f} ms, CPU {a.gateway_us:4.0f} + Redis "
                f"{a.redis_us:3.0f} µs/req | off {b.wrk.requests_per_second:5.0f} req/s "
                f"p99 {b.wrk.p99_ms:5.1f} ms, CPU {b.gateway_us:4.0f} µs/req | cost ratio "
                f"{b.wrk.requests_per_second / a.wrk.requests_per_second:.3f}"
            )
        counted = sum(client.llen(key) for key in client.scan_iter("LIMITS:*"))
        client.flushdb()
    ratio = statistics.median(
        b.wrk.requests_per_second / a.wrk.requests_per_second for a, b in rounds
    )
    cpu_on = statistics.median(a.gateway_us + a.redis_us for a, _ in rounds)
    cpu_off = statistics.median(b.gateway_us for _, b in rounds)
    refused = sum(a.wrk.non_2xx + b.wrk.non_2xx for a, b in rounds)
    print(
        f"median cost ratio (off req/s ÷ on req/s) {ratio:.3f} (bar ≤ 1.10) "
        f"{'ok' if ratio <= 1.10 else 'ABOVE'}; CPU per request on {cpu_on:.0f} µs "
        f"(gateway + Redis) vs off {cpu_off:.0f} µs = {cpu_on / cpu_off:.3f}; "
        f"entries in the Redis windows at the end: {counted}"
        + (f"; non-2xx: {refused}" if refused else "")
    )


if __name__ == "__main__":
    main()
