"""A batch waits for the events of requests in flight — until none is left in flight, or
`gather_seconds` have passed — and commits them together (audit/writer.py `_gather`)."""

from __future__ import annotations

import threading
import time

from sqlalchemy.engine import Engine

from audit.signing import Signer
from audit.writer import AuditWriter
from tests.audit.helpers import event


def test_a_gathering_batch_commits_once_nothing_is_in_flight(engine: Engine) -> None:
    writer = AuditWriter(engine, Signer.generate(), gather_seconds=30.0)
    writer.start()
    try:
        writer.in_flight = 2  # two requests under way
        first = writer.submit(event(request_id="g-1"))
        time.sleep(0.3)
        assert not first.done()  # waiting for the other one, not committed alone
        writer.in_flight = 1
        second = writer.submit(event(request_id="g-2"))
        began = time.monotonic()
        threading.Timer(0.2, setattr, (writer, "in_flight", 0)).start()
        seqs = [first.result(10), second.result(10)]
        assert time.monotonic() - began < 10  # woken by the last one, not the 30 s window
        assert seqs[1] == seqs[0] + 1  # one batch, in order
    finally:
        writer.close()


def test_a_batch_goes_after_gather_seconds_while_requests_stay_in_flight(
    engine: Engine,
) -> None:
    writer = AuditWriter(engine, Signer.generate(), gather_seconds=0.2)
    writer.start()
    try:
        writer.in_flight = 5  # never submit: the window ends the wait
        began = time.monotonic()
        assert writer.submit(event(request_id="g-3")).result(10) > 0
        assert time.monotonic() - began >= 0.2
    finally:
        writer.in_flight = 0
        writer.close()
