"""Sustained append into the PostgreSQL audit log through group commit.

    python -m bench.audit_append [--events 200000] [--processes 2] [--concurrency 512]

Each of `--processes` processes runs one `AuditWriter`, as each gateway worker does, and
an asyncio loop with `--concurrency` coroutines that each behave like a request: submit a
data-request event (`submit_async`, what the audit middleware calls), await its commit,
next. All processes append to one chain in a fresh database. The figure is the events
stored ÷ wall time from the first submit to the last commit; the CPU the appending
processes and their PostgreSQL backends spent is reported beside it (on a shared
machine the wall figure depends on what else runs; the CPU per event does not, much).
Then the chain is checked: seqs 1..N without gaps, a checkpoint, `verify()` ok.
Bar (issue 6): ≥ 20,000 events/s.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import psycopg

from audit.canonical import EVENT_KEYS
from audit.checkpoints import checkpoint_now
from audit.verify import verify
from audit.writer import AuditWriter
from bench.common import postgres_database
from gateway.database import create_engine
from gateway.keys import installation_keys
from gateway.migrate import upgrade
from gateway.settings import Settings

BAR = 20_000
FIELDS = [
    {"name": "record_id", "transform": "clear"},
    {"name": "person_name", "transform": "mask:name"},
    {"name": "id_number", "transform": "pseudonym"},
    {"name": "district", "transform": "clear"},
    {"name": "monthly_base", "transform": "range:1000"},
]
_TEMPLATE = dict.fromkeys(EVENT_KEYS) | {
    "actor": "client:app-bench",
    "client_id": "app-bench",
    "ip": "10.1.2.3",
    "action": "data.records",
    "resource": "datasets/social-insurance",
    "fields": FIELDS,
    "row_count": 100,
    "purpose": "个人贷款授信评估（基准测试）",
    "grant_id": 7,
    "grant_version": 2,
    "outcome": "allowed",
    "status": 200,
}


DENIED = dict.fromkeys(("fields", "row_count", "purpose", "grant_id", "grant_version")) | {
    "actor": "anonymous",
    "client_id": None,
    "action": "access.denied",
    "outcome": "denied",
    "status": 401,
    "detail": None,
}


def sample_event(i: int) -> dict[str, Any]:
    """A data-request event as the gateway writes one (without seq, ts and hashes)."""
    event = dict(_TEMPLATE)
    del event["seq"], event["ts"]
    event["request_id"] = f"bench-{i:012d}"
    if i % 10 == 9:  # a refusal: no plan behind it
        return event | DENIED
    event["client_id"] = f"app-bench-{i % 7}"
    event["detail"] = {
        "dataset_version": 1,
        "mode": "records",
        "format": "json",
        "filters": {"district__eq": "市南区", "id_number__eq": f"hmac:{i:032x}"},
    }
    return event


async def produce(writer: AuditWriter, events: list[dict[str, Any]], concurrency: int) -> None:
    """`concurrency` coroutines, each like a request under the audit middleware: counted in
    flight while it is handled (the writer may wait a moment for such events, as it does
    in the gateway), then submit its event, await its commit, next."""

    async def client(mine: list[dict[str, Any]]) -> None:
        for event in mine:
            writer.in_flight += 1
            await asyncio.sleep(0)  # the request's own work, reduced to one hand-over
            writer.in_flight -= 1
            await writer.submit_async(event)

    await asyncio.gather(*(client(events[i::concurrency]) for i in range(concurrency)))


def backend_cpu(url: str, application: str) -> float:
    """CPU seconds of this machine's PostgreSQL backends serving `application`."""
    with psycopg.connect(url) as conn:
        pids = [
            pid
            for (pid,) in conn.execute(
                "SELECT pid FROM pg_stat_activity WHERE application_name = %s", (application,)
            )
        ]
    return sum(process_cpu(pid) for pid in pids)


def process_cpu(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:  # PostgreSQL on another host: its CPU is not counted
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def worker(
    url: str, start: int, count: int, args: argparse.Namespace, sync: tuple[Any, Any, Any]
) -> None:
    ready, go, spent = sync
    application = f"bench-audit-append-{os.getpid()}"
    engine = create_engine(
        Settings(database_url=f"{url}?application_name={application}").sqlalchemy_url
    )
    writer = AuditWriter(engine, None)
    writer.start()
    # Made before the clock starts: the figure is the audit path's, not the generator's.
    events = [sample_event(i) for i in range(start, start + count)]
    ready.release()
    go.wait()
    cpu = time.process_time()
    asyncio.run(produce(writer, events, args.concurrency))
    cpu = time.process_time() - cpu
    # The writer's own connection lives until close(): all of its CPU is this run's.
    spent.put((cpu, backend_cpu(url, application)))
    writer.close()
    engine.dispose()


def run(url: str, args: argparse.Namespace) -> tuple[int, float, float, float]:
    """Events appended, wall seconds, CPU seconds of the appending processes and of
    their PostgreSQL backends, all processes together."""
    context = multiprocessing.get_context("spawn")
    per_process = args.events // args.processes
    sync = (context.Semaphore(0), context.Event(), context.Queue())
    processes = [
        context.Process(target=worker, args=(url, p * per_process, per_process, args, sync))
        for p in range(args.processes)
    ]
    for p in processes:
        p.start()
    for _ in processes:
        sync[0].acquire()
    started = time.perf_counter()
    sync[1].set()
    spent = [sync[2].get(timeout=600) for _ in processes]
    elapsed = time.perf_counter() - started
    for p in processes:
        p.join()
        assert p.exitcode == 0, p.exitcode
    client, server = (sum(s[i] for s in spent) for i in (0, 1))
    return per_process * args.processes, elapsed, client, server


def check(url: str, data_dir: str, expected: int) -> str:
    engine = create_engine(Settings(database_url=url).sqlalchemy_url)
    with engine.connect() as conn:
        count, low, high = conn.exec_driver_sql(
            "SELECT count(*), min(seq), max(seq) FROM audit_events"
        ).one()
    assert (count, low, high) == (expected, 1, expected), (count, low, high)
    settings = Settings(database_url=url, data_dir=Path(data_dir))
    signer = installation_keys(settings, engine, create=False).audit_signer
    checkpoint_now(engine, signer, kind="manual")
    report = verify(engine, signer.public_key)
    engine.dispose()
    assert report.ok and report.events == expected, report
    return f"seqs 1..{expected} without gaps, verify ok"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=512, help="requests per process")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as data_dir, postgres_database() as url:
        engine = create_engine(Settings(database_url=url).sqlalchemy_url)
        upgrade(engine)
        engine.dispose()
        events, seconds, client, server = run(url, args)
        rate = events / seconds
        cpu = (client + server) / events * 1e6
        print(
            f"append: {events:,} events in {seconds:.2f} s = {rate:,.0f} events/s "
            f"({args.processes} processes x {args.concurrency} concurrent submitters); "
            f"CPU {cpu:.0f} us/event (appending processes {client / events * 1e6:.0f}, "
            f"their PostgreSQL backends {server / events * 1e6:.0f}) = "
            f"{1e6 / cpu:,.0f} events per CPU-second; {check(url, data_dir, events)}"
        )
        print(f"bar >= {BAR:,}/s: {'ok' if rate >= BAR else 'BELOW'}")


if __name__ == "__main__":
    main()
