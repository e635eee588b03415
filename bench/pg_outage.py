"""PostgreSQL stopped under load (issue 12's bar): a real `opengate serve --workers 2` on a
private PostgreSQL cluster, a few clients calling the catalog list, records, and records
with an app token; the cluster is stopped for `--outage` seconds and started again.

Printed: statuses per phase (before, outage, after the restart), answers without
`Retry-After`, connection errors, how long after the restart every route answered 200
again, and the lines the server logged that are not access-log lines.

    python -m bench.pg_outage [--outage 10] [--clients 4] [--workers 2] [--redis URL]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from bench.common import synthetic_package
from bench.gateway_process import Gateway
from bench.private_postgres import PrivatePostgres

DATASET = "bench-records"
PACING = 0.02  # a client's pause between requests: bounded load, ~40 req/s per client


@dataclass
class OutageFigures:
    statuses: dict[str, Counter[int]] = field(default_factory=dict)
    without_retry_after: int = 0  # 503s without the header
    transport_errors: Counter[str] = field(default_factory=Counter)
    recovered_after: float | None = None  # seconds from the restart to all routes 200
    log_lines: list[str] = field(default_factory=list)

    def summary(self) -> str:
        phases = {p: dict(sorted(c.items())) for p, c in self.statuses.items()}
        return json.dumps(
            {
                "statuses": phases,
                "without_retry_after": self.without_retry_after,
                "transport_errors": dict(self.transport_errors),
                "recovered_after_s": self.recovered_after,
                "log_lines": len(self.log_lines),
            },
            ensure_ascii=False,
        )


def _app_token(gateway: Gateway) -> str:
    gateway.cli("users", "create", "outage-dev", "--role", "developer")
    app = json.loads(
        gateway.cli("apps", "create", "--owner", "outage-dev", "--name", "o", "--json")
    )
    answer = httpx.post(
        f"{gateway.url}/oauth/token",
        auth=(app["client_id"], app["client_secret"]),
        data={"grant_type": "client_credentials"},
        timeout=10,
    )
    answer.raise_for_status()
    return answer.json()["access_token"]


class Load:
    """`clients` threads calling the routes in turn until stopped; each answer is counted
    under the phase it was sent in."""

    def __init__(self, base: str, token: str, clients: int) -> None:
        auth = {"Authorization": f"Bearer {token}"}
        self.routes = [
            ("/api/v1/datasets", {}),
            (f"/api/v1/datasets/{DATASET}/records?limit=5", {}),
            (f"/api/v1/datasets/{DATASET}/records?limit=5&district=市南区", auth),
        ]
        self.base = base
        self.clients = clients
        self.phase = "before"
        self.figures = OutageFigures()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.last_ok: dict[str, float] = {}  # route → when it last answered 200

    def _client(self, offset: int) -> None:
        with httpx.Client(base_url=self.base, timeout=15) as client:
            turn = offset
            while not self._stop.is_set():
                path, headers = self.routes[turn % len(self.routes)]
                turn += 1
                phase = self.phase
                try:
                    answer = client.get(path, headers=headers)
                except httpx.TransportError as exc:
                    with self._lock:
                        self.figures.transport_errors[f"{phase}:{type(exc).__name__}"] += 1
                    continue
                with self._lock:
                    self.figures.statuses.setdefault(phase, Counter())[answer.status_code] += 1
                    if answer.status_code == 503 and "retry-after" not in answer.headers:
                        self.figures.without_retry_after += 1
                    if answer.status_code == 200:
                        self.last_ok[path] = time.monotonic()
                time.sleep(PACING)

    def start(self) -> None:
        self._threads = [
            threading.Thread(target=self._client, args=(i,), daemon=True)
            for i in range(self.clients)
        ]
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(30)

    def all_ok_since(self, moment: float) -> bool:
        with self._lock:
            return all(self.last_ok.get(path, 0) > moment for path, _ in self.routes)


def run(
    *, outage: float = 10.0, clients: int = 4, workers: int = 2, redis_url: str | None = None
) -> OutageFigures:
    package = synthetic_package(2000, DATASET)
    with tempfile.TemporaryDirectory() as tmp, PrivatePostgres() as pg:
        gateway = Gateway(Path(tmp), pg.url, redis_url)
        gateway.cli("migrate")
        gateway.cli("datasets", "import", str(package))
        gateway.create_keys()
        with gateway.serving(workers):
            load = Load(gateway.url, _app_token(gateway), clients)
            load.start()
            try:
                time.sleep(3)
                load.phase = "outage"
                pg.stop()
                time.sleep(outage)
                pg.start()
                load.phase = "after"
                restarted = time.monotonic()
                deadline = restarted + 60
                while not load.all_ok_since(restarted) and time.monotonic() < deadline:
                    time.sleep(0.1)
                if load.all_ok_since(restarted):
                    load.figures.recovered_after = round(max(load.last_ok.values()) - restarted, 2)
                time.sleep(3)  # and it stays up
            finally:
                load.stop()
        load.figures.log_lines = gateway.own_log_lines()
        return load.figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--outage", type=float, default=10.0)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--redis", default=None, help="Redis URL (default: none)")
    args = parser.parse_args()
    figures = run(
        outage=args.outage, clients=args.clients, workers=args.workers, redis_url=args.redis
    )
    print(figures.summary())
    for line in figures.log_lines:
        print("log:", line)


if __name__ == "__main__":
    main()
