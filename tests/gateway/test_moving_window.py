"""The worker's own moving-window counters (gateway/moving_window.py), at set times."""

from __future__ import annotations

import pytest

from gateway import moving_window
from gateway.moving_window import MovingWindows


def test_a_window_admits_its_amount_and_frees_each_entry_as_it_leaves():
    windows = MovingWindows()
    answers = [windows.hit([("k", 3, 10)], now=t) for t in (0.0, 1.0, 2.0, 3.0)]
    assert answers == [
        (True, [(1, 0.0)]),
        (True, [(2, 0.0)]),
        (True, [(3, 0.0)]),
        (False, [(3, 0.0)]),  # full: refused and not counted
    ]
    # The entry of t=0 is still in the window at exactly t=10, gone just after.
    assert windows.hit([("k", 3, 10)], now=10.0) == (False, [(3, 0.0)])
    assert windows.hit([("k", 3, 10)], now=10.5) == (True, [(3, 1.0)])


def test_a_request_is_counted_in_every_window_or_in_none():
    windows = MovingWindows()
    both = [("caller", 5, 60), ("group", 1, 60)]
    assert windows.hit(both, now=0.0) == (True, [(1, 0.0), (1, 0.0)])
    # The group window is full: the caller's window does not count the refused request.
    assert windows.hit(both, now=1.0) == (False, [(1, 0.0), (1, 0.0)])
    assert windows.hit([("caller", 5, 60)], now=2.0) == (True, [(2, 0.0)])


def test_an_empty_window_reports_now_as_its_oldest_entry():
    assert MovingWindows().hit([("k", 0, 60)], now=7.0) == (False, [(0, 7.0)])


def test_idle_keys_are_swept_but_a_longer_window_keeps_its_entries(
    monkeypatch: pytest.MonkeyPatch,
):
    monkeypatch.setattr(moving_window, "SWEEP_AT", 4)
    windows = MovingWindows()
    windows.hit([("hour", 2, 3600)], now=0.0)
    for i in range(3):
        windows.hit([(f"minute-{i}", 10, 60)], now=100.0)  # the 4th key: a sweep
    assert len(windows._entries) == 4  # nothing has left the hour yet
    for i in range(3, 8):
        windows.hit([(f"minute-{i}", 10, 60)], now=4000.0)
    assert "hour" not in windows._entries and "minute-0" not in windows._entries
    # What was swept counted nothing any more: the hour window starts afresh.
    assert windows.hit([("hour", 2, 3600)], now=4001.0) == (True, [(1, 4001.0)])
