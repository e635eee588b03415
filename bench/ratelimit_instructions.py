"""The limiter's cost in CPU instructions per records request: a count other load on the
machine does not move (wrk's req/s on a shared machine does, a lot).

    python -m bench.ratelimit_instructions [--requests 100]     (needs valgrind; ~30 min)

The gateway app is called in-process, through its whole ASGI stack (middleware, route,
SQLite query, JSON), for the 100-row records request of `bench.ratelimit_overhead`, one
request at a time, under `valgrind --tool=callgrind`, in three settings: limits off
(`OPENGATE_RATE_LIMITS_ENABLED=false`), on with the in-process counters, and on with
Redis (a private redis-server). Each setting runs twice, with 20 and 20 + `--requests`
requests after start-up; the difference divided by `--requests` is the cost of one
request, start-up and warm-up cancelled out.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile

from bench.ratelimit_overhead import LIMITS_ON, PATH, prepare, private_redis

WARM = 20


def child(setting: str, requests: int) -> None:
    """Runs inside valgrind: the app, `WARM + requests` records requests."""
    import logging

    import uvloop

    from gateway import ratelimit
    from gateway.app import create_app

    # valgrind runs ~50 times slower: a pause that long must not count as Redis down
    ratelimit.REDIS_TIMEOUT = 60.0
    fallbacks: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = fallbacks.append  # type: ignore[method-assign]
    logging.getLogger("opengate.limits").addHandler(handler)
    app = create_app()
    path, _, query = PATH.partition("?")
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query.encode(),
        "root_path": "",
        "headers": [(b"host", b"bench")],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 80),
    }

    async def receive() -> dict:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def one() -> None:
        status = []

        async def send(message: dict) -> None:
            if message["type"] == "http.response.start":
                status.append(message["status"])

        await app(dict(scope, state={}), receive, send)
        assert status == [200], (setting, status)

    async def run() -> None:
        async with app.router.lifespan_context(app):
            for _ in range(WARM + requests):
                await one()

    uvloop.run(run())
    assert not fallbacks, [r.getMessage() for r in fallbacks]  # every request was counted


def instructions(setting: str, requests: int, env: dict[str, str]) -> int:
    command = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null"]
    command += [sys.executable, "-m", "bench.ratelimit_instructions"]
    command += ["--child", setting, "--requests", str(requests)]
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
    return int(re.search(r"refs:\s+([\d,]+)", done.stderr).group(1).replace(",", ""))  # type: ignore[union-attr]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=100)
    parser.add_argument("--child", choices=["off", "memory", "redis"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.requests)
        return
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is not installed: apt-get install valgrind")
    print(f"instructions per records request (100 rows, json), {args.requests} requests")
    with tempfile.TemporaryDirectory() as tmp, private_redis(tmp) as redis_url:
        database = f"sqlite:///{tmp}/bench.db"
        prepare(database)
        common = {
            **os.environ,
            "OPENGATE_DATABASE_URL": database,
            "OPENGATE_DATA_DIR": tmp,
            # a reload of the catalog every 2 s would be counted in a slowed-down process
            "OPENGATE_CATALOG_CACHE_SECONDS": "3600",
            **LIMITS_ON,
        }
        settings = {
            "off": {**common, "OPENGATE_RATE_LIMITS_ENABLED": "false"},
            "memory": {**common, "OPENGATE_REDIS_URL": ""},
            "redis": {**common, "OPENGATE_REDIS_URL": redis_url},
        }
        per_request = {}
        for setting, env in settings.items():
            low = instructions(setting, 0, env)
            high = instructions(setting, args.requests, env)
            per_request[setting] = (high - low) / args.requests
            extra = per_request[setting] / per_request["off"] - 1
            print(
                f"{setting:7} {per_request[setting] / 1e6:6.3f} M instructions a request"
                + (f"  (+{extra:.1%} over off)" if setting != "off" else "")
            )


if __name__ == "__main__":
    main()
