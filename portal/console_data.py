"""What the developer center shows, read for one account: its apps' applications and
grants, each grant's use today and privacy budget, and the use per day."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlmodel import Session, col, func, select

from auth.models import App, User
from catalog.models import Dataset
from kernel.clock import aware, utcnow
from operation.models import Product, Scenario
from policies.models import Application, Grant, GrantUsage
from policies.quotas import BUSINESS_DAY  # quotas count by the bureau's day (UTC+8)

USAGE_DAYS = 30

STATUS_LABELS = {
    "pending": "待审核",
    "approved": "已批准",
    "rejected": "未通过",
    "active": "生效中",
    "suspended": "已暂停",
    "revoked": "已撤销",
    "expired": "已到期",
}
MODE_LABELS = {"records": "明细查询", "aggregate": "统计分析", "verify": "核验", "call": "接口调用"}


def modes_of(hosted: Any) -> dict[str, str]:
    """The modes a grant on this dataset (records, aggregate, verify) or interface service
    (call) may name, with their labels; none before one is chosen."""
    return {m: MODE_LABELS[m] for m in (hosted.modes if hosted is not None else ())}


QUOTA_LABELS = {
    "requests_per_day": ("每日请求", "requests"),
    "rows_per_day": ("每日行数", "rows"),
    "verifies_per_day": ("每日核验", "verifies"),
}


def business_day(now: datetime | None = None) -> date:
    return ((now or datetime.now(UTC)) + BUSINESS_DAY).date()


def my_apps(db: Session, user: User) -> dict[str, App]:
    rows = db.exec(select(App).where(App.owner_id == user.id).order_by(col(App.created_at)))
    return {a.client_id: a for a in rows}


def titles(db: Session, ids: set[str]) -> dict[str, str]:
    if not ids:
        return {}
    rows = db.exec(select(Dataset.id, Dataset.title).where(col(Dataset.id).in_(ids)))
    return dict(rows.all())


@dataclass(frozen=True)
class QuotaUse:
    label: str
    used: int
    limit: int


def applications(db: Session, user: User) -> list[dict[str, Any]]:
    rows = db.exec(
        select(Application)
        .where(Application.applicant_id == user.id)
        .order_by(col(Application.id).desc())
    ).all()
    grant_ids = {r.grant_id for r in rows if r.grant_id is not None}
    grants = (
        {g.id: g for g in db.exec(select(Grant).where(col(Grant.id).in_(grant_ids)))}
        if grant_ids
        else {}
    )
    names = titles(db, {r.dataset_id for r in rows})
    apps = my_apps(db, user)
    scenario_ids = {r.scenario_id for r in rows if r.scenario_id is not None}
    product_ids = {r.product_id for r in rows if r.product_id is not None}
    scenarios = {
        s.id: s for s in db.exec(select(Scenario).where(col(Scenario.id).in_(scenario_ids)))
    }
    products = {p.id: p for p in db.exec(select(Product).where(col(Product.id).in_(product_ids)))}
    return [
        {
            "row": r,
            "dataset_title": names.get(r.dataset_id, r.dataset_id),
            "app_name": apps[r.client_id].name if r.client_id in apps else r.client_id,
            "status_label": STATUS_LABELS.get(r.status, r.status),
            "modes": [MODE_LABELS.get(m, m) for m in r.modes],
            "grant": grants.get(r.grant_id) if r.grant_id is not None else None,
            "scenario": scenarios.get(r.scenario_id),
            "product": products.get(r.product_id),
        }
        for r in rows
    ]


def grant_status(grant: Grant, now: datetime) -> str:
    if grant.status == "active" and aware(grant.expires_at) <= now:
        return "expired"
    return grant.status


def grants(db: Session, user: User) -> list[dict[str, Any]]:
    apps = my_apps(db, user)
    if not apps:
        return []
    rows = db.exec(
        select(Grant).where(col(Grant.client_id).in_(set(apps))).order_by(col(Grant.id).desc())
    ).all()
    today = business_day()
    usage = {
        u.grant_id: u
        for u in db.exec(
            select(GrantUsage).where(
                col(GrantUsage.grant_id).in_({g.id for g in rows}), GrantUsage.day == today
            )
        )
    }
    names = titles(db, {g.dataset_id for g in rows})
    now = utcnow()
    answer = []
    for g in rows:
        used = usage.get(g.id)  # type: ignore[arg-type]
        quotas = [
            QuotaUse(label, getattr(used, counter, 0) if used else 0, int(g.quotas[name]))
            for name, (label, counter) in QUOTA_LABELS.items()
            if name in g.quotas
        ]
        status = grant_status(g, now)
        answer.append(
            {
                "row": g,
                "app_name": apps[g.client_id].name,
                "dataset_title": names.get(g.dataset_id, g.dataset_id),
                "status": status,
                "status_label": STATUS_LABELS.get(status, status),
                "modes": [MODE_LABELS.get(m, m) for m in g.modes],
                "quotas": quotas,
                "requests_today": used.requests if used else 0,
                "rows_today": used.rows if used else 0,
                "epsilon_left": None
                if g.epsilon is None
                else max(0.0, round(g.epsilon - g.epsilon_spent, 6)),
            }
        )
    return answer


def usage_by_day(db: Session, user: User, days: int = USAGE_DAYS) -> list[dict[str, Any]]:
    """Requests and rows a day, over every grant of the account's apps, the last `days`
    business days (days without use included, as zero)."""
    apps = my_apps(db, user)
    today = business_day()
    first = today - timedelta(days=days - 1)
    counts: dict[date, tuple[int, int]] = {}
    if apps:
        grant_ids = select(Grant.id).where(col(Grant.client_id).in_(set(apps)))
        rows = db.exec(
            select(GrantUsage.day, func.sum(GrantUsage.requests), func.sum(GrantUsage.rows))
            .where(col(GrantUsage.grant_id).in_(grant_ids), GrantUsage.day >= first)
            .group_by(GrantUsage.day)
        ).all()
        counts = {day: (int(r or 0), int(n or 0)) for day, r, n in rows}
    return [
        {
            "day": (first + timedelta(days=i)).isoformat(),
            "requests": counts.get(first + timedelta(days=i), (0, 0))[0],
            "rows": counts.get(first + timedelta(days=i), (0, 0))[1],
        }
        for i in range(days)
    ]


def overview(db: Session, user: User) -> dict[str, Any]:
    apps = my_apps(db, user)
    mine = applications(db, user)
    my_grants = grants(db, user)
    usage = usage_by_day(db, user, days=7)
    return {
        "app_count": len(apps),
        "pending": sum(1 for a in mine if a["row"].status == "pending"),
        "active_grants": sum(1 for g in my_grants if g["status"] == "active"),
        "requests_week": sum(d["requests"] for d in usage),
        "recent_applications": mine[:5],
    }
