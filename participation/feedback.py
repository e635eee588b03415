"""纠错: a report about a field or a record of a dataset, anonymous or signed in, and its
workflow `submitted → accepted | rejected (reason) → fixed (in version N)`, moved on by a
`data_admin`."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, func, select

from catalog.hosted import HostedDataset
from catalog.values import parse_value, to_storage
from kernel.clock import utcnow
from kernel.problems import Problem, not_found
from participation.listing import newest_first
from participation.models import Feedback, FeedbackStatus
from participation.quoting import hide_quoted
from participation.texts import text

MESSAGE_LIMIT = 2000
RECORD_LIMIT = 200
REASON_LIMIT = 1000
# Per hour: an address without an account, and an account.
ANONYMOUS_PER_HOUR = 10
ACCOUNT_PER_HOUR = 60

STATUS_LABELS = {
    FeedbackStatus.submitted: "已提交",
    FeedbackStatus.accepted: "已受理",
    FeedbackStatus.rejected: "未采纳",
    FeedbackStatus.fixed: "已修正",
}


@dataclass(frozen=True, slots=True)
class Reporter:
    """Who reports: an account's username ("" for nobody) and the keyed digest of the
    address the report came from."""

    username: str
    source: str


def _sensitive_values(engine: Engine, hosted: HostedDataset, key: Any) -> list[str] | None:
    """The level-3/4 values of the record with primary key `key` as text, or None when
    there is no such record."""
    table = hosted.table
    sensitive = [f.name for f in hosted.fields if f.level >= 3]
    pk = table.c[hosted.primary_key]
    columns = [table.c[n] for n in sensitive] or [pk]
    with engine.connect() as conn:
        row = conn.execute(sa.select(*columns).where(pk == key).limit(1)).first()
    if row is None:
        return None
    if not sensitive:
        return []
    return [v.isoformat() if hasattr(v, "isoformat") else str(v) for v in row if v is not None]


def _record_key(hosted: HostedDataset, record: str, dialect: str) -> Any:
    key_field = hosted.by_name[hosted.primary_key]
    if key_field.level >= 3:
        # Answering "no such record" would tell whether a hidden key exists.
        raise Problem(
            400,
            "field_not_permitted",
            f"数据集 {hosted.id} 的主键不公开，不能按记录主键纠错；请在说明中描述有误的记录",
            parameter="record",
        )
    try:
        return to_storage(key_field.type, parse_value(key_field.type, record), dialect)
    except ValueError:
        raise Problem(
            400,
            "invalid_parameter",
            f"记录主键“{record}”不是有效的{key_field.title or key_field.name}",
            parameter="record",
        ) from None


def _admit(session: Session, reporter: Reporter) -> None:
    since = utcnow() - timedelta(hours=1)
    if reporter.username:
        who, limit = col(Feedback.reporter) == reporter.username, ACCOUNT_PER_HOUR
    else:
        who, limit = col(Feedback.source) == reporter.source, ANONYMOUS_PER_HOUR
    count = session.exec(select(func.count()).where(who, col(Feedback.created_at) >= since)).one()
    if count >= limit:
        hint = "" if reporter.username else "，登录后可提交更多"
        raise Problem(
            429,
            "rate_limited",
            f"纠错提交过于频繁：每小时最多 {limit} 条{hint}，请稍后再试",
            headers={"Retry-After": "3600"},
        )


def submit(
    engine: Engine,
    hosted: HostedDataset,
    *,
    field: str | None,
    record: str | None,
    message: str | None,
    reporter: Reporter,
    digest: Callable[[str], str],
) -> Feedback:
    """Check everything, then store one report; a refusal stores nothing."""
    field_name = text("field", "字段", field, limit=63, required=False) or None
    if field_name is not None and field_name not in hosted.by_name:
        raise Problem(
            400,
            "invalid_parameter",
            f"数据集 {hosted.id} 没有字段“{field_name}”",
            parameter="field",
        )
    record_text = text("record", "记录主键", record, limit=RECORD_LIMIT, required=False) or None
    body = text("message", "问题说明", message, limit=MESSAGE_LIMIT)
    redacted = False
    if record_text is not None:
        values = _sensitive_values(
            engine, hosted, _record_key(hosted, record_text, engine.dialect.name)
        )
        if values is None:
            raise not_found(f"数据集 {hosted.id} 中没有主键为“{record_text}”的记录")
        body, redacted = hide_quoted(body, values, digest)
    with Session(engine) as session:
        _admit(session, reporter)
        row = Feedback(
            dataset_id=hosted.id,
            version=hosted.version,
            field=field_name,
            record=record_text,
            message=body,
            redacted=redacted,
            reporter=reporter.username,
            source=reporter.source,
        )
        session.add(row)
        session.commit()
        session.refresh(row)
        return row


def _handled(session: Session, feedback_id: int) -> Feedback:
    row = session.get(Feedback, feedback_id)
    if row is None:
        raise not_found(f"纠错 {feedback_id} 不存在")
    return row


def _move(
    engine: Engine,
    feedback_id: int,
    *,
    allowed_from: Sequence[str],
    to: FeedbackStatus,
    by: str,
    response: str | None = None,
    fixed_in_version: int | None = None,
) -> Feedback:
    with Session(engine) as session:
        row = _handled(session, feedback_id)
        if row.status not in allowed_from:
            raise Problem(
                409,
                "conflict",
                f"纠错 {feedback_id} 当前为“{STATUS_LABELS[FeedbackStatus(row.status)]}”，"
                f"不能改为“{STATUS_LABELS[to]}”",
            )
        now = utcnow()
        row.status = to
        if response is not None:
            row.response = response
        if fixed_in_version is not None:
            row.fixed_in_version = fixed_in_version
        if row.handled_at is None:
            row.handled_at = now
            row.handled_by = by
        row.updated_at = now
        session.add(row)
        session.commit()
        session.refresh(row)
        return row


def accept(engine: Engine, feedback_id: int, *, by: str, note: str | None) -> Feedback:
    response = text("response", "受理说明", note, limit=REASON_LIMIT, required=False)
    return _move(
        engine,
        feedback_id,
        allowed_from=(FeedbackStatus.submitted,),
        to=FeedbackStatus.accepted,
        by=by,
        response=response,
    )


def reject(engine: Engine, feedback_id: int, *, by: str, reason: str | None) -> Feedback:
    response = text("reason", "不予采纳的理由", reason, limit=REASON_LIMIT)
    return _move(
        engine,
        feedback_id,
        allowed_from=(FeedbackStatus.submitted, FeedbackStatus.accepted),
        to=FeedbackStatus.rejected,
        by=by,
        response=response,
    )


def mark_fixed(
    engine: Engine,
    feedback_id: int,
    *,
    by: str,
    version: int,
    current_version: Callable[[str], int | None],
) -> Feedback:
    """Fixed in `version`: a published version of the dataset newer than the reported one."""
    with Session(engine) as session:
        row = _handled(session, feedback_id)
    latest = current_version(row.dataset_id)
    reported = row.version or 0
    if latest is None or not reported < version <= latest:
        raise Problem(
            400,
            "invalid_parameter",
            f"修正版本应为已发布且晚于纠错时版本（{reported}）的版本号，当前最新版本为 {latest}",
            parameter="version",
        )
    return _move(
        engine,
        feedback_id,
        allowed_from=(FeedbackStatus.accepted,),
        to=FeedbackStatus.fixed,
        by=by,
        fixed_in_version=version,
    )


def listing(
    engine: Engine,
    *,
    status: str | None = None,
    reporter: str | None = None,
    dataset_id: str | None = None,
    after: int | None = None,
    limit: int = 50,
) -> list[Feedback]:
    equal = {"status": status, "reporter": reporter, "dataset_id": dataset_id}
    return newest_first(engine, Feedback, equal=equal, after=after, limit=limit)


def public_view(row: Feedback) -> dict[str, Any]:
    """A report as its reporter and the administrators see it (its message is stored
    with level-3/4 quotes already hidden)."""
    return {
        "id": row.id,
        "dataset_id": row.dataset_id,
        "version": row.version,
        "field": row.field,
        "record": row.record,
        "message": row.message,
        "redacted": row.redacted,
        "reporter": row.reporter or None,
        "status": row.status,
        "status_label": STATUS_LABELS[FeedbackStatus(row.status)],
        "response": row.response or None,
        "fixed_in_version": row.fixed_in_version,
        "created_at": row.created_at.isoformat(),
        "handled_at": row.handled_at.isoformat() if row.handled_at else None,
    }
