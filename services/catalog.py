"""An interface service as the enforcement door sees it: the catalog attributes a dataset
has (id, open type, level, version, fields, modes), where the fields are the declared
response paths — so `policies.decide` plans a `call` exactly as it plans a read of records,
path for field — and the parsed declaration beside them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlmodel import Session, select

from catalog.hosted import HostedField
from catalog.models import Dataset
from services.models import ServiceVersion
from services.package import ServiceSpec, parse_service

SERVICE_MODES = ("call",)


@dataclass(frozen=True, slots=True)
class HostedService:
    id: str
    title: str
    open_type: str
    level: int
    version: int
    row_count: int
    updated_at: datetime
    fields: tuple[HostedField, ...]  # one per declared response path, named by the path
    by_name: dict[str, HostedField]
    spec: ServiceSpec

    @property
    def subject_field(self) -> HostedField | None:
        return None  # a person's own-rows consent does not reach a department's API

    @property
    def modes(self) -> tuple[str, ...]:
        return SERVICE_MODES


def load_service(session: Session, dataset: Dataset) -> HostedService:
    """`HostedCatalog`'s loader for entries of kind `service`."""
    row = session.exec(
        select(ServiceVersion).where(
            ServiceVersion.service_id == dataset.id,
            ServiceVersion.version == dataset.current_version,
        )
    ).one()
    spec = parse_service(row.spec)
    fields = tuple(
        HostedField(
            name=f.path,
            type=f.type,
            title=f.title,
            description=f.description,
            level=f.level,
            pii=f.pii.value,
            subject_key=False,
            primary_key=False,
            has_nulls=True,
        )
        for f in spec.fields
    )
    return HostedService(
        id=dataset.id,
        title=dataset.title,
        open_type=dataset.open_type,
        level=dataset.level,
        version=dataset.current_version,
        row_count=0,
        updated_at=dataset.updated_at,
        fields=fields,
        by_name={f.name: f for f in fields},
        spec=spec,
    )
