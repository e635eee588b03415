"""Usage, monthly statements and their reconciliation with the audit log.

Units come from the usage ledger, which the database keeps beside the audit log (trigger
`audit_meter`, migration 0012); reconciliation recomputes the same figures from the audit
log itself. Money is integer fen: `1000_rows` amounts round half up to the fen once per
statement line, never per call.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlmodel import Session, select

from kernel.clock import utcnow
from kernel.problems import Problem, invalid_parameter
from operation.models import PriceUnit, Statement
from operation.products import yuan

MONTH = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")
BUSINESS_DAY = timedelta(hours=8)
# What the trigger meters (migration 0012): the same filter, read back from the log.
METERED = (
    "data.records",
    "data.record",
    "data.export",
    "data.aggregate",
    "data.verify",
    "service.call",
)
FREE = ("public_governance", "public_welfare")


class Signer(Protocol):
    key_id: str

    def sign(self, message: bytes) -> str: ...


def month_of(raw: str | None) -> tuple[date, date]:
    """The first day of `raw` (YYYY-MM) and of the month after."""
    match = MONTH.match(raw or "")
    if match is None:
        raise invalid_parameter("month", "月份格式应为 YYYY-MM，例如 2026-11")
    first = date(int(match[1]), int(match[2]), 1)
    after = date(first.year + first.month // 12, first.month % 12 + 1, 1)
    return first, after


def current_month(now: datetime | None = None) -> str:
    return ((now or utcnow()) + BUSINESS_DAY).strftime("%Y-%m")


@dataclass(frozen=True)
class Units:
    client_id: str
    product_id: int
    free: bool
    calls: int
    rows: int


def ledger_units(
    conn: Connection, first: date, after: date, client_id: str | None = None
) -> list[Units]:
    """The month's metered units from the ledger, per app × product × free."""
    query = sa.text(
        "SELECT client_id, product_id, free, sum(calls), sum(rows) FROM usage_ledger "
        "WHERE day >= :first AND day < :after "
        "AND (CAST(:client AS VARCHAR) IS NULL OR client_id = :client) "
        "GROUP BY client_id, product_id, free ORDER BY client_id, product_id, free"
    )
    params: dict[str, Any] = {"first": first, "after": after, "client": client_id}
    return [
        Units(r[0], int(r[1]), bool(r[2]), int(r[3]), int(r[4]))
        for r in conn.execute(query, params)
    ]


def _utc_bound(day: date) -> str:
    """The audit log's fixed-width UTC text of the business day's first instant."""
    start = datetime(day.year, day.month, day.day) - BUSINESS_DAY
    return start.strftime("%Y-%m-%dT%H:%M:%S.000000Z")


def audit_units(conn: Connection, first: date, after: date) -> list[Units]:
    """The same units recomputed from the audit log: allowed metered calls under a
    product-bound grant, by business day (UTC+8), through the grant's product and scenario."""
    actions = ", ".join(f"'{a}'" for a in METERED)  # constants of this module
    free = ", ".join(f"'{c}'" for c in FREE)
    query = sa.text(
        f"SELECT e.client_id, g.product_id, coalesce(s.category IN ({free}), false) AS free, "  # noqa: S608
        "count(*), coalesce(sum(e.row_count), 0) FROM audit_events e "
        "JOIN grants g ON g.id = e.grant_id LEFT JOIN scenarios s ON s.id = g.scenario_id "
        "WHERE e.ts >= :since AND e.ts < :until AND e.outcome = 'allowed' "
        f"AND e.action IN ({actions}) AND g.product_id IS NOT NULL "
        "GROUP BY e.client_id, g.product_id, 3 ORDER BY e.client_id, g.product_id, 3"
    )
    params = {"since": _utc_bound(first), "until": _utc_bound(after)}
    return [
        Units(r[0], int(r[1]), bool(r[2]), int(r[3]), int(r[4]))
        for r in conn.execute(query, params)
    ]


def _products(conn: Connection) -> dict[int, dict[str, Any]]:
    rows = conn.execute(
        sa.text(
            "SELECT p.id, p.code, p.title, p.unit, p.price_fen, o.name FROM products p "
            "JOIN operators o ON o.id = p.operator_id"
        )
    )
    return {
        int(r[0]): {
            "code": r[1],
            "title": r[2],
            "unit": r[3],
            "price_fen": int(r[4]),
            "operator": r[5],
        }
        for r in rows
    }


def line(units: Units, product: dict[str, Any]) -> dict[str, Any]:
    """One statement line: units billed, the unit price and the amount, all in fen."""
    unit, price = product["unit"], 0 if units.free else product["price_fen"]
    if unit == PriceUnit.call:
        billed, amount = units.calls, units.calls * price
    elif unit == PriceUnit.rows_1000:
        billed, amount = units.rows, (units.rows * price + 500) // 1000
    else:  # month: one unit for a month with any use
        billed, amount = (1 if units.calls else 0), (price if units.calls else 0)
    return {
        "client_id": units.client_id,
        "product_id": units.product_id,
        "product_code": product["code"],
        "product_title": product["title"],
        "operator": product["operator"],
        "free": units.free,
        "calls": units.calls,
        "rows": units.rows,
        "unit": unit,
        "units": billed,
        "unit_price_fen": price,
        "amount_fen": amount,
        "amount_yuan": yuan(amount),
    }


def compute(engine: Engine, month: str, *, client_id: str | None = None) -> list[dict[str, Any]]:
    first, after = month_of(month)
    with engine.connect() as conn:
        products = _products(conn)
        return [
            line(u, products[u.product_id]) for u in ledger_units(conn, first, after, client_id)
        ]


def canonical(lines: list[dict[str, Any]]) -> bytes:
    return json.dumps(lines, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode()


def issue(session: Session, engine: Engine, month: str, *, signer: Signer, by: str) -> Statement:
    """Issue the statement of a closed month: immutable, signed like the audit checkpoints."""
    month_of(month)
    if month >= current_month():
        raise invalid_parameter("month", f"{month} 尚未结束，不能出具正式账单（可查看实时用量）")
    if session.exec(select(Statement).where(Statement.month == month)).first() is not None:
        raise Problem(409, "conflict", f"{month} 的账单已出具，账单出具后不可更改")
    lines = compute(engine, month)
    body = canonical(lines)
    statement = Statement(
        month=month,
        lines=lines,
        total_fen=sum(x["amount_fen"] for x in lines),
        digest=hashlib.sha256(body).hexdigest(),
        signature=signer.sign(f"opengate-statement:{month}:".encode() + body),
        key_id=signer.key_id,
        issued_by=by,
    )
    session.add(statement)
    session.commit()
    session.refresh(statement)
    return statement


def _one_snapshot(engine: Engine) -> Connection:
    """A connection whose reads all see one moment. The gateway keeps metering while a
    month is reconciled: PostgreSQL's default (READ COMMITTED) would let the calls committed
    between the ledger's read and the log's count show up as differences. SQLite's read
    transaction (the engine begins one on the first statement) is one snapshot already."""
    conn = engine.connect()
    if engine.dialect.name == "postgresql":
        conn.execution_options(isolation_level="REPEATABLE READ")
    return conn


def reconcile(engine: Engine, month: str) -> list[dict[str, Any]]:
    """Every difference between the ledger, the audit log and the issued statement of
    `month` (an empty list when they agree)."""
    first, after = month_of(month)
    with _one_snapshot(engine) as conn:
        ledger = {(u.client_id, u.product_id, u.free): u for u in ledger_units(conn, first, after)}
        audit = {(u.client_id, u.product_id, u.free): u for u in audit_units(conn, first, after)}
        issued = conn.execute(
            sa.text("SELECT lines FROM statements WHERE month = :m"), {"m": month}
        ).scalar()
    differences = []
    for key in sorted(set(ledger) | set(audit), key=str):
        a, b = ledger.get(key), audit.get(key)
        calls = (a.calls if a else 0, b.calls if b else 0)
        rows = (a.rows if a else 0, b.rows if b else 0)
        if calls[0] != calls[1] or rows[0] != rows[1]:
            differences.append(
                {"client_id": key[0], "product_id": key[1], "free": key[2],
                 "ledger": {"calls": calls[0], "rows": rows[0]},
                 "audit": {"calls": calls[1], "rows": rows[1]}}
            )  # fmt: skip
    if issued is not None:
        lines = json.loads(issued) if isinstance(issued, str) else issued
        stated = {(x["client_id"], x["product_id"], x["free"]): x for x in lines}
        for key in sorted(set(stated) | set(audit), key=str):
            s, b = stated.get(key), audit.get(key)
            if (s["calls"] if s else 0, s["rows"] if s else 0) != (
                (b.calls, b.rows) if b else (0, 0)
            ):
                differences.append(
                    {"client_id": key[0], "product_id": key[1], "free": key[2],
                     "issued": {"calls": s["calls"] if s else 0, "rows": s["rows"] if s else 0},
                     "audit": {"calls": b.calls if b else 0, "rows": b.rows if b else 0}}
                )  # fmt: skip
    return differences
