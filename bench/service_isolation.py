"""A hanging upstream must not take the gateway's other routes down (issue 18): the p99 of
another service's calls and of a dataset's records, with and without a bounded load on a
service whose upstream accepts connections and never answers.

    python -m bench.service_isolation [--seconds 8] [--rounds 3] [--hang-users 48]
                                      [--hang-pause 0.2] [--connections 4]

One gateway (`opengate serve --workers 1`, SQLite, limits counted, audit on, one app
granted mode `call` on both services) holds three things: `bench-credit`, proxying nginx
serving a ~2 kB JSON (bench/service_proxy.py's upstream); `bench-hanging`, whose upstream
is a socket of this process that accepts and never sends a byte (timeout_ms 3000); and the
open dataset `bench-records` (10,000 rows). Each round measures, with two wrk processes at
once (`-t1 -c4` each, POST call and `records?limit=100`), the p99 of both — once quiet, once
while `--hang-users` callers keep calling the hanging service (each waits `--hang-pause`
seconds between its calls: a bounded load). The gateway holds at most
OPENGATE_SERVICE_CONCURRENCY (default 32) calls per service and worker and answers 503 at
once past that, so the hanging one can hold 32 of the loop's tasks, never the loop itself.
Conditions alternate round by round; medians. Bar: p99 with the hang ≤ 1.2 × p99 without,
for both routes. The circuit breaker is kept shut (OPENGATE_SERVICE_BREAKER_FAILURES=1000)
unless `--breaker`: opened, it would answer every hanging call 503 at once after the first
five timeouts, an easier case than the bound alone.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import json
import re
import socket
import statistics
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from bench.common import synthetic_package
from bench.service_proxy import (
    CALL_BODY,
    UPSTREAM_PATH,
    Run,
    granted_caller,
    post_script,
    run_post,
    service_document,
    service_gateway,
    static_upstream,
    upstream_answer,
    uptime,
)
from bench.wrk import require_wrk

HANG_TIMEOUT_MS = 3000
BAR = 1.2


@contextlib.contextmanager
def hanging_upstream() -> Iterator[str]:
    """A loopback socket that accepts every connection and never answers; its URL."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1024)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            with contextlib.suppress(TimeoutError, OSError):
                held.append(listener.accept()[0])

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/hang"
    finally:
        stop.set()
        thread.join()
        for connection in held:
            connection.close()
        listener.close()


class HangLoad:
    """`users` callers of the hanging service in a thread of their own, each pausing
    `pause` seconds between its calls; the statuses they got. A few lines of raw HTTP/1.1
    on kept-alive sockets rather than an HTTP client library: the load's own CPU must not
    be what slows the gateway on a machine of two cores."""

    def __init__(self, url: str, headers: dict[str, str], users: int, pause: float) -> None:
        host_port, _, path = url.removeprefix("http://").partition("/")
        self.host, port = host_port.rsplit(":", 1)
        self.port = int(port)
        body = json.dumps(CALL_BODY).encode()
        lines = [f"POST /{path} HTTP/1.1", f"Host: {host_port}",
                 "Content-Type: application/json", f"Content-Length: {len(body)}"]  # fmt: skip
        lines += [f"{name}: {value}" for name, value in headers.items()]
        self.request = ("\r\n".join(lines) + "\r\n\r\n").encode() + body
        self.users, self.pause = users, pause
        self.statuses: collections.Counter[int | str] = collections.Counter()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    async def _user(self) -> None:
        reader = writer = None
        while not self._stop.is_set():
            try:
                if writer is None:
                    reader, writer = await asyncio.open_connection(self.host, self.port)
                assert reader is not None
                writer.write(self.request)
                head = await reader.readuntil(b"\r\n\r\n")
                status = int(head.split(b" ", 2)[1])
                length = re.search(rb"(?i)content-length:\s*(\d+)", head)
                await reader.readexactly(int(length.group(1)) if length else 0)
                self.statuses[status] += 1
            except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
                self.statuses[type(exc).__name__] += 1
                writer = None
            await asyncio.sleep(self.pause)
        if writer is not None:
            writer.close()

    async def _run(self) -> None:
        await asyncio.gather(*(self._user() for _ in range(self.users)))

    def __enter__(self) -> HangLoad:
        self._stop.clear()
        self._thread = threading.Thread(target=asyncio.run, args=(self._run(),), daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        assert self._thread is not None
        self._thread.join(timeout=HANG_TIMEOUT_MS / 1000 + 30)


def measure(
    call_url: str, records_url: str, script: Path, auth: dict[str, str], args: argparse.Namespace
) -> tuple[Run, Run]:
    """Both routes loaded at once for `args.seconds`; their wrk figures."""
    found: dict[str, Run] = {}

    def calls() -> None:
        found["call"] = run_post(
            call_url, script, seconds=args.seconds, connections=args.connections, headers=auth
        )

    thread = threading.Thread(target=calls)
    thread.start()
    records = run_post(
        records_url, None, seconds=args.seconds, connections=args.connections, headers=auth
    )
    thread.join()
    return found["call"], records


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--hang-users", type=int, default=48)
    parser.add_argument("--hang-pause", type=float, default=0.2)
    parser.add_argument(
        "--breaker", action="store_true", help="keep the circuit breaker's default (5 failures)"
    )
    parser.add_argument("--no-audit", action="store_true", help="OPENGATE_AUDIT_SINK=null")
    args = parser.parse_args()
    require_wrk()
    print(uptime())
    with (
        tempfile.TemporaryDirectory() as name,
        static_upstream(Path(name), upstream_answer()) as upstream,
        hanging_upstream() as hang_url,
    ):
        tmp = Path(name)
        services = {
            "bench-credit": service_document("bench-credit", upstream + UPSTREAM_PATH),
            "bench-hanging": service_document(
                "bench-hanging", hang_url, HANG_TIMEOUT_MS, title="挂起的上游（基准）"
            ),
        }
        datasets = (synthetic_package(10_000),)
        database = f"sqlite:///{tmp}/bench.db"
        # Without --breaker the circuit never opens: the hang keeps holding its 32 slots
        # and the concurrency bound alone must keep the other routes answering.
        env = {} if args.breaker else {"OPENGATE_SERVICE_BREAKER_FAILURES": "1000"}
        if args.no_audit:  # a diagnosis only: what the audit writer's gathering costs
            env["OPENGATE_AUDIT_SINK"] = "null"
        with service_gateway(database, tmp / "gw", services, datasets=datasets, env=env) as gateway:
            auth = granted_caller(gateway, "bench-credit", "bench-hanging")
            script = post_script(tmp, CALL_BODY)
            call_url = f"{gateway.base}/api/v1/services/bench-credit/call"
            records_url = f"{gateway.base}/api/v1/datasets/bench-records/records?limit=100"
            hang = HangLoad(
                f"{gateway.base}/api/v1/services/bench-hanging/call",
                auth,
                args.hang_users,
                args.hang_pause,
            )
            measure(call_url, records_url, script, auth, argparse.Namespace(**{
                **vars(args), "seconds": 2}))  # fmt: skip
            runs: dict[str, list[tuple[Run, Run]]] = {"quiet": [], "hanging": []}
            for i in range(args.rounds):
                for condition in ("quiet", "hanging") if i % 2 == 0 else ("hanging", "quiet"):
                    if condition == "quiet":
                        runs[condition].append(measure(call_url, records_url, script, auth, args))
                    else:
                        with hang:
                            time.sleep(1.0)  # let the held calls fill the service's slots
                            runs[condition].append(
                                measure(call_url, records_url, script, auth, args)
                            )
                        # The held calls end at the service's timeout: none may linger
                        # into a quiet measurement.
                        time.sleep(HANG_TIMEOUT_MS / 1000 + 0.5)
                    call, records = runs[condition][-1]
                    print(
                        f"  round {i + 1} {condition:<7}: call {call.requests_per_second:.0f}"
                        f" req/s p50 {call.p50_ms:.1f} p99 {call.p99_ms:.1f} ms, records "
                        f"{records.requests_per_second:.0f} req/s p50 {records.p50_ms:.1f} "
                        f"p99 {records.p99_ms:.1f} ms | {uptime()}"
                    )
    print(
        f"SQLite, 1 worker; wrk -t1 -c{args.connections} on each route at once, "
        f"{args.rounds} rounds of {args.seconds}s, medians; hanging load: {args.hang_users} "
        f"callers pausing {args.hang_pause}s, circuit breaker "
        f"{'on (5 failures)' if args.breaker else 'off'}; what they got: {dict(hang.statuses)}"
    )
    for index, route in enumerate(("another service", "dataset records")):
        quiet = statistics.median(r[index].p99_ms for r in runs["quiet"])
        hanging = statistics.median(r[index].p99_ms for r in runs["hanging"])
        rate = {c: statistics.median(r[index].requests_per_second for r in runs[c]) for c in runs}
        p50 = {c: statistics.median(r[index].p50_ms for r in runs[c]) for c in runs}
        bad = sum(r[index].bad for c in runs for r in runs[c])
        ratio = hanging / quiet
        print(
            f"  {route:<16} quiet: p99 {quiet:6.1f} ms, p50 {p50['quiet']:5.1f} ms, "
            f"{rate['quiet']:4.0f} req/s | with the hang: p99 {hanging:6.1f} ms, p50 "
            f"{p50['hanging']:5.1f} ms, {rate['hanging']:4.0f} req/s | p99 ratio {ratio:.2f} "
            f"(bar ≤ {BAR}) {'met' if ratio <= BAR else 'NOT met'}"
            + (f"  INVALID: {bad} bad answers" if bad else "")
        )
    print(uptime())


if __name__ == "__main__":
    main()
