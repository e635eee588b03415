"""A month of metering reconciled and stated (issue 17 bars: reconcile ≤ 30 s with zero
differences, statement generation ≤ 10 s).

    python -m bench.reconcile_month [--calls 1000000] [--only sqlite|postgres] [--keep]
                                    [--trigger statement|row]

A fresh database (a throw-away one on the local PostgreSQL server, a temporary SQLite
file) gets 50 apps of one operator, 10 data products, 6 approved scenarios (2 of them
public welfare or governance: free), and 2 product-bound grants per app, plus one unbound
grant for every fifth app. Then `--calls` allowed, metered data calls of November 2026
(business month, UTC+8) go into the audit log through `audit.writer.append` — the real
hash chain, COPY on PostgreSQL — so that the usage ledger is filled by the database's own
`audit_meter` trigger, never by this script. Apps are skewed (the busiest has ~12 % of
the calls); the actions mix records, record, export and aggregate; row counts 0–500.
Beside them, what metering must leave out: refusals, sign-ins and calls under the unbound
grants (~9 % more events in the month), and a day of metered calls just before and just
after the month. One batch of 2,000 events shares a time (batches ~43 min apart).

Then, each timed: `statements.audit_units` alone, `statements.reconcile` (must be []),
`opengate operation reconcile --month 2026-11` as an operator runs it (a process:
start-up included), `statements.compute`, `statements.issue` (compute, sign, store), and
`reconcile` again against the issued statement. The ledger's totals are checked against
what was generated. `--keep` keeps (and on a later run reuses) the PostgreSQL database
`opengate_bench_reconcile_month`.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import subprocess
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from unittest import mock

import sqlalchemy as sa
from sqlmodel import Session

from audit.canonical import EVENT_KEYS
from audit.writer import append
from auth.apps import create_app
from auth.users import create_user
from bench.common import PG_ADMIN_URL, PYTHON, postgres_database, synthetic_package
from bench.metering_cost import _credit_code, use_trigger
from catalog.importer import import_package
from gateway.database import create_engine
from gateway.keys import installation_keys
from gateway.migrate import upgrade
from gateway.settings import Settings
from operation import statements
from operation.models import Agreement, Operator, OperatorApp, Product, Scenario
from policies.models import Grant

RECONCILE_BAR = 30.0
STATEMENT_BAR = 10.0
MONTH = "2026-11"
# The business month's first and last instants in UTC (UTC+8 days).
MONTH_START = datetime(2026, 10, 31, 16, tzinfo=UTC)
MONTH_SECONDS = 30 * 86_400
BATCH = 2_000
APPS = 50
PRODUCTS = 10
DATASET = "bench-month"
KEPT = "opengate_bench_reconcile_month"
ACTIONS = ["data.records"] * 7 + ["data.record", "data.export", "data.aggregate"]
SCENARIOS = [
    ("小微企业信贷风控", "industry"),
    ("供应链金融", "industry"),
    ("保险精算", "industry"),
    ("物流调度", "industry"),
    ("惠民补贴发放核验", "public_welfare"),
    ("社区治理", "public_governance"),
]


def setup(engine: sa.Engine) -> tuple[list[tuple[str, int]], dict[str, int]]:
    """The registers: (app, grant) pairs that meter, and each app's unbound grant."""
    import_package(engine, synthetic_package(100, DATASET))
    today = date(2026, 12, 4)
    with Session(engine) as db:
        admin = create_user(
            db, username="bench-admin", password="管理员-口令-2026", role="data_admin"
        )
        developer = create_user(
            db, username="bench-dev", password="开发者-口令-2026", role="developer"
        )
        operator = Operator(name="基准运营机构", credit_code=_credit_code(), created_by="bench")
        db.add(operator)
        db.commit()
        agreement = Agreement(
            operator_id=operator.id, title="基准协议", datasets=[DATASET], modes=["records"],
            starts_on=today - timedelta(days=400), ends_on=today + timedelta(days=400),
            status="active",
        )  # fmt: skip
        products = [
            Product(
                code=f"BENCH-{p:04d}",
                operator_id=operator.id,
                title=f"基准产品{p}",
                datasets=[DATASET],
                modes=["records"],
                unit=["call", "1000_rows", "month"][p % 3],
                price_fen=100 + p * 7,
                cap_fen=10_000,
            )
            for p in range(PRODUCTS)
        ]
        scenarios = [
            Scenario(name=name, category=category, organization="基准机构", approved=True)
            for name, category in SCENARIOS
        ]
        db.add_all([agreement, *products, *scenarios])
        db.commit()
        metered: list[tuple[str, int]] = []
        unbound: dict[str, int] = {}
        for a in range(APPS):
            app, _ = create_app(db, owner=developer, name=f"基准应用{a}")
            db.add(OperatorApp(client_id=app.client_id, operator_id=operator.id))
            terms = {
                "client_id": app.client_id, "dataset_id": DATASET, "modes": ["records"],
                "created_by": admin.id, "expires_at": datetime(2027, 12, 31, tzinfo=UTC),
            }  # fmt: skip
            grants = [
                Grant(
                    **terms,
                    purpose="基准用途",
                    agreement_id=agreement.id,
                    product_id=products[(a + k * 3) % PRODUCTS].id,
                    scenario_id=scenarios[(a + k) % len(scenarios)].id,
                )
                for k in range(2)
            ]
            if a % 5 == 0:  # a grant bound to no product: its calls are not metered
                grants.append(Grant(**terms, purpose="基准用途（未计量）"))
            db.add_all(grants)
            db.commit()
            metered += [(app.client_id, int(g.id)) for g in grants[:2]]  # type: ignore[arg-type]
            if a % 5 == 0:
                unbound[app.client_id] = int(grants[2].id)  # type: ignore[arg-type]
    return metered, unbound


class Generated:
    """What was put into the log and must come back out of the ledger."""

    def __init__(self) -> None:
        self.calls = 0
        self.rows = 0
        self.other = Counter[str]()


def _event(**fields: Any) -> dict[str, Any]:
    return dict.fromkeys(EVENT_KEYS) | fields


def _call(rng: random.Random, client_id: str, grant_id: int, n: int) -> dict[str, Any]:
    action = ACTIONS[n % len(ACTIONS)]
    return _event(
        request_id=f"bench-{n}", actor=f"client:{client_id}", client_id=client_id,
        ip=f"10.2.{n % 8}.{n % 250}", action=action, resource=f"datasets/{DATASET}",
        row_count=1 if action == "data.record" else rng.randrange(0, 501),
        purpose="基准用途", grant_id=grant_id, grant_version=1, outcome="allowed", status=200,
        fields=[{"name": "record_id", "transform": "clear"}],
    )  # fmt: skip


def events(
    rng: random.Random,
    metered: list[tuple[str, int]],
    unbound: dict[str, int],
    count: int,
    made: Generated | None,
    n0: int,
) -> list[dict[str, Any]]:
    """`count` metered calls of skewed apps, with the log's other traffic around them;
    `made` counts what the month's ledger must hold (None: outside the month)."""
    out = []
    for i in range(count):
        n = n0 + i
        client_id, grant_id = metered[min(int(rng.expovariate(1 / 12)), len(metered) - 1)]
        call = _call(rng, client_id, grant_id, n)
        out.append(call)
        if made is not None:
            made.calls += 1
            made.rows += call["row_count"]
        draw = rng.random()
        if draw < 0.05:  # refused: audited, not metered
            refused = call | {"outcome": "denied", "status": 403, "row_count": None,
                              "detail": {"error": "quota_exceeded"}}  # fmt: skip
            out.append(refused)
            if made is not None:
                made.other["denied"] += 1
        elif draw < 0.07:
            out.append(_event(action="auth.login", actor="user:bench-dev", outcome="allowed",
                              status=200, ip="10.0.0.9"))  # fmt: skip
            if made is not None:
                made.other["auth.login"] += 1
        elif draw < 0.09 and client_id in unbound:  # a grant bound to no product
            out.append(call | {"grant_id": unbound[client_id], "request_id": f"free-{n}"})
            if made is not None:
                made.other["unbound"] += 1
    return out


def _stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.000000Z")


def fill(engine: sa.Engine, calls: int) -> tuple[Generated, float]:
    rng = random.Random(17)
    metered, unbound = setup(engine)
    made = Generated()
    started = time.perf_counter()
    batches = max(1, calls // BATCH)
    # The day before the month and the day after it: metered, but not November's.
    edges = [MONTH_START - timedelta(hours=12), MONTH_START + timedelta(seconds=MONTH_SECONDS)]
    plan: list[tuple[datetime, int, Generated | None]] = [(edges[0], BATCH * 5, None)]
    for b in range(batches):
        size = BATCH if b < batches - 1 else calls - BATCH * (batches - 1)
        plan.append((MONTH_START + timedelta(seconds=int(b * MONTH_SECONDS / batches)), size, made))
    plan.append((edges[1] + timedelta(hours=1), BATCH * 5, None))
    n = 0
    for moment, size, counter in plan:
        for first in range(0, size, BATCH):
            batch = events(rng, metered, unbound, min(BATCH, size - first), counter, n)
            n += len(batch)
            with mock.patch("audit.writer.now_ts", lambda ts=_stamp(moment): ts):
                append(engine, batch)
    with engine.begin() as conn:
        conn.exec_driver_sql("ANALYZE")
    return made, time.perf_counter() - started


def timed(call: Callable[[], Any]) -> tuple[Any, float]:
    started = time.perf_counter()
    result = call()
    return result, time.perf_counter() - started


def verdict(seconds: float, bar: float) -> str:
    return f"bar ≤ {bar:.0f} s: {'ok' if seconds <= bar else 'ABOVE'}"


def measure(label: str, url: str, data_dir: Path, made: Generated | None) -> None:
    settings = Settings(database_url=url, data_dir=data_dir)
    engine = create_engine(settings.sqlalchemy_url)
    first, after = statements.month_of(MONTH)
    with engine.connect() as conn:
        events_total = conn.execute(sa.text("SELECT count(*) FROM audit_events")).scalar()
        ledger = statements.ledger_units(conn, first, after)
        audit, audit_s = timed(lambda: statements.audit_units(conn, first, after))
    calls, rows = sum(u.calls for u in ledger), sum(u.rows for u in ledger)
    print(
        f"{label}: {events_total:,} audit events; November's ledger {calls:,} calls, "
        f"{rows:,} rows in {len(ledger)} app × product × free lines",
        flush=True,
    )
    if made is not None:
        print(
            f"  generated {made.calls:,} calls, {made.rows:,} rows; beside them {dict(made.other)}"
        )
        assert (calls, rows) == (made.calls, made.rows), "the ledger is not what was generated"
    assert audit == ledger, "audit_units differs from ledger_units"
    print(f"  audit_units: {audit_s:.2f} s (= ledger_units: yes)", flush=True)
    differences, seconds = timed(lambda: statements.reconcile(engine, MONTH))
    print(
        f"  reconcile: {seconds:.2f} s, {len(differences)} differences; "
        f"{verdict(seconds, RECONCILE_BAR)}",
        flush=True,
    )
    assert differences == [], differences[:3]
    env = {**os.environ, "OPENGATE_DATABASE_URL": url, "OPENGATE_DATA_DIR": str(data_dir)}
    command = [PYTHON, "-m", "gateway.cli", "operation", "reconcile", "--month", MONTH, "--json"]
    cli, seconds = timed(lambda: subprocess.run(command, env=env, capture_output=True, text=True))
    assert cli.returncode == 0, cli.stderr[-2000:]
    print(f"  opengate operation reconcile --month {MONTH}: {seconds:.2f} s (process), exit 0; "
          f"{verdict(seconds, RECONCILE_BAR)}", flush=True)  # fmt: skip
    lines, compute_s = timed(lambda: statements.compute(engine, MONTH))
    signer = installation_keys(settings, engine, create=False).audit_signer
    with Session(engine) as session:
        issued, issue_s = timed(
            lambda: statements.issue(session, engine, MONTH, signer=signer, by="bench")
        )
        total = issued.total_fen
    print(
        f"  statement: compute {compute_s:.2f} s ({len(lines)} lines), issue {issue_s:.2f} s "
        f"(total {total:,} fen); compute + issue {compute_s + issue_s:.2f} s, "
        f"{verdict(compute_s + issue_s, STATEMENT_BAR)}",
        flush=True,
    )
    differences, seconds = timed(lambda: statements.reconcile(engine, MONTH))
    print(f"  reconcile against the issued statement: {seconds:.2f} s, "
          f"{len(differences)} differences", flush=True)  # fmt: skip
    assert differences == [], differences[:3]
    with engine.begin() as conn:  # a kept database can be measured again
        conn.execute(sa.text("DELETE FROM statements WHERE month = :m"), {"m": MONTH})
    engine.dispose()


def prepare(url: str, data_dir: Path, calls: int, trigger: str) -> Generated:
    settings = Settings(database_url=url, data_dir=data_dir)
    engine = create_engine(settings.sqlalchemy_url)
    upgrade(engine)
    if trigger == "row" and engine.dialect.name == "postgresql":
        use_trigger(engine, "row")  # 0012's, to compare the fill (and the ledger) with
    installation_keys(settings, engine, create=True)
    made, seconds = fill(engine, calls)
    engine.dispose()
    print(f"filled in {seconds:.0f} s ({made.calls / seconds:,.0f} metered calls/s, the {trigger} "
          "trigger metering each batch as it is appended)", flush=True)  # fmt: skip
    return made


@contextlib.contextmanager
def kept_database() -> Iterator[tuple[str, bool]]:
    admin = sa.create_engine(
        PG_ADMIN_URL.replace("postgresql://", "postgresql+psycopg://", 1),
        isolation_level="AUTOCOMMIT",
    )
    with admin.connect() as conn:
        exists = conn.execute(
            sa.text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": KEPT}
        ).first()
        if not exists:
            conn.execute(sa.text(f'CREATE DATABASE "{KEPT}"'))
    admin.dispose()
    yield sa.engine.make_url(PG_ADMIN_URL).set(database=KEPT).render_as_string(False), bool(exists)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=1_000_000)
    parser.add_argument("--only", choices=["sqlite", "postgres"])
    parser.add_argument("--keep", action="store_true")
    parser.add_argument(
        "--trigger",
        choices=["statement", "row"],
        default="statement",
        help="PostgreSQL: fill under 0014's statement trigger (installed) or 0012's row one",
    )
    args = parser.parse_args()
    kept_dir = Path(tempfile.gettempdir()) / f"{KEPT}-var"
    if args.only in (None, "postgres"):
        if args.keep:
            with kept_database() as (url, reused):
                made = None if reused else prepare(url, kept_dir, args.calls, args.trigger)
                measure("PostgreSQL", url, kept_dir, made)
        else:
            with tempfile.TemporaryDirectory() as tmp, postgres_database() as url:
                made = prepare(url, Path(tmp), args.calls, args.trigger)
                measure("PostgreSQL", url, Path(tmp), made)
    if args.only in (None, "sqlite"):
        with tempfile.TemporaryDirectory() as tmp:
            url = f"sqlite:///{tmp}/bench.db"
            made = prepare(url, Path(tmp) / "var", args.calls, args.trigger)
            measure("SQLite", url, Path(tmp) / "var", made)


if __name__ == "__main__":
    main()
