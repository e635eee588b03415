"""Catalog reads: search, detail and the DCAT view. Keyword-only functions, session first."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlmodel import Session, col, func, select

from catalog.models import Dataset, DatasetField, OpenType
from kernel.clock import iso_utc
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


DCAT_CONTEXT = {
    "dcat": "http://www.w3.org/ns/dcat#",
    "dct": "http://purl.org/dc/terms/",
    "foaf": "http://xmlns.com/foaf/0.1/",
    "xsd": "http://www.w3.org/2001/XMLSchema#",
}


def _described(d: Dataset) -> dict[str, Any]:
    """What a DCAT dataset and a data service both say of themselves."""
    return {
        "dct:identifier": d.id,
        "dct:title": {"@value": d.title, "@language": "zh-CN"},
        "dct:description": {"@value": d.description, "@language": "zh-CN"},
        "dct:publisher": {"@type": "foaf:Organization", "foaf:name": d.publisher},
        "dcat:keyword": d.keywords,
        "dct:accessRights": d.open_type,
    }


def dcat_catalog(session: Session, *, base_url: str) -> dict[str, Any]:
    """The public catalog as DCAT 2 in JSON-LD (closed datasets are not published)."""
    datasets = session.exec(
        select(Dataset).where(Dataset.open_type != OpenType.closed.value).order_by(Dataset.id)
    ).all()
    api = f"{base_url}/api/v1/datasets"
    entries = []
    services = []
    for d in datasets:
        if d.kind == "service":  # a department's API: a data service, nothing to download
            services.append(
                {
                    "@id": f"{base_url}/api/v1/services/{d.id}",
                    "@type": "dcat:DataService",
                    **_described(d),
                    "dcat:endpointURL": {"@id": f"{base_url}/api/v1/services/{d.id}/call"},
                    "dcat:endpointDescription": {"@id": f"{base_url}/api/v1/services/{d.id}"},
                }
            )
            continue
        distributions = [
            {
                "@type": "dcat:Distribution",
                "dct:format": fmt,
                "dcat:mediaType": media,
                "dcat:accessURL": {"@id": f"{api}/{d.id}/records?format={fmt}"},
                "dcat:downloadURL": {"@id": f"{api}/{d.id}/export?format={fmt}"}
                if fmt != "json"
                else None,
            }
            for fmt, media in (
                ("json", "application/json"),
                ("csv", "text/csv"),
                ("jsonl", "application/jsonl"),
            )
        ]
        for dist in distributions:
            if dist["dcat:downloadURL"] is None:
                del dist["dcat:downloadURL"]
        entries.append(
            {
                "@id": f"{api}/{d.id}",
                "@type": "dcat:Dataset",
                **_described(d),
                "dcat:theme": d.theme,
                "dct:license": d.license,
                "dct:accrualPeriodicity": d.update_frequency,
                "dct:issued": {"@value": iso_utc(d.created_at), "@type": "xsd:dateTime"},
                "dct:modified": {"@value": iso_utc(d.updated_at), "@type": "xsd:dateTime"},
                "dcat:distribution": distributions,
            }
        )
    return {
        "@context": DCAT_CONTEXT,
        "@id": f"{base_url}/api/v1/catalog.jsonld",
        "@type": "dcat:Catalog",
        "dct:title": {"@value": "公共数据开放目录", "@language": "zh-CN"},
        "dcat:dataset": entries,
        "dcat:service": services,
    }


__all__ = [
    "MAX_PER_PAGE",
    "CatalogFilter",
    "dataset_fields",
    "dcat_catalog",
    "get_dataset",
    "search_datasets",
]
