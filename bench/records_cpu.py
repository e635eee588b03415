"""CPU time a records request costs the gateway against the bare endpoint, in process.

    python -m bench.records_cpu [--requests 3000] [--concurrency 32] [--rounds 3]
                                [--database sqlite|postgres] [--profile]

Each side runs in a fresh process of its own: the ASGI app (the gateway as `serve` builds
it — limits counted, the audit log on, an app's bearer token on every request — or
`bench/bare_app.py`) is called directly on uvloop by `--concurrency` tasks, one request
each at a time, for `/records?limit=100` (json, open dataset, 10,000 rows); after a
warm-up, the process's CPU time (all its threads) over `--requests` requests is divided
by their number. No HTTP parsing and no wrk: what is left is the app's own work, the same
for both sides, and other load on the machine moves it far less than req/s. Rounds
alternate which side goes first; medians. The req/s ratio wrk would see on an idle core is
bare CPU ÷ gateway CPU (plus uvicorn's per-request share, the same on both sides).

`--profile` runs each side once more under cProfile and prints the top functions (their
own and cumulative time; the profiler's overhead inflates small functions).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import io
import json
import os
import pstats
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from typing import Any

from bench.app_token import create_app_credentials
from bench.common import postgres_database
from bench.records_vs_bare import prepare

WARM = 300
BLOCK = 100  # requests per side in turn
PATH = "/api/v1/datasets/bench-records/records"


def scope_for(path: str, query: bytes, headers: list[tuple[bytes, bytes]]) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query,
        "root_path": "",
        "headers": [(b"host", b"127.0.0.1"), (b"accept", b"*/*"), *headers],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }


async def token_for(app: Any, credentials: dict[str, str]) -> str:
    import httpx

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
        answer = await client.post(
            "/oauth/token",
            auth=(credentials["client_id"], credentials["client_secret"]),
            data={"grant_type": "client_credentials"},
        )
        return answer.json()["access_token"]


def thread_cpu() -> dict[str, float]:
    """CPU seconds so far of each thread of this process, by Python thread name (threads
    of the same name summed; a thread Python does not know is `native`)."""
    import threading

    names = {t.native_id: t.name.split(" ")[0].split("(")[0] for t in threading.enumerate()}
    tick = os.sysconf("SC_CLK_TCK")
    out: dict[str, float] = {}
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/stat") as f:
                fields = f.read().rpartition(")")[2].split()
        except FileNotFoundError:
            continue
        name = names.get(int(tid), "native")
        out[name] = out.get(name, 0.0) + (int(fields[11]) + int(fields[12])) / tick
    return out


def child(sides: list[str], requests: int, concurrency: int, profile: bool) -> None:
    """Both apps in this one process, called in alternating blocks of BLOCK requests, so
    that drifting outside load falls on both alike; CPU time summed per side."""
    import uvloop

    apps: dict[str, Any] = {}
    lifespans: dict[str, Any] = {}
    if "gateway" in sides:
        from gateway.app import create_app

        apps["gateway"] = create_app()
        lifespans["gateway"] = apps["gateway"].router.lifespan_context
    if "bare" in sides:
        from bench import bare_app

        apps["bare"] = bare_app.app
        lifespans["bare"] = bare_app.lifespan
    out: dict[str, Any] = {}

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    statuses: list[int] = []

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    async def run() -> None:
        async with contextlib.AsyncExitStack() as stack:
            templates = {}
            for side in sides:
                await stack.enter_async_context(lifespans[side](apps[side]))
                headers: list[tuple[bytes, bytes]] = []
                path, query = "/bare", b""
                if side == "gateway":
                    path, query = PATH, b"limit=100"
                    if not os.environ.get("BENCH_ANONYMOUS"):
                        credentials = json.loads(os.environ["BENCH_CREDENTIALS"])
                        token = await token_for(apps[side], credentials)
                        headers = [(b"authorization", f"Bearer {token}".encode())]
                templates[side] = scope_for(path, query, headers)

            async def load(side: str, total: int) -> None:
                app, template = apps[side], templates[side]

                async def client(n: int) -> None:
                    for _ in range(n):
                        await app(dict(template, state={}), receive, send)

                share, extra = divmod(total, concurrency)
                await asyncio.gather(*(client(share + (i < extra)) for i in range(concurrency)))

            for side in sides:
                await load(side, WARM)
            statuses.clear()
            cpu = dict.fromkeys(sides, 0.0)
            threads: dict[str, dict[str, float]] = {side: {} for side in sides}
            profilers = {side: cProfile.Profile() for side in sides} if profile else {}
            for block in range(max(1, requests // BLOCK)):
                for side in sides if block % 2 == 0 else sides[::-1]:
                    before_threads = thread_cpu()
                    before = time.process_time()
                    if profilers:
                        profilers[side].enable()
                    await load(side, BLOCK)
                    if profilers:
                        profilers[side].disable()
                    cpu[side] += time.process_time() - before
                    for name, seconds in thread_cpu().items():
                        spent = seconds - before_threads.get(name, 0.0)
                        threads[side][name] = threads[side].get(name, 0.0) + spent
            done = max(1, requests // BLOCK) * BLOCK
            out["cpu_us"] = {side: 1e6 * cpu[side] / done for side in sides}
            out["threads_us"] = {
                side: {n: round(1e6 * t / done) for n, t in threads[side].items() if t > 0}
                for side in sides
            }
            out["non_200"] = sum(1 for s in statuses if s != 200)
            if profilers:
                out["profile"] = {}
                for side, profiler in profilers.items():
                    text = io.StringIO()
                    stats = pstats.Stats(profiler, stream=text)
                    stats.sort_stats("tottime").print_stats(40)
                    stats.sort_stats("cumulative").print_stats(50)
                    out["profile"][side] = text.getvalue()

    uvloop.run(run())
    print(json.dumps(out))


def measure(sides: str, env: dict[str, str], args: argparse.Namespace, profile: bool) -> dict:
    command = [sys.executable, "-m", "bench.records_cpu", "--child", sides]
    command += ["--requests", str(args.requests), "--concurrency", str(args.concurrency)]
    if profile:
        command.append("--profile")
    done = subprocess.run(
        command, env={**os.environ, **env}, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-3000:])
    return json.loads(done.stdout.strip().splitlines()[-1])


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--database", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--sides", default="gateway,bare", help="e.g. gateway (no bare runs)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child.split(","), args.requests, args.concurrency, args.profile)
        return
    print(uptime())
    with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
        if args.database == "sqlite":
            url = f"sqlite:///{tmp}/bench.db"
        else:
            url = stack.enter_context(postgres_database())
        table = prepare(url)
        unlimited = {
            f"OPENGATE_RATE_{k}": "100000000/minute"
            for k in ("ANON", "APP", "LOGIN", "TOKEN", "DATA", "AUTH", "ADMIN")
        }
        env = {
            "OPENGATE_DATABASE_URL": url,
            "OPENGATE_DATA_DIR": tmp,
            "OPENGATE_ISSUER": "http://127.0.0.1",
            "BENCH_DATABASE_URL": url,
            "BENCH_TABLE": table,
            **unlimited,
        }
        env["BENCH_CREDENTIALS"] = json.dumps(create_app_credentials(env))
        print(
            f"records (100 rows, json) in process, {args.database}, {args.concurrency} tasks, "
            f"{args.requests} requests a round after {WARM}, {args.rounds} alternating rounds"
        )
        results = []
        for i in range(args.rounds):
            sides = args.sides.split(",")
            result = measure(",".join(sides if i % 2 == 0 else sides[::-1]), env, args, False)
            if result["non_200"]:
                raise SystemExit(f"{result['non_200']} answers were not 200")
            results.append(result)
            for side, us in result["cpu_us"].items():
                print(f"  round {i + 1} {side:7}: {us:6.0f} µs CPU a request "
                      f"(by thread: {result['threads_us'][side]})")  # fmt: skip
        medians = {
            side: statistics.median(r["cpu_us"][side] for r in results)
            for side in args.sides.split(",")
        }
        if len(medians) == 2:
            gw, bare = medians["gateway"], medians["bare"]
            print(
                f"median CPU a request: gateway {gw:.0f} µs, bare {bare:.0f} µs; bare ÷ "
                f"gateway {bare / gw:.2f} (bar ≥ 0.80); the gateway's extra {gw - bare:.0f} µs"
            )
        else:
            print(f"median CPU a request: {medians}")
        print(uptime())
        if args.profile:
            for side, text in measure(args.sides, env, args, profile=True)["profile"].items():
                print(f"==== profile: {side} (main thread only)")
                print(text)


if __name__ == "__main__":
    main()
