"""What the `audit_meter` trigger costs the audit writer, per event, by batch size (issue 17,
decision 0022): the gateway's own append path without HTTP in front of it.

    python -m bench.metering_batches [--events 4000] [--rounds 3] [--sizes 1,8,32,256]
                                     [--only sqlite|postgres] [--kind metered|unbound|open]

A fresh database with bench.reconcile_month's registers (50 apps, 10 products, 100
product-bound grants); every event is an allowed, metered records call of a skewed app.
For each batch size, rounds alternate between the triggers — none, 0012's row trigger,
0016's statement trigger (PostgreSQL; SQLite has none and its row trigger) — each round
appending `--events` prepared events through the writer thread's own link
(`audit.writer.PostgresLink` / `SqliteLink`: one transaction and one COPY a batch, commit
included). Figures: medians of events/s, the microseconds an event costs more than with
no trigger, and the CPU a batch costs the database (PostgreSQL's backend from /proc, at
10 ms resolution: give `--events 30000` or more for that figure; on SQLite this process).
`--kind unbound` and `--kind open` measure what the trigger costs calls it does not meter.
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time

import sqlalchemy as sa

from audit.writer import PostgresLink, Prepared, SqliteLink, prepare
from bench.common import postgres_database
from bench.metering_cost import _migration, use_trigger
from bench.proc import cpu_seconds
from bench.reconcile_month import _call, setup
from gateway.database import create_engine
from gateway.migrate import upgrade


def _sqlite_trigger(engine: sa.Engine, kind: str) -> None:
    with engine.begin() as conn:
        conn.exec_driver_sql("DROP TRIGGER IF EXISTS audit_meter")
        if kind == "row":
            conn.exec_driver_sql(_migration("0012_operation").SQLITE_TRIGGER)


def _events(
    metered: list[tuple[str, int]], unbound: dict[str, int], args: argparse.Namespace, pg: bool
) -> list[Prepared]:
    """Calls of skewed apps: under their product-bound grants (`metered`), under grants bound
    to no product (`unbound`: the trigger looks and finds nothing), or on open data
    (`open`: no grant, which the row trigger's WHEN clause skips)."""
    rng = random.Random(18)
    pairs = metered if args.kind != "unbound" else list(unbound.items())
    out = []
    for n in range(args.events):
        client_id, grant_id = pairs[min(int(rng.expovariate(1 / 12)), len(pairs) - 1)]
        call = _call(rng, client_id, grant_id, n)
        if args.kind == "open":
            call |= {"grant_id": None, "grant_version": None}
        out.append(prepare(call, postgres=pg))
    return out


def _cpu(link: PostgresLink | SqliteLink) -> float:
    """CPU seconds so far of what appends: PostgreSQL's backend of the link (the writer
    thread's own connection), or this process for SQLite (the library runs in it)."""
    if isinstance(link, PostgresLink):
        return cpu_seconds(link._connection().backend_pid)  # a bench may look in
    return time.process_time()


def compare(label: str, url: str, args: argparse.Namespace) -> None:
    engine = create_engine(url)
    upgrade(engine)
    postgres = engine.dialect.name == "postgresql"
    metered, unbound = setup(engine)
    events = _events(metered, unbound, args, postgres)
    warm_up = events[: max(args.sizes) * 2]
    kinds = ["none", "row", "statement"] if postgres else ["none", "row"]
    link = PostgresLink(engine) if postgres else SqliteLink(engine)
    print(f"{label}: {args.events:,} {args.kind} events a round, {args.rounds} rounds; "
          "events/s (wall), then CPU a batch of the database's side", flush=True)  # fmt: skip
    for size in args.sizes:
        rates: dict[str, list[float]] = {k: [] for k in kinds}
        cpu: dict[str, list[float]] = {k: [] for k in kinds}
        for r in range(args.rounds):
            for kind in kinds[r % len(kinds) :] + kinds[: r % len(kinds)]:
                (use_trigger if postgres else _sqlite_trigger)(engine, kind)
                for first in range(0, len(warm_up), size):  # the changed function planned
                    link.append(warm_up[first : first + size])
                started, used = time.perf_counter(), _cpu(link)
                for first in range(0, len(events), size):
                    link.append(events[first : first + size])
                rates[kind].append(len(events) / (time.perf_counter() - started))
                cpu[kind].append((_cpu(link) - used) / -(-len(events) // size) * 1e6)
        base = statistics.median(rates["none"])
        parts = [f"none {base:,.0f}/s {statistics.median(cpu['none']):.0f} µs"]
        for kind in kinds[1:]:
            rate = statistics.median(rates[kind])
            extra = 1e6 / rate - 1e6 / base
            parts.append(
                f"{kind} {rate:,.0f}/s ({rate / base:.3f}×, {extra:+.1f} µs/event) "
                f"{statistics.median(cpu[kind]):.0f} µs"
            )
        print(f"  batches of {size:>4}: " + "; ".join(parts), flush=True)
    link.close()
    use_trigger(engine, "statement") if postgres else _sqlite_trigger(engine, "row")
    engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=4000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--sizes", type=lambda s: [int(x) for x in s.split(",")], default=[1, 8, 32, 256]
    )
    parser.add_argument("--only", choices=["sqlite", "postgres"])
    parser.add_argument("--kind", choices=["metered", "unbound", "open"], default="metered")
    args = parser.parse_args()
    if args.only in (None, "postgres"):
        with postgres_database() as url:
            compare("PostgreSQL", url, args)
    if args.only in (None, "sqlite"):
        with tempfile.TemporaryDirectory() as tmp:
            compare("SQLite", f"sqlite:///{tmp}/bench.db", args)


if __name__ == "__main__":
    main()
