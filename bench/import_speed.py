"""Import throughput for a 1M-row CSV into SQLite and PostgreSQL.

    python -m bench.import_speed [--rows 1000000]

Bars (issue 2): ≥ 100,000 rows/s into PostgreSQL, ≥ 30,000 rows/s into SQLite.
"""

from __future__ import annotations

import argparse
import tempfile
import time

from bench.common import postgres_database, synthetic_package
from catalog.importer import import_package
from gateway.database import create_engine
from gateway.migrate import upgrade
from gateway.settings import Settings


def measure(url: str, rows: int) -> float:
    engine = create_engine(Settings(database_url=url).sqlalchemy_url)
    upgrade(engine)
    package = synthetic_package(rows)
    started = time.perf_counter()
    result = import_package(engine, package)
    seconds = time.perf_counter() - started
    assert result.row_count == rows
    engine.dispose()
    return rows / seconds


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()
    synthetic_package(args.rows)  # generate outside the timing
    with tempfile.TemporaryDirectory() as tmp:
        sqlite = measure(f"sqlite:///{tmp}/bench.db", args.rows)
    with postgres_database() as url:
        postgres = measure(url, args.rows)
    print(f"rows: {args.rows:,}")
    for label, rate, bar in (("SQLite", sqlite, 30_000), ("PostgreSQL", postgres, 100_000)):
        verdict = "ok" if rate >= bar else "BELOW"
        print(f"{label + ':':<12}{rate:>10,.0f} rows/s   (bar ≥ {bar:,})  {verdict}")


if __name__ == "__main__":
    main()
