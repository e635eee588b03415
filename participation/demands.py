"""数据需求: a request for data not opened yet, its public list, seconding (+1 once per
account, never one's own), and its workflow `open → answered → satisfied (dataset) |
declined (reason)`, moved on by a `data_admin`."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, func, select

from kernel.clock import utcnow
from kernel.problems import Problem, not_found
from participation.listing import newest_first
from participation.models import Demand, DemandSecond, DemandStatus
from participation.texts import text

TITLE_LIMIT = 100
DESCRIPTION_LIMIT = 2000
DEPARTMENT_LIMIT = 100
SCENARIO_LIMIT = 1000
RESPONSE_LIMIT = 1000
PER_ACCOUNT_PER_DAY = 20

STATUS_LABELS = {
    DemandStatus.open: "待答复",
    DemandStatus.answered: "已答复",
    DemandStatus.satisfied: "已满足",
    DemandStatus.declined: "未能满足",
}
CLOSED = (DemandStatus.satisfied, DemandStatus.declined)


def create(
    engine: Engine,
    *,
    requester: str,
    title: str | None,
    description: str | None,
    department: str | None,
    scenario: str | None,
) -> Demand:
    row = Demand(
        title=text("title", "需求名称", title, limit=TITLE_LIMIT),
        description=text("description", "需求描述", description, limit=DESCRIPTION_LIMIT),
        department=text(
            "department", "期望提供部门", department, limit=DEPARTMENT_LIMIT, required=False
        ),
        scenario=text("scenario", "应用场景", scenario, limit=SCENARIO_LIMIT, required=False),
        requester=requester,
    )
    with Session(engine) as session:
        since = utcnow() - timedelta(days=1)
        count = session.exec(
            select(func.count()).where(
                col(Demand.requester) == requester, col(Demand.created_at) >= since
            )
        ).one()
        if count >= PER_ACCOUNT_PER_DAY:
            raise Problem(
                429,
                "rate_limited",
                f"每个账号每天最多提出 {PER_ACCOUNT_PER_DAY} 条数据需求，请明天再试",
                headers={"Retry-After": "3600"},
            )
        session.add(row)
        session.commit()
        session.refresh(row)
        return row


def get(engine: Engine, demand_id: int) -> Demand:
    with Session(engine) as session:
        row = session.get(Demand, demand_id)
    if row is None:
        raise not_found(f"数据需求 {demand_id} 不存在")
    return row


def listing(
    engine: Engine,
    *,
    status: str | None = None,
    requester: str | None = None,
    after: int | None = None,
    limit: int = 20,
) -> list[Demand]:
    equal = {"status": status, "requester": requester}
    return newest_first(engine, Demand, equal=equal, after=after, limit=limit)


def seconded_by(engine: Engine, account: str, demand_ids: list[int]) -> set[int]:
    if not demand_ids:
        return set()
    with Session(engine) as session:
        rows = session.exec(
            select(DemandSecond.demand_id).where(
                col(DemandSecond.account) == account, col(DemandSecond.demand_id).in_(demand_ids)
            )
        )
        return set(rows)


def second(engine: Engine, demand_id: int, *, account: str) -> Demand:
    """+1 from `account`, once; the count goes up in the same transaction."""
    with Session(engine) as session:
        row = session.get(Demand, demand_id)
        if row is None:
            raise not_found(f"数据需求 {demand_id} 不存在")
        if row.requester == account:
            raise Problem(409, "conflict", "不能附议自己提出的数据需求")
        if row.status in CLOSED:
            raise Problem(409, "conflict", "该数据需求已办结，不再接受附议")
        session.add(DemandSecond(demand_id=demand_id, account=account))
        row.seconds += 1
        session.add(row)
        try:
            session.commit()
        except IntegrityError:
            session.rollback()
            raise Problem(409, "conflict", "您已附议过该数据需求") from None
        session.refresh(row)
        return row


def _move(
    engine: Engine,
    demand_id: int,
    *,
    to: DemandStatus,
    by: str,
    response: str,
    dataset_id: str | None = None,
) -> Demand:
    with Session(engine) as session:
        row = session.get(Demand, demand_id)
        if row is None:
            raise not_found(f"数据需求 {demand_id} 不存在")
        if row.status in CLOSED:
            raise Problem(
                409,
                "conflict",
                f"数据需求 {demand_id} 已“{STATUS_LABELS[DemandStatus(row.status)]}”，不能再更改",
            )
        now = utcnow()
        row.status = to
        row.response = response
        if row.answered_at is None:
            row.answered_at = now
            row.answered_by = by
        if to in CLOSED:
            row.closed_at = now
        if dataset_id is not None:
            row.dataset_id = dataset_id
        row.updated_at = now
        session.add(row)
        session.commit()
        session.refresh(row)
        return row


def answer(engine: Engine, demand_id: int, *, by: str, response: str | None) -> Demand:
    reply = text("response", "答复内容", response, limit=RESPONSE_LIMIT)
    return _move(engine, demand_id, to=DemandStatus.answered, by=by, response=reply)


def satisfy(
    engine: Engine,
    demand_id: int,
    *,
    by: str,
    dataset_id: str | None,
    response: str | None,
    published: Callable[[str], bool],
) -> Demand:
    """Satisfied by an opened dataset, which must be published and not closed."""
    named = text("dataset_id", "满足需求的数据集", dataset_id, limit=64)
    if not published(named):
        raise Problem(
            400,
            "invalid_parameter",
            f"数据集 {named} 不存在或未开放，不能用来满足需求",
            parameter="dataset_id",
        )
    reply = text("response", "答复内容", response, limit=RESPONSE_LIMIT, required=False)
    return _move(
        engine,
        demand_id,
        to=DemandStatus.satisfied,
        by=by,
        response=reply or f"已开放数据集 {named}",
        dataset_id=named,
    )


def decline(engine: Engine, demand_id: int, *, by: str, reason: str | None) -> Demand:
    why = text("reason", "未能满足的理由", reason, limit=RESPONSE_LIMIT)
    return _move(engine, demand_id, to=DemandStatus.declined, by=by, response=why)


def public_view(row: Demand) -> dict[str, Any]:
    """A demand as everyone sees it: who asked is shown to nobody (no per-person figure)."""
    return {
        "id": row.id,
        "title": row.title,
        "description": row.description,
        "department": row.department or None,
        "scenario": row.scenario or None,
        "status": row.status,
        "status_label": STATUS_LABELS[DemandStatus(row.status)],
        "response": row.response or None,
        "dataset_id": row.dataset_id,
        "seconds": row.seconds,
        "created_at": row.created_at.isoformat(),
        "answered_at": row.answered_at.isoformat() if row.answered_at else None,
    }
