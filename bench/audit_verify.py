"""Verification speed of the audit log on PostgreSQL.

    python -m bench.audit_verify [--events 1000000] [--runs 2]

A fresh database gets `--events` data-request events (bench.audit_append's mix: one in
ten a refusal with mostly nulls, one in a hundred with a purpose that needs escaping)
through `audit.writer.append`, with a signed checkpoint every 100,000 events and one at
the end. Each run is a fresh process calling `audit.verify.verify()` — the chain
re-computed, every checkpoint's signature, head and Merkle root checked — and reports
events/s (wall), its own CPU per event and its peak memory. Bar (issue 6):
≥ 200,000 events/s.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from audit.checkpoints import checkpoint_now
from audit.verify import verify
from audit.writer import append
from bench.audit_append import sample_event
from bench.common import PYTHON, postgres_database
from gateway.database import create_engine
from gateway.keys import installation_keys
from gateway.migrate import upgrade
from gateway.settings import Settings

BAR = 200_000
CHECKPOINT_EVERY = 100_000


def event(i: int) -> dict[str, Any]:
    made = sample_event(i)
    if i % 100 == 50:
        made["purpose"] = '用于"信用评估"\\第二项'
    return made


def fill(url: str, data_dir: Path, events: int) -> float:
    engine = create_engine(Settings(database_url=url).sqlalchemy_url)
    upgrade(engine)
    settings = Settings(database_url=url, data_dir=data_dir)
    signer = installation_keys(settings, engine, create=True).audit_signer
    started = time.perf_counter()
    for first in range(0, events, 10_000):
        append(engine, [event(i) for i in range(first, min(events, first + 10_000))])
        if (first + 10_000) % CHECKPOINT_EVERY == 0:
            checkpoint_now(engine, signer, kind="periodic")
    checkpoint_now(engine, signer, kind="manual")
    engine.dispose()
    return time.perf_counter() - started


def verify_once(url: str, data_dir: str) -> None:
    """One verification, in this (fresh) process; its figures as JSON on stdout."""
    engine = create_engine(Settings(database_url=url).sqlalchemy_url)
    settings = Settings(database_url=url, data_dir=Path(data_dir))
    public_key = installation_keys(settings, engine, create=False).audit_signer.public_key
    wall, cpu = time.perf_counter(), time.process_time()
    report = verify(engine, public_key)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"report": report.as_dict(), "wall": wall, "cpu": cpu, "peak_kib": peak_kib}))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument(
        "--verify-only", nargs=2, metavar=("URL", "DATA_DIR"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.verify_only:
        verify_once(*args.verify_only)
        return
    with tempfile.TemporaryDirectory() as data_dir, postgres_database() as url:
        seconds = fill(url, Path(data_dir), args.events)
        print(f"filled {args.events:,} events in {seconds:.0f} s ({args.events / seconds:,.0f}/s)")
        for run in range(1, args.runs + 1):
            out = subprocess.run(
                [PYTHON, "-m", "bench.audit_verify", "--verify-only", url, data_dir],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            result = json.loads(out)
            report = result["report"]
            assert report["ok"] and report["events"] == args.events, report
            rate = report["events"] / result["wall"]
            print(
                f"run {run}: {report['events']:,} events, {report['checkpoints']} checkpoints "
                f"verified in {result['wall']:.2f} s = {rate:,.0f} events/s; verifier CPU "
                f"{result['cpu'] / report['events'] * 1e6:.1f} us/event; peak memory "
                f"{result['peak_kib'] / 1024:.0f} MiB; bar >= {BAR:,}/s: "
                f"{'ok' if rate >= BAR else 'BELOW'}",
                flush=True,
            )


if __name__ == "__main__":
    sys.exit(main())
