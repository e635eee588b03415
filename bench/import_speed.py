"""Import throughput for a 1M-row CSV into SQLite and PostgreSQL, and on PostgreSQL side by
side with the physical limit: `psql \\copy` of the same CSV, then the primary key and
ANALYZE.

    python -m bench.import_speed [--rows 1000000] [--rounds 3] [--only postgres]

Each round uses a fresh PostgreSQL database and times, one after the other, `opengate`'s
importer (catalog.importer.import_package, as `opengate import` calls it) and one psql
process running CREATE TABLE (the importer's column types), `\\copy ... (FORMAT csv,
HEADER)`, `ALTER TABLE ... ADD PRIMARY KEY` and `ANALYZE`; the medians are compared.
Bars: issue 2, ≥ 100,000 rows/s into PostgreSQL and ≥ 30,000 rows/s into SQLite;
issue 14, the importer ≥ 0.5 × psql.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.schema import CreateTable

from bench.common import postgres_database, synthetic_package
from catalog.hosted import build_table
from catalog.importer import import_package
from catalog.package import read_package
from gateway.database import create_engine
from gateway.migrate import upgrade
from gateway.settings import Settings


def importer_rate(url: str, package: Path, rows: int) -> float:
    engine = create_engine(Settings(database_url=url).sqlalchemy_url)
    upgrade(engine)
    started = time.perf_counter()
    result = import_package(engine, package)
    seconds = time.perf_counter() - started
    assert result.row_count == rows
    engine.dispose()
    return rows / seconds


def psql_rate(url: str, package: Path, rows: int) -> float:
    """CREATE TABLE, \\copy, primary key, ANALYZE in one psql process, timed whole."""
    spec = read_package(package)
    table = build_table("psql_copy", spec.fields, "postgresql")
    ddl = str(CreateTable(table).compile(dialect=sa.dialects.postgresql.dialect())).strip()
    data = str(spec.data_path).replace("'", "''")
    psql = shutil.which("psql")
    if psql is None:
        raise SystemExit("psql is not installed: apt-get install postgresql-client")
    commands = [
        ddl,
        f"\\copy psql_copy FROM '{data}' WITH (FORMAT csv, HEADER true)",
        f'ALTER TABLE psql_copy ADD PRIMARY KEY ("{spec.primary_key}")',
        "ANALYZE psql_copy",
    ]
    args = [psql, "-X", "-q", "-v", "ON_ERROR_STOP=1", url]
    for command in commands:
        args += ["-c", command]
    started = time.perf_counter()
    subprocess.run(args, check=True, capture_output=True)
    seconds = time.perf_counter() - started
    return rows / seconds


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--only", choices=["sqlite", "postgres"])
    args = parser.parse_args()
    package = synthetic_package(args.rows)  # generated outside the timing
    print(f"rows: {args.rows:,}")
    if args.only in (None, "sqlite"):
        with tempfile.TemporaryDirectory() as tmp:
            sqlite = importer_rate(f"sqlite:///{tmp}/bench.db", package, args.rows)
        verdict = "ok" if sqlite >= 30_000 else "BELOW"
        print(f"{'SQLite:':<22}{sqlite:>10,.0f} rows/s   (bar ≥ 30,000)  {verdict}")
    if args.only in (None, "postgres"):
        ours: list[float] = []
        theirs: list[float] = []
        for _ in range(args.rounds):
            with postgres_database() as url:
                ours.append(importer_rate(url, package, args.rows))
                theirs.append(psql_rate(url, package, args.rows))
        gateway, limit = statistics.median(ours), statistics.median(theirs)
        ratio = gateway / limit
        print(
            f"{'PostgreSQL importer:':<22}{gateway:>10,.0f} rows/s   (bar ≥ 100,000)  "
            f"{'ok' if gateway >= 100_000 else 'BELOW'}   rounds: "
            + ", ".join(f"{r:,.0f}" for r in ours)
        )
        label = "psql \\copy+PK+ANALYZE:"
        print(
            f"{label:<22}{limit:>10,.0f} rows/s   rounds: " + ", ".join(f"{r:,.0f}" for r in theirs)
        )
        print(f"ratio {ratio:.2f} (bar ≥ 0.50) {'ok' if ratio >= 0.5 else 'BELOW'}")


if __name__ == "__main__":
    main()
