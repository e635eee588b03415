"""Newest-first keyset lists of one participation table (reports, demands)."""

from __future__ import annotations

from typing import Any, TypeVar

from sqlalchemy.engine import Engine
from sqlmodel import Session, SQLModel, col, select

M = TypeVar("M", bound=SQLModel)


def newest_first(
    engine: Engine, model: type[M], *, equal: dict[str, Any], after: int | None, limit: int
) -> list[M]:
    """Rows whose columns equal `equal` (None values ignored), by id descending, below
    `after` (the last id of the page before)."""
    query = select(model)
    for name, value in equal.items():
        if value is not None:
            query = query.where(col(getattr(model, name)) == value)
    ident = col(model.id)  # type: ignore[attr-defined]
    if after is not None:
        query = query.where(ident < after)
    with Session(engine) as session:
        return list(session.exec(query.order_by(ident.desc()).limit(limit)))
