"""`opengate` as an operator runs it, for the scenarios that need real server processes:
CLI commands and a `serve` with workers, its log in a file."""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from bench.common import free_port

# One line of the server's own log that is not an access-log line (INFO): a warning, an
# error, or the lines of a traceback.
ACCESS_OR_INFO = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ INFO ")


class Gateway:
    """`opengate` commands and a `serve` process against one database."""

    def __init__(
        self, folder: Path, database_url: str, redis_url: str | None = None, **env: str
    ) -> None:
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
        self.env.update({f"OPENGATE_{k.upper()}": v for k, v in env.items()})
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
