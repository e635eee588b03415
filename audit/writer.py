"""Group commit: every event of a process goes through one writer thread.

`submit()` queues an event and returns a future; the thread takes everything queued,
links it to the chain under the head lock, stores it in one transaction and only then
resolves the futures — so a caller that waits for its future knows its event is durable.
While one batch commits the next one gathers, which is what makes a few thousand
concurrent requests cost a few transactions. A failed transaction fails that batch's
futures (the callers answer 503) and the next batch simply tries again.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import Future
from typing import Any

from sqlalchemy.engine import Engine

from audit.canonical import chain_hash, now_ts, plain
from audit.checkpoints import write_checkpoint
from audit.signing import Signer
from audit.store import Head, insert_events, lock_head, move_head

log = logging.getLogger("opengate.audit")

_STOP = object()


def append(engine: Engine, events: Sequence[Mapping[str, Any]]) -> list[int]:
    """Store `events` (without seq/ts/hashes) at the end of the chain; their seqs."""
    with engine.begin() as conn:
        head = lock_head(conn)
        ts = now_ts()
        if ts < head.ts:  # another host's clock runs ahead: keep ts in chain order
            ts = head.ts
        seq, prev = head.seq, head.hash
        complete = []
        for event in events:
            seq += 1
            full = {**event, "seq": seq, "ts": ts}
            for key in ("fields", "detail"):
                if full[key] is not None:
                    full[key] = plain(full[key])
            full["prev_hash"] = prev
            prev = full["hash"] = chain_hash(prev, full)
            complete.append(full)
        insert_events(conn, complete)
        move_head(conn, Head(seq, prev, ts))
    return [e["seq"] for e in complete]


class AuditWriter:
    def __init__(
        self,
        engine: Engine,
        signer: Signer | None,
        *,
        checkpoint_seconds: float = 60.0,
        max_batch: int = 5000,
    ) -> None:
        self.engine = engine
        self.signer = signer
        self.checkpoint_seconds = checkpoint_seconds
        self.max_batch = max_batch
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._unsigned = False  # events stored since this process last checked
        self._last_check = time.monotonic()

    def start(self) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="audit-writer", daemon=True)
                self._thread.start()

    def submit(self, event: Mapping[str, Any]) -> Future[int]:
        if self._thread is None:
            self.start()
        future: Future[int] = Future()
        self._queue.put((event, future))
        return future

    def record(self, event: Mapping[str, Any], timeout: float = 30.0) -> int:
        return self.submit(event).result(timeout)

    def close(self) -> None:
        """Flush what is queued, sign a shutdown checkpoint, stop the thread."""
        with self._lock:
            thread, self._thread = self._thread, None
        if thread is not None:
            self._queue.put(_STOP)
            thread.join(timeout=30)
        if self.signer is not None and self._unsigned:
            try:
                self._checkpoint("shutdown", min_age=0.0)
            except Exception:
                log.exception("audit: shutdown checkpoint failed")

    def _run(self) -> None:
        while True:
            timeout = max(0.05, self.checkpoint_seconds - (time.monotonic() - self._last_check))
            try:
                first = self._queue.get(timeout=timeout)
            except queue.Empty:
                self._maybe_checkpoint()
                continue
            if first is _STOP:
                return
            batch = [first]
            stop = False
            while len(batch) < self.max_batch:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is _STOP:
                    stop = True
                    break
                batch.append(item)
            self._commit(batch)
            if stop:
                return
            self._maybe_checkpoint()

    def _commit(self, batch: list[tuple[Mapping[str, Any], Future[int]]]) -> None:
        try:
            seqs = append(self.engine, [event for event, _ in batch])
        except Exception as exc:
            log.error("audit: could not store %d events: %s", len(batch), type(exc).__name__)
            for _, future in batch:
                future.set_exception(exc)
            return
        self._unsigned = True
        for (_, future), seq in zip(batch, seqs, strict=True):
            future.set_result(seq)

    def _maybe_checkpoint(self) -> None:
        if self.signer is None or not self._unsigned:
            return
        if time.monotonic() - self._last_check < self.checkpoint_seconds:
            return
        try:
            self._checkpoint("periodic", min_age=self.checkpoint_seconds * 0.9)
        except Exception:
            log.exception("audit: periodic checkpoint failed")

    def _checkpoint(self, kind: str, *, min_age: float) -> None:
        assert self.signer is not None
        self._last_check = time.monotonic()
        with self.engine.begin() as conn:
            signed = write_checkpoint(conn, self.signer, kind=kind, min_age=min_age)
        if signed is not None:
            self._unsigned = False
