"""Several processes append at once — each with its own group-commit writer, as each
gateway worker has — and the log is still one chain: seqs 1..N without gaps, every
prev_hash the hash of the row before (no forks), every caller told the seq its event
got, and `verify()` ok. PostgreSQL with 4 processes, SQLite with 2."""

from __future__ import annotations

import itertools
import multiprocessing
import threading
import time
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from audit.canonical import GENESIS
from audit.checkpoints import checkpoint_now
from audit.signing import Signer
from audit.verify import verify
from audit.writer import AuditWriter
from gateway.database import create_engine
from tests.audit.helpers import event

THREADS, PER_THREAD = 4, 60


def append_from_process(url: str, name: str, start: Any, results: Any) -> None:
    """One process: a writer and THREADS threads submitting at once; its seqs reported."""
    engine = create_engine(url)
    writer = AuditWriter(engine, None)
    writer.start()
    got: dict[str, int] = {}
    lock = threading.Lock()

    def submit(thread: int) -> None:
        futures = {
            f"{name}-{thread}-{i}": writer.submit(
                event(request_id=f"{name}-{thread}-{i}", client_id=name, detail={"i": i})
            )
            for i in range(PER_THREAD)
        }
        seqs = {rid: future.result(60) for rid, future in futures.items()}
        with lock:
            got.update(seqs)

    threads = [threading.Thread(target=submit, args=(t,)) for t in range(THREADS)]
    start.wait(60)  # every process ready: go at once
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    writer.close()
    engine.dispose()
    results.put(got)


def test_processes_appending_at_once_make_one_chain(engine: Engine, tmp_path: Any) -> None:
    processes = 4 if engine.dialect.name == "postgresql" else 2
    url = engine.url.render_as_string(hide_password=False)
    context = multiprocessing.get_context("spawn")
    start, results = context.Barrier(processes), context.Queue()
    workers = [
        context.Process(target=append_from_process, args=(url, f"p{p}", start, results))
        for p in range(processes)
    ]
    for w in workers:
        w.start()
    told: dict[str, int] = {}
    for _ in workers:
        told.update(results.get(timeout=120))
    for w in workers:
        w.join(60)
        assert w.exitcode == 0

    total = processes * THREADS * PER_THREAD
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text("SELECT seq, request_id, prev_hash, hash FROM audit_events ORDER BY seq")
        ).all()
    assert [r.seq for r in rows] == list(range(1, total + 1))  # no gaps, no duplicates
    previous = GENESIS
    for r in rows:  # no forks: each row links to the one before
        assert r.prev_hash == previous, r.seq
        previous = r.hash
    # every caller was told the seq its own event got
    assert told == {r.request_id: r.seq for r in rows}
    # events of one process interleave with the others': they really ran at once
    owners = [r.request_id.split("-")[0] for r in rows]
    assert sum(a != b for a, b in itertools.pairwise(owners)) >= processes - 1

    signer = Signer.generate()
    checkpoint_now(engine, signer, kind="manual")
    report = verify(engine, signer.public_key)
    assert report.ok and report.events == total and report.signed_through == total, report


@pytest.mark.postgres
def test_a_batch_waiting_for_the_head_lock_takes_what_arrives_meanwhile(
    pg_engine: Engine,
) -> None:
    """While another transaction holds the head lock, the writer's batch waits in
    PostgreSQL; events submitted meanwhile go into that batch once it is granted (one
    transaction: one ts), not into a turn of their own. Told to stop while it waits, the
    writer still stores all of them."""
    writer = AuditWriter(pg_engine, None)
    writer.start()
    url = pg_engine.url.render_as_string(hide_password=False).replace("+psycopg", "")
    with psycopg.connect(url) as holder:
        holder.execute("SELECT seq FROM audit_head WHERE id = 1 FOR UPDATE")
        first = writer.submit(event(request_id="first"))
        _until_a_backend_waits_for_a_lock(url)
        later = [writer.submit(event(request_id=f"later-{i}")) for i in range(5)]
        closing = threading.Thread(target=writer.close)
        closing.start()  # STOP queued behind them, while the batch still waits
        time.sleep(0.2)
        assert not first.done() and not any(f.done() for f in later)
        holder.rollback()  # the lock is free: the writer's batch goes on
    closing.join(30)
    assert [f.result(5) for f in (first, *later)] == [1, 2, 3, 4, 5, 6]
    with pg_engine.connect() as conn:
        stamps = conn.execute(sa.text("SELECT DISTINCT ts FROM audit_events")).all()
    assert len(stamps) == 1  # one batch


def _until_a_backend_waits_for_a_lock(url: str) -> None:
    # its own connection, outside any transaction: pg_stat_activity is a snapshot per one
    with psycopg.connect(url, autocommit=True) as conn:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            waiting = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                "AND query LIKE '%audit_lock_head%'"
            ).fetchone()
            if waiting and waiting[0]:
                return
            time.sleep(0.01)
    raise AssertionError("the writer's batch never waited for the head lock")
