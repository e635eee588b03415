"""Catalog reads: search and detail (the DCAT-AP graph is in catalog.dcat).
Keyword-only functions, session first."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlmodel import Session, col, func, select

from catalog.models import Dataset, DatasetField, OpenType
from kernel.problems import not_found

MAX_PER_PAGE = 100


@dataclass(frozen=True, slots=True)
class CatalogFilter:
    q: str | None = None
    theme: str | None = None
    publisher: str | None = None
    open_type: OpenType | None = None
    level: int | None = None
    zone: str | None = None


def _like_pattern(text: str) -> str:
    escaped = text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def conditions(where: CatalogFilter, *, include_closed: bool) -> list[Any]:
    """The WHERE terms of a catalog search (the portal's facet counts use them too)."""
    terms: list[Any] = []
    if where.q:
        terms.append(col(Dataset.search_text).like(_like_pattern(where.q), escape="\\"))
    if where.theme:
        terms.append(Dataset.theme == where.theme)
    if where.publisher:
        terms.append(Dataset.publisher == where.publisher)
    if where.open_type:
        terms.append(Dataset.open_type == where.open_type.value)
    if where.level:
        terms.append(Dataset.level == where.level)
    if where.zone:
        terms.append(Dataset.zone == where.zone)
    if not include_closed:
        terms.append(Dataset.open_type != OpenType.closed.value)
    return terms


def search_datasets(
    session: Session,
    *,
    where: CatalogFilter,
    page: int,
    per_page: int,
    include_closed: bool,
) -> tuple[int, list[Dataset]]:
    terms = conditions(where, include_closed=include_closed)
    total = session.exec(select(func.count()).select_from(Dataset).where(*terms)).one()
    rows = session.exec(
        select(Dataset)
        .where(*terms)
        .order_by(col(Dataset.updated_at).desc(), Dataset.id)
        .offset((page - 1) * per_page)
        .limit(per_page)
    ).all()
    return total, list(rows)


def get_dataset(session: Session, *, dataset_id: str, include_closed: bool) -> Dataset:
    dataset = session.get(Dataset, dataset_id)
    if dataset is None or (dataset.open_type == OpenType.closed and not include_closed):
        # A closed dataset the caller may not see does not exist for them.
        raise not_found(f"数据集 {dataset_id} 不存在")
    return dataset


def dataset_fields(session: Session, *, dataset: Dataset) -> list[DatasetField]:
    return list(
        session.exec(
            select(DatasetField)
            .where(
                DatasetField.dataset_id == dataset.id,
                DatasetField.version == dataset.current_version,
            )
            .order_by(DatasetField.position)
        ).all()
    )


__all__ = [
    "MAX_PER_PAGE",
    "CatalogFilter",
    "dataset_fields",
    "get_dataset",
    "search_datasets",
]
