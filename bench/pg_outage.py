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
import contextlib
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from bench.common import free_port, synthetic_package
from bench.private_postgres import PrivatePostgres

DATASET = "bench-records"
# One line of the server's own log that is not an access-log line (INFO): a warning, an
# error, or the lines of a traceback.
ACCESS_OR_INFO = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ INFO ")
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


class Gateway:
    """`opengate` commands and a `serve` process against one database."""

    def __init__(self, folder: Path, database_url: str, redis_url: str | None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = folder / "serve.log"
        self.env = {
            **os.environ,
            "OPENGATE_DATABASE_URL": database_url,
            "OPENGATE_DATA_DIR": str(folder / "var"),
            "OPENGATE_ISSUER": self.url,
            **{
                f"OPENGATE_RATE_{k}": "100000000/minute"
                for k in ("ANON", "APP", "LOGIN", "TOKEN", "DATA", "AUTH", "ADMIN")
            },
        }
        if redis_url:
            self.env["OPENGATE_REDIS_URL"] = redis_url
        self.process: subprocess.Popen[bytes] | None = None

    def cli(self, *args: str) -> str:
        return subprocess.run(
            [sys.executable, "-m", "gateway.cli", *args],
            env=self.env,
            check=True,
            capture_output=True,
            text=True,
            timeout=180,
        ).stdout

    def create_keys(self) -> None:
        """The data directory's keys, made once before the workers start: two workers
        creating one at the same instant can read it half written."""
        subprocess.run(
            [sys.executable, "-c", "from gateway.app import create_app; create_app()"],
            env=self.env,
            check=True,
            capture_output=True,
            timeout=120,
        )

    @contextlib.contextmanager
    def serving(self, workers: int) -> Iterator[None]:
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "gateway.cli", "serve", "--port", str(self.port),
                 "--workers", str(workers)],
                env=self.env, stdout=subprocess.DEVNULL, stderr=log,
            )  # fmt: skip
        try:
            deadline = time.monotonic() + 90
            while True:
                with contextlib.suppress(httpx.TransportError):
                    if httpx.get(f"{self.url}/readyz", timeout=1).status_code == 200:
                        break
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(self.log_path.read_text()[-3000:])
                time.sleep(0.2)
            yield
        finally:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()

    def own_log_lines(self) -> list[str]:
        return [
            line
            for line in self.log_path.read_text(errors="replace").splitlines()
            if line.strip() and not ACCESS_OR_INFO.match(line)
        ]


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
