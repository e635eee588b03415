"""Never-read exports on PostgreSQL (issue 12's bar): `--exports` clients each start a CSV
export of a 6 MB dataset on a real `opengate serve --workers 2` and never read a byte,
while one client keeps calling the catalog list and records.

The per-caller export limit is raised for the run (every export comes from 127.0.0.1 and
would otherwise be refused after the second): this is many callers at once, the case the
limit cannot help with. Printed: the other routes' statuses and latency (p50/p99) while
the exports are stalled and after they were dropped, the oldest `idle in transaction`
session seen in pg_stat_activity, and how many stalled connections the server closed.

    python -m bench.export_pinning [--exports 200] [--send-timeout 5]
"""

from __future__ import annotations

import argparse
import csv
import json
import socket
import statistics
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psycopg

from bench.common import postgres_database
from bench.gateway_process import Gateway

DATASET = "wide-export"
NOTE = "空气质量监测说明" * 125  # 3000 bytes a row: an export outgrows the socket buffers
ROWS = 2000


@dataclass
class PinningFigures:
    statuses: dict[str, Counter[int]] = field(default_factory=dict)
    latencies: dict[str, list[float]] = field(default_factory=dict)
    exports_started: int = 0  # answers that began with 200 (the rest: refusals)
    exports_closed: int = 0  # stalled connections the server ended
    oldest_idle_in_transaction: float = 0.0  # seconds, the worst seen
    idle_samples: int = 0

    def p(self, phase: str, q: float) -> float:
        values = sorted(self.latencies.get(phase, [])) or [0.0]
        return values[min(len(values) - 1, int(q * len(values)))]

    def summary(self) -> str:
        return json.dumps(
            {
                "statuses": {p: dict(sorted(c.items())) for p, c in self.statuses.items()},
                "latency_ms": {
                    phase: {
                        "p50": round(statistics.median(v) * 1000, 1),
                        "p99": round(self.p(phase, 0.99) * 1000, 1),
                        "max": round(max(v) * 1000, 1),
                        "n": len(v),
                    }
                    for phase, v in self.latencies.items()
                    if v
                },
                "exports_started": self.exports_started,
                "exports_closed_by_server": self.exports_closed,
                "oldest_idle_in_transaction_s": round(self.oldest_idle_in_transaction, 2),
                "pg_stat_activity_samples": self.idle_samples,
            },
            ensure_ascii=False,
        )


def wide_package(folder: Path) -> Path:
    package = folder / DATASET
    package.mkdir()
    with (package / "data.csv").open("w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(["row_id", "station", "note"])
        writer.writerows([i, f"站点{i % 7}", NOTE] for i in range(1, ROWS + 1))
    fields = [
        {"name": "row_id", "type": "integer", "title": "编号", "level": 1},
        {"name": "station", "type": "string", "title": "站点", "level": 1},
        {"name": "note", "type": "string", "title": "说明", "level": 1},
    ]
    descriptor = {
        "name": DATASET,
        "title": "宽行导出",
        "open_type": "unconditional",
        "resources": [
            {
                "name": "records",
                "path": "data.csv",
                "format": "csv",
                "schema": {"primaryKey": "row_id", "fields": fields},
            }
        ],
    }
    (package / "datapackage.json").write_text(json.dumps(descriptor, ensure_ascii=False))
    return package


def never_reading(port: int) -> socket.socket:
    """An export request whose answer is never read (a small receive window, nothing taken)."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    sock.sendall(
        f"GET /api/v1/datasets/{DATASET}/export?format=csv HTTP/1.1\r\n"
        "Host: 127.0.0.1\r\n\r\n".encode()
    )
    return sock


def oldest_idle_in_transaction(database_url: str) -> float:
    with psycopg.connect(database_url, autocommit=True) as conn:
        age = conn.execute(
            "SELECT coalesce(max(extract(epoch FROM now() - state_change)), 0) "
            "FROM pg_stat_activity WHERE datname = current_database() "
            "AND state LIKE 'idle in transaction%%'"
        ).fetchone()
    return float(age[0]) if age else 0.0


class Probe:
    """One client calling the other routes in turn; answers counted per phase."""

    ROUTES = ("/api/v1/datasets", f"/api/v1/datasets/{DATASET}/records?limit=5")

    def __init__(self, base: str, database_url: str, figures: PinningFigures) -> None:
        self.base = base
        self.database_url = database_url
        self.figures = figures
        self.phase = "during"
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._call, daemon=True),
            threading.Thread(target=self._watch, daemon=True),
        ]

    def _call(self) -> None:
        with httpx.Client(base_url=self.base, timeout=30) as client:
            turn = 0
            while not self._stop.is_set():
                phase = self.phase
                began = time.perf_counter()
                try:
                    status = client.get(self.ROUTES[turn % len(self.ROUTES)]).status_code
                except httpx.TransportError:
                    status = 0
                took = time.perf_counter() - began
                turn += 1
                self.figures.statuses.setdefault(phase, Counter())[status] += 1
                self.figures.latencies.setdefault(phase, []).append(took)
                time.sleep(0.02)

    def _watch(self) -> None:
        while not self._stop.is_set():
            age = oldest_idle_in_transaction(self.database_url)
            self.figures.idle_samples += 1
            self.figures.oldest_idle_in_transaction = max(
                self.figures.oldest_idle_in_transaction, age
            )
            time.sleep(0.25)

    def __enter__(self) -> Probe:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(30)


def _started(sock: socket.socket) -> bool:
    sock.settimeout(5)
    try:
        return sock.recv(64).startswith(b"HTTP/1.1 200")
    except OSError:
        return False


def _closed_by_server(sock: socket.socket, timeout: float) -> bool:
    sock.settimeout(timeout)
    try:
        while sock.recv(1 << 20):
            pass
    except OSError:
        return False
    finally:
        sock.close()
    return True


def run(
    database_url: str, *, exports: int = 200, send_timeout: float = 5.0, workers: int = 2
) -> PinningFigures:
    """`database_url`: an empty PostgreSQL database (postgresql://…)."""
    figures = PinningFigures()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        gateway = Gateway(
            folder,
            database_url,
            exports_per_caller=str(exports * 2),
            export_send_timeout=str(send_timeout),
            export_chunk_rows="100",
        )
        gateway.cli("migrate")
        gateway.cli("datasets", "import", str(wide_package(folder)))
        gateway.create_keys()
        with gateway.serving(workers), Probe(gateway.url, database_url, figures) as probe:
            time.sleep(1)
            stalled = [never_reading(gateway.port) for _ in range(exports)]
            time.sleep(send_timeout / 2)  # every export under way, waiting on its client
            figures.exports_started = sum(_started(s) for s in stalled)
            time.sleep(send_timeout / 2 + 2)  # past the send deadline
            probe.phase = "after"
            figures.exports_closed = sum(_closed_by_server(s, 10) for s in stalled)
            time.sleep(3)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--exports", type=int, default=200)
    parser.add_argument("--send-timeout", type=float, default=5.0)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    with postgres_database() as url:
        figures = run(
            url, exports=args.exports, send_timeout=args.send_timeout, workers=args.workers
        )
    print(figures.summary())


if __name__ == "__main__":
    main()
