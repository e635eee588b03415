"""Where a gateway worker spends its time on the records hot path: py-spy samples one
`opengate serve` worker (limits, audit and a bearer token on) while wrk loads
`/records?limit=100`, and the busiest functions are listed (own time and with callees).

    python -m bench.profile_records [--database sqlite|postgres] [--seconds 15] [--top 40]

Needs py-spy in the environment (`pip install py-spy`; a development tool, not a runtime
dependency). The collapsed stacks are kept in bench/out/profile-<database>.txt for a flame
graph (`py-spy` can also write one itself with `--format flamegraph`).
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import os
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Iterator

from bench.app_token import bearer_header, create_app_credentials
from bench.common import OUT, PYTHON, free_port, postgres_database, server
from bench.proc import listening_pid
from bench.records_vs_bare import prepare
from bench.wrk import run_wrk


@contextlib.contextmanager
def database(kind: str, tmp: str) -> Iterator[str]:
    if kind == "sqlite":
        yield f"sqlite:///{tmp}/bench.db"
    else:
        with postgres_database() as url:
            yield url


def summarise(collapsed: str, top: int) -> None:
    own: collections.Counter[str] = collections.Counter()
    total: collections.Counter[str] = collections.Counter()
    samples = 0
    for line in collapsed.splitlines():
        stack, _, count = line.rpartition(" ")
        n = int(count)
        frames = stack.split(";")
        samples += n
        own[frames[-1]] += n
        for frame in set(frames):
            total[frame] += n
    print(f"{samples} samples (thread holding the GIL only: where the one core a worker has goes)")
    for title, counter in (("own time", own), ("with callees", total)):
        print(f"-- {title}")
        for frame, n in counter.most_common(top):
            print(f"{100 * n / samples:5.1f}%  {frame}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--database", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--seconds", type=int, default=15)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--top", type=int, default=40)
    args = parser.parse_args()
    spy = shutil.which("py-spy") or os.path.join(os.path.dirname(PYTHON), "py-spy")
    with tempfile.TemporaryDirectory() as tmp, database(args.database, tmp) as url:
        prepare(url)
        port = free_port()
        env = {
            "OPENGATE_DATABASE_URL": url,
            "OPENGATE_DATA_DIR": tmp,
            "OPENGATE_ISSUER": f"http://127.0.0.1:{port}",
        }
        credentials = create_app_credentials(env)
        command = [PYTHON, "-m", "gateway.cli", "serve", "--port", str(port), "--workers", "1"]
        with server(command, port, env, "/readyz") as base:
            auth = bearer_header(base, credentials)
            target = f"{base}/api/v1/datasets/bench-records/records?limit=100"
            run_wrk(target, seconds=2, connections=args.connections, headers=auth)
            load = threading.Thread(
                target=run_wrk,
                args=(target,),
                kwargs={
                    "seconds": args.seconds + 2,
                    "connections": args.connections,
                    "headers": auth,
                },
            )
            load.start()
            OUT.mkdir(exist_ok=True)
            raw = OUT / f"profile-{args.database}.txt"
            subprocess.run(
                [spy, "record", "--pid", str(listening_pid(port)), "--duration", str(args.seconds),
                 "--rate", "250", "--format", "raw", "--output", str(raw), "--gil", "--function"],
                check=True, capture_output=True,
            )  # fmt: skip
            load.join()
    summarise(raw.read_text(), args.top)


if __name__ == "__main__":
    main()
