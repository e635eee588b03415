"""One audit batch, many ledger lines: the writer appends a batch with one statement (COPY on
PostgreSQL, whose `audit_meter` meters the statement's rows at once since migration 0016),
so the ledger must add up calls of one app × product × day within the batch, leave out
what is not metered, and split business days (UTC+8) — exactly as row by row."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy.engine import Engine

from audit.canonical import EVENT_KEYS, format_ts
from audit.writer import append
from kernel.clock import utcnow
from operation import statements
from tests.conftest import TestClient
from tests.operation.test_operation_api import (  # noqa: F401  (world is a fixture)
    direct_grant,
    ledger,
    setup_operation,
    world,
)


def _event(**fields: Any) -> dict[str, Any]:
    return dict.fromkeys(EVENT_KEYS) | {"action": "data.records", "outcome": "allowed"} | fields


def bind(client: Any, world: dict, made: dict, client_id: str, category: str) -> int:  # noqa: F811
    """A direct grant to `client_id`, bound to the product under the `category` scenario;
    its id. `client` is the ASGI TestClient or an httpx.Client of a real server."""
    grant = direct_grant(client, world, client_id)
    assert grant.status_code == 201, grant.text
    bound = client.post(
        f"/api/v1/admin/grants/{grant.json()['id']}/operation",
        json={"scenario_id": made["scenarios"][category], "product_id": made["product_id"]},
        headers=world["admin"],
    )
    assert bound.status_code == 200, bound.text
    return grant.json()["id"]


def _append_at(engine: Engine, ts: str, events: list[dict[str, Any]]) -> None:
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("audit.writer.now_ts", lambda: ts)
        append(engine, events)


def test_a_batch_is_metered_as_its_rows_add_up(
    client: TestClient,
    world: dict,  # noqa: F811
    engine: Engine,
) -> None:
    made = setup_operation(client, world)
    bank = world["bank"]
    metered = bind(client, world, made, bank, "industry")
    free = bind(client, world, made, world["operator_app"], "public_welfare")
    product = made["product_id"]
    call = {"client_id": bank, "grant_id": metered, "status": 200}
    batch = [
        _event(**call, row_count=5),
        _event(**call, row_count=7, action="data.export"),
        _event(**call, row_count=None, action="data.aggregate"),  # no rows: 0
        _event(**call | {"status": 403}, row_count=9, outcome="denied"),  # refused: free
        _event(**call, row_count=9, action="data.schema"),  # not a metered action
        _event(client_id=bank, action="data.records", row_count=3),  # no grant
        _event(client_id=world["operator_app"], grant_id=free, row_count=4),
        _event(action="auth.login", actor="user:admin1"),
    ]
    # The writer keeps the chain's times in order: the next business-day boundary (16:00
    # UTC), a microsecond before it and at it, after everything the setup logged.
    boundary = (utcnow() + timedelta(days=1)).replace(hour=16, minute=0, second=0, microsecond=0)
    _append_at(engine, format_ts(boundary - timedelta(microseconds=1)), batch)
    _append_at(engine, format_ts(boundary), batch[:2] * 3)
    assert sorted(ledger(engine)) == sorted(
        [
            (bank, product, False, 3, 12),  # one line a business day
            (bank, product, False, 6, 36),
            (world["operator_app"], product, True, 1, 4),
        ]
    )
    with engine.connect() as conn:
        days = conn.exec_driver_sql(
            "SELECT day, calls, rows FROM usage_ledger WHERE free = false ORDER BY day"
        ).all()
    after = (boundary + timedelta(hours=8)).date()
    assert [(str(d), c, r) for d, c, r in days] == [
        (str(after - timedelta(days=1)), 3, 12),
        (str(after), 6, 36),
    ]
    for day in (after - timedelta(days=1), after):
        month = day.strftime("%Y-%m")
        assert statements.reconcile(engine, month) == []
        first, until = statements.month_of(month)
        with engine.connect() as conn:
            assert statements.ledger_units(conn, first, until) == statements.audit_units(
                conn, first, until
            )


def test_reconcile_reads_the_ledger_and_the_log_at_one_moment(
    client: TestClient,
    world: dict,  # noqa: F811
    engine: Engine,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A call metered while a month is reconciled (between the ledger's read and the log's
    count) is in neither: no difference that a second look would not find."""
    made = setup_operation(client, world)
    grant_id = bind(client, world, made, world["bank"], "industry")
    answer = client.get(
        "/api/v1/datasets/credit-records/records?limit=2", headers=world["bank_token"]
    )
    assert answer.status_code == 200, answer.text
    month = statements.current_month()
    read_ledger = statements.ledger_units

    def ledger_then_a_call(*args: Any, **kwargs: Any) -> list[statements.Units]:
        units = read_ledger(*args, **kwargs)
        append(engine, [_event(client_id=world["bank"], grant_id=grant_id, row_count=3)])
        return units

    monkeypatch.setattr(statements, "ledger_units", ledger_then_a_call)
    assert statements.reconcile(engine, month) == []
    monkeypatch.setattr(statements, "ledger_units", read_ledger)
    assert statements.reconcile(engine, month) == []
    (line,) = statements.compute(engine, month)
    assert line["calls"] == 2 and line["rows"] == 2 + 3
