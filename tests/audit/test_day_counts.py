"""The console timeline's per-day aggregate (audit.day_counts) gives the live count's
answer whatever the period, filters and state of the log: partial days at either end,
the head's still-open day, events added later, an archive cutting into a counted day."""

from __future__ import annotations

import random
from dataclasses import replace
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from audit.archive import archive
from audit.day_counts import count_all
from audit.search import EventQuery, live_timeline, parse_moment, timeline
from gateway.settings import Settings
from tests.audit.helpers import opengate, seed
from tests.keys import keys_of

APPS = ["app-a", "app-b", None]
DATASETS = ["datasets/air", "datasets/bus", "users/7", None]
OUTCOMES = ["allowed", "denied"]


def _fill(engine: Engine) -> None:
    """Events on 2025-03-01 … 2025-03-10, several times a day, a random mix."""
    rng = random.Random(16)
    for day in range(1, 11):
        for hour in (0, 9, 23):
            for _ in range(rng.randrange(1, 4)):
                seed(
                    engine,
                    f"2025-03-{day:02d}T{hour:02d}:30:00.000000Z",
                    rng.randrange(1, 5),
                    client_id=rng.choice(APPS),
                    resource=rng.choice(DATASETS),
                    outcome=rng.choice(OUTCOMES),
                )


def _rows(engine: Engine, table: str) -> int:
    with engine.connect() as conn:
        return conn.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one()


PERIODS = [
    (None, None),
    ("2025-03-02", "2025-03-05"),
    ("2025-03-02T09:00:00Z", "2025-03-05T09:00:00Z"),
    ("2025-03-01T00:00:00Z", None),
    (None, "2025-03-04T23:00:00Z"),
    ("2025-03-09", "2025-03-30"),
    ("2025-03-04T10:00:00Z", "2025-03-04T12:00:00Z"),
    ("2025-02-01", "2025-02-28"),
]
FILTERS = [
    {},
    {"dataset": "air"},
    {"dataset": "air", "client_id": "app-a"},
    {"client_id": "app-b", "outcome": "denied"},
    {"outcome": "allowed"},
    {"dataset": "nothing"},
    {"action": "data", "client_id": "app-a"},  # not kept by the table: counted live
]


def _query(since: str | None, until: str | None, **filters: str) -> EventQuery:
    return EventQuery(
        since=parse_moment(since) if since else None,
        until=parse_moment(until, end=True) if until else None,
        before_seq=10**9,  # a page's cursor: the timeline ignores it
        **filters,
    )


def test_the_counted_timeline_equals_the_live_count(engine: Engine):
    _fill(engine)
    for since, until in PERIODS:
        for filters in FILTERS:
            query = _query(since, until, **filters)
            expected = live_timeline(engine, replace(query, before_seq=None))
            assert timeline(engine, query) == expected, (since, until, filters)
    # Closed days only (the head's day, 2025-03-10, stays live), each once.
    with engine.connect() as conn:
        days = conn.execute(sa.text("SELECT day FROM audit_days_counted ORDER BY day")).scalars()
        march = [f"2025-03-{d:02d}" for d in range(1, 10)]
        assert [d for d in days if d >= "2025-03"] == march
        counted = conn.execute(sa.text("SELECT DISTINCT day FROM audit_day_counts")).scalars()
        assert sorted(counted) == march
        kept = conn.execute(sa.text("SELECT DISTINCT resource FROM audit_day_counts")).scalars()
        assert set(kept) <= {"datasets/air", "datasets/bus", None}  # not one row per user
    # Later events close the head's day; the counts follow.
    seed(engine, "2025-03-10T23:59:00.000000Z", 3, client_id="app-a", resource="datasets/air")
    seed(engine, "2025-03-11T01:00:00.000000Z", 2, client_id="app-a", resource="datasets/air")
    query = _query(None, None, dataset="air", client_id="app-a")
    assert timeline(engine, query) == live_timeline(engine, replace(query, before_seq=None))
    with engine.connect() as conn:
        marked = conn.execute(sa.text("SELECT day FROM audit_days_counted")).scalars()
        assert max(marked) == "2025-03-10"  # closed now, counted once


def test_an_archive_forgets_the_days_it_cuts_into(
    engine: Engine, settings: Settings, tmp_path: Path
):
    seed(engine, "2025-01-10T09:00:00.000000Z", 4, client_id="app-a", resource="datasets/air")
    seed(engine, "2025-01-11T09:00:00.000000Z", 3, client_id="app-a", resource="datasets/air")
    seed(engine, "2025-01-11T15:00:00.000000Z", 2, client_id="app-a", resource="datasets/air")
    seed(engine, "2025-01-12T09:00:00.000000Z", 1, client_id="app-a", resource="datasets/air")
    query = _query("2025-01-01", "2025-01-31", dataset="air")
    assert timeline(engine, query) == [
        ("2025-01-10", "allowed", 4),
        ("2025-01-11", "allowed", 5),
        ("2025-01-12", "allowed", 1),
    ]
    signer = keys_of(settings, engine).audit_signer
    # Cut inside 2025-01-11: its first three events go, the afternoon's two stay.
    cut = "2025-01-11T12:00:00.000000Z"
    archived = archive(engine, signer, before=cut, out=tmp_path / "a", retention_days=184)
    assert archived is not None and archived.count == 7
    assert timeline(engine, query) == [("2025-01-11", "allowed", 2), ("2025-01-12", "allowed", 1)]
    assert timeline(engine, query) == live_timeline(engine, replace(query, before_seq=None))


@pytest.mark.parametrize("filters", [{"ip": "10.0.0.1"}, {"actor": "user:x"}])
def test_filters_the_table_does_not_keep_count_live(engine: Engine, filters: dict[str, str]):
    seed(engine, "2025-03-05T10:00:00.000000Z", 2, ip="10.0.0.1", actor="user:x")
    seed(engine, "2025-03-06T10:00:00.000000Z", 3, ip="10.0.0.2", actor="user:y")
    seed(engine, "2025-03-11T10:00:00.000000Z", 1)
    query = _query("2025-03-01", "2025-03-09", **filters)
    assert timeline(engine, query) == [("2025-03-05", "allowed", 2)]
    assert _rows(engine, "audit_days_counted") == 0


def test_a_request_counts_only_its_budget_and_the_rest_live(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
):
    _fill(engine)
    monkeypatch.setattr("audit.search.COUNT_BUDGET", 40)  # a day holds at most 36
    query = _query("2025-03-01", "2025-03-09", client_id="app-a")
    expected = live_timeline(engine, replace(query, before_seq=None))
    marked: list[int] = []
    for _ in range(12):
        assert timeline(engine, query) == expected
        marked.append(_rows(engine, "audit_days_counted"))
    assert 0 < marked[0] < 9  # the first request counted some days, newest first
    assert marked == sorted(marked) and marked[-1] == 9  # later ones the rest
    with engine.connect() as conn:
        oldest = conn.execute(sa.text("SELECT min(day) FROM audit_days_counted")).scalar()
    assert oldest == "2025-03-01"


def test_count_all_counts_every_closed_day_once(engine: Engine, settings: Settings, tmp_path: Path):
    _fill(engine)
    counted = opengate("audit", "count-days", settings=settings, cwd=tmp_path)
    assert counted.returncode == 0, counted.stderr
    assert counted.stdout.strip() == "counted 9 days"  # 2025-03-10 is the head's day
    assert count_all(engine) == 0
    query = _query(None, None)
    assert timeline(engine, query) == live_timeline(engine, replace(query, before_seq=None))
