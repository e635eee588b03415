"""One worker's own moving-window counters: the rate limiter's storage without Redis (and
its fallback when Redis is down).

Each key holds the times of the requests still in its window, oldest first, in a deque:
entries that have left the window are dropped from the front (each once), so the count is
the deque's length and the oldest entry its first — exact, like `limits`' MemoryStorage,
at a fraction of its cost (no lock, no coroutine per call, no expiry task: one event loop
owns the counters, and a check-and-count never awaits in between).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Sequence

# Keys are callers × windows; the table is swept of idle keys once it holds this many.
SWEEP_AT = 10_000


class MovingWindows:
    def __init__(self) -> None:
        self._entries: dict[str, deque[float]] = {}
        self._sweep_at = SWEEP_AT
        self._longest = 0  # the longest window any key counts in

    def hit(
        self, windows: Sequence[tuple[str, int, int]], now: float | None = None
    ) -> tuple[bool, list[tuple[int, float]]]:
        """`windows`: (key, amount, seconds) each. Admit if every window has room, and then
        count the request in all of them. Returns (admitted, [(entries, oldest entry)])
        after the request, as the Redis script does (oldest = now for an empty window)."""
        now = time.time() if now is None else now
        entries = self._entries
        found: list[deque[float]] = []
        admitted = True
        for key, amount, seconds in windows:
            times = entries.get(key)
            if times is None:
                times = entries[key] = deque()
                self._longest = max(self._longest, seconds)
            floor = now - seconds
            while times and times[0] < floor:
                times.popleft()
            if len(times) >= amount:
                admitted = False
            found.append(times)
        result = []
        for times in found:
            if admitted:
                times.append(now)
            result.append((len(times), times[0] if times else now))
        if len(entries) >= self._sweep_at:
            self._sweep(now)
        return admitted, result

    def _sweep(self, now: float) -> None:
        """Drop keys whose newest entry has left even the longest window (nothing they hold
        still counts); if that frees too little, sweep less often."""
        floor = now - self._longest
        for key in [k for k, times in self._entries.items() if not times or times[-1] < floor]:
            del self._entries[key]
        self._sweep_at = max(SWEEP_AT, 2 * len(self._entries))
