"""What metering costs a records request (issue 17: ≤ 5 %): the same gateway, the same
conditional dataset, two apps with the same grant — one of them bound to a data product,
so each of its calls also updates the usage ledger (the `audit_meter` trigger on the audit
row's insert) — loaded by wrk in alternating rounds; medians compared.

    python -m bench.metering_cost [--rows 100000] [--seconds 8] [--rounds 3] [--only sqlite]
                                  [--no-before]

On PostgreSQL the metered app is measured twice a round: under migration 0012's row
trigger and under 0016's statement trigger (swapped between rounds), so before and after
come from one run on one machine state; `--no-before` measures only the installed one.

After the run the ledger's calls must equal the metered app's allowed audit events (the
reconciliation is printed), so the figure is of metering that really happened.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import statistics
import tempfile
from datetime import date, timedelta
from pathlib import Path
from types import ModuleType

import httpx
import sqlalchemy as sa

from bench.common import each_backend
from bench.masking_cost import classified_gateway, classified_package
from bench.proc import cpu_seconds, listening_pid
from bench.wrk import WrkResult, median, require_wrk, run_wrk
from catalog.identifiers import org_code_check_char, uscc_check_char
from gateway.database import create_engine
from operation import statements

BAR = 0.95  # metered ≥ 0.95 × unmetered: metering adds ≤ 5 %
DATASET = "bench-metered"


def _credit_code(body16: str = "91370200MA3BEN01") -> str:
    first17 = body16 + org_code_check_char(body16[8:16])
    return first17 + uscc_check_char(first17)


def _bind_product(base: str, admin: dict[str, str], grant_id: int) -> None:
    """Operator, agreement, product, an industry scenario: the grant then meters."""

    def post(path: str, body: dict | None = None) -> dict:
        answer = httpx.post(f"{base}{path}", json=body or {}, headers=admin)
        if answer.status_code not in (200, 201):
            raise RuntimeError(f"{path}: {answer.status_code} {answer.text}")
        return answer.json()

    operator = post(
        "/api/v1/admin/operators", {"name": "基准运营机构", "credit_code": _credit_code()}
    )
    today = date.today()
    agreement = post(
        "/api/v1/admin/agreements",
        {"operator_id": operator["id"], "title": "基准协议", "datasets": [DATASET],
         "modes": ["records"], "starts_on": (today - timedelta(days=1)).isoformat(),
         "ends_on": (today + timedelta(days=3650)).isoformat()},
    )  # fmt: skip
    post(f"/api/v1/admin/agreements/{agreement['id']}/activate")
    product = post(
        "/api/v1/admin/products",
        {"code": "BENCH-0001", "operator_id": operator["id"], "title": "基准产品",
         "datasets": [DATASET], "modes": ["records"], "unit": "call", "price_fen": 1,
         "cap_fen": 10},
    )  # fmt: skip
    scenario = httpx.post(
        f"{base}/api/v1/scenarios",
        json={"name": "基准场景", "category": "industry", "organization": "基准银行"},
        headers=admin,
    ).json()
    post(f"/api/v1/admin/scenarios/{scenario['id']}/approve")
    post(
        f"/api/v1/admin/grants/{grant_id}/operation",
        {"scenario_id": scenario["id"], "product_id": product["id"]},
    )


def _migration(name: str) -> ModuleType:
    """A migration module by file name (they start with a digit: no import statement)."""
    path = Path(__file__).parents[1] / "migrations" / "versions" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"migration_{name}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def use_trigger(engine: sa.Engine, kind: str) -> None:
    """PostgreSQL's `audit_meter` as 0012 made it (`row`), as 0016 does (`statement`) or
    none (`none`), swapped between rounds while the gateway is idle: before and after in
    one run."""
    sql = _migration("0016_statement_metering")
    with engine.begin() as conn:
        conn.exec_driver_sql(sql.DROP_TRIGGER)
        if kind == "none":  # no metering at all (bench.metering_batches' baseline)
            return
        conn.exec_driver_sql(sql.ROW_FUNCTION if kind == "row" else sql.STATEMENT_FUNCTION)
        conn.exec_driver_sql(sql.ROW_TRIGGER if kind == "row" else sql.STATEMENT_TRIGGER)


def _cpu(engine: sa.Engine, worker: int) -> dict[int, float]:
    """CPU seconds so far of the gateway's worker and of the database's server processes
    serving it (PostgreSQL: every backend of this database but the bench's own)."""
    pids = [worker]
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            pids += conn.execute(
                sa.text("SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                        "AND pid <> pg_backend_pid()")
            ).scalars()  # fmt: skip
    seconds = {}
    for pid in pids:
        with contextlib.suppress(OSError):  # a backend that ended meanwhile
            seconds[pid] = cpu_seconds(pid)
    return seconds


def _used(before: dict[int, float], after: dict[int, float]) -> float:
    return sum(t - before.get(pid, 0.0) for pid, t in after.items())


def compare(label: str, url: str, args: argparse.Namespace) -> None:
    engine = create_engine(url)
    with (
        tempfile.TemporaryDirectory() as tmp,
        classified_gateway(url, tmp, [classified_package(args.rows, DATASET)]) as gateway,
    ):
        plain, metered = gateway.app("plain"), gateway.app("metered")
        gateway.grant(plain, DATASET, modes=["records"])
        grant_id = gateway.grant(metered, DATASET, modes=["records"])["id"]
        _bind_product(gateway.base, {"Authorization": f"Bearer {gateway.admin_token}"}, grant_id)
        target = f"{gateway.base}/api/v1/datasets/{DATASET}/records?limit=100"
        auth = {a: {"Authorization": f"Bearer {gateway.token(a)}"} for a in (plain, metered)}
        # (side, app, trigger): PostgreSQL measures 0012's row trigger beside 0016's.
        sides = [("unmetered", plain, None)]
        if engine.dialect.name == "postgresql" and not args.no_before:
            sides += [("metered, row trigger (0012)", metered, "row")]
            sides += [("metered, statement trigger (0016)", metered, "statement")]
        else:
            sides += [("metered", metered, None)]
        for _, app, trigger in sides:
            if trigger:
                use_trigger(engine, trigger)
            run_wrk(target, seconds=2, connections=args.connections, headers=auth[app])
        runs: dict[str, list[WrkResult]] = {side: [] for side, _, _ in sides}
        cpu: dict[str, list[float]] = {side: [] for side, _, _ in sides}
        worker = listening_pid(int(gateway.base.rsplit(":", 1)[1]))
        for r in range(args.rounds):  # each round in another order: no side always first
            for side, app, trigger in sides[r % len(sides) :] + sides[: r % len(sides)]:
                if trigger:
                    use_trigger(engine, trigger)
                before = _cpu(engine, worker)
                result = run_wrk(target, seconds=args.seconds, connections=args.connections,
                                 headers=auth[app])  # fmt: skip
                used = _used(before, _cpu(engine, worker))
                runs[side].append(result)
                cpu[side].append(used / (result.requests_per_second * args.seconds) * 1e6)
        with engine.connect() as conn:
            # One statement, one snapshot: requests still in flight after wrk stopped are
            # audited (and metered) meanwhile, so two reads could disagree by their events.
            ledger, audited = conn.execute(
                sa.text("SELECT (SELECT coalesce(sum(calls), 0) FROM usage_ledger), "
                        "(SELECT count(*) FROM audit_events WHERE client_id = :c AND "
                        "action = 'data.records' AND outcome = 'allowed')"), {"c": metered},
            ).one()  # fmt: skip
            # One batch of the writer shares one ts: how many events a COPY carried.
            per_batch = conn.execute(
                sa.text("SELECT count(*) * 1.0 / count(DISTINCT ts) FROM audit_events")
            ).scalar()
        differences = statements.reconcile(engine, statements.current_month())
    engine.dispose()
    base = median(runs["unmetered"])
    errors = sum(r.non_2xx for results in runs.values() for r in results)
    print(
        f"{label:<11} unmetered {base.requests_per_second:7.0f} req/s p99 {base.p99_ms:6.1f} ms"
        f" | ledger calls {ledger} = audited {audited}: {'yes' if ledger == audited else 'NO'},"
        f" reconcile differences {len(differences)}; {per_batch:.1f} events a writer batch"
    )
    for side, _, _ in sides[1:]:
        b = median(runs[side])
        ratio = b.requests_per_second / base.requests_per_second
        verdict = "INVALID (non-2xx answers)" if errors else "ok" if ratio >= BAR else "BELOW"
        cost = statistics.median(cpu[side]) / statistics.median(cpu["unmetered"])
        print(
            f"{'':<11} {side}: {b.requests_per_second:7.0f} req/s p99 {b.p99_ms:6.1f} ms"
            f" | ratio {ratio:.3f} (bar ≥ {BAR}) {verdict} | CPU a request"
            f" {statistics.median(cpu[side]):.0f} µs: {cost:.3f} × unmetered"
        )
    print(f"{'':<11} unmetered: CPU a request {statistics.median(cpu['unmetered']):.0f} µs"
          " (gateway worker + database backends)")  # fmt: skip
    for side, _, _ in sides:
        print(f"{'':<11} {side} rounds: " + ", ".join(
            f"{r.requests_per_second:.0f} req/s {c:.0f} µs" for r, c in zip(
                runs[side], cpu[side], strict=True)))  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--only", choices=["sqlite", "postgres"])
    parser.add_argument(
        "--no-before", action="store_true", help="PostgreSQL: the installed trigger only"
    )
    args = parser.parse_args()
    require_wrk()
    print(
        f"records (100 rows, masked) unmetered vs product-bound, one gateway, 1 worker, wrk -t1 "
        f"-c{args.connections}, {args.rounds} alternating rounds of {args.seconds}s; medians"
    )
    each_backend(compare, args)


if __name__ == "__main__":
    main()
