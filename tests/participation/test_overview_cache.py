"""The overview cache refreshes off the request path: a reader that finds the figures stale
gets them at once while one background refresh runs (at most one at a time); only the first
read ever computes in the reader's thread."""

from __future__ import annotations

import threading
from typing import Any

from participation.overview import OverviewCache

WAIT = 5.0  # seconds: generous, a loaded CI machine; never a timed assertion


class Gate:
    """A compute() that counts its calls and, once `hold` is set, blocks until released."""

    def __init__(self) -> None:
        self.calls = 0
        self.hold = False
        self.started = threading.Event()
        self.release = threading.Event()
        self.lock = threading.Lock()

    def __call__(self, _engine: Any) -> dict[str, Any]:
        with self.lock:
            self.calls += 1
            n = self.calls
        if self.hold:
            self.started.set()
            assert self.release.wait(WAIT)
        return {"generation": n}


def wait_until_idle(cache: OverviewCache) -> None:
    done = threading.Event()
    for _ in range(500):
        if not cache.refreshing:
            return
        done.wait(0.01)
    raise AssertionError("the refresh never finished")


def test_first_read_computes_then_stale_reads_do_not_wait():
    gate = Gate()
    cache = OverviewCache(None, ttl=3600, compute=gate)  # type: ignore[arg-type]
    assert cache.get() == {"generation": 1}  # nothing to serve yet: computed here
    assert cache.get() == {"generation": 1} and gate.calls == 1  # fresh: no refresh

    cache.ttl = 0  # every read now finds the figures stale
    gate.hold = True
    # Several readers at once, while the refresh is held: each is answered with the last
    # figures without waiting, and only one refresh was started.
    answers: list[dict[str, Any]] = []
    readers = [threading.Thread(target=lambda: answers.append(cache.get())) for _ in range(8)]
    for reader in readers:
        reader.start()
    for reader in readers:
        reader.join(WAIT)
        assert not reader.is_alive()  # it did not wait for the refresh
    assert answers == [{"generation": 1}] * 8
    assert gate.started.wait(WAIT)
    assert cache.refreshing and gate.calls == 2
    assert cache.get() == {"generation": 1}  # still the last figures, still one refresh
    assert gate.calls == 2

    gate.release.set()
    wait_until_idle(cache)
    cache.ttl = 3600
    assert cache.get() == {"generation": 2}  # the refresh's figures are served from now on


def test_a_failed_refresh_keeps_the_last_figures():
    calls = {"n": 0}

    def flaky(_engine: Any) -> dict[str, Any]:
        calls["n"] += 1
        if calls["n"] > 1:
            raise RuntimeError("database away")
        return {"generation": 1}

    cache = OverviewCache(None, ttl=3600, compute=flaky)  # type: ignore[arg-type]
    assert cache.get() == {"generation": 1}
    cache.ttl = 0
    assert cache.get() == {"generation": 1}  # starts the refresh, which fails
    wait_until_idle(cache)
    assert calls["n"] == 2
    assert cache.get() == {"generation": 1}  # served as it was; a retry started, not awaited


def test_clear_makes_the_next_read_compute():
    gate = Gate()
    cache = OverviewCache(None, ttl=3600, compute=gate)  # type: ignore[arg-type]
    assert cache.get() == {"generation": 1}
    cache.clear()
    assert cache.get() == {"generation": 2} and gate.calls == 2
