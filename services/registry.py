"""Importing a service package (`opengate services import PATH [--replace]`) and reading
the published services back.

A service's catalog entry is a `datasets` row of kind `service`: listed, searched, applied
for and granted as a dataset is; its declaration lives in `services`, one row per version.
Reimporting an unchanged `service.json` changes nothing; a changed one needs `--replace`
and becomes the next version (grants stay, the enforcement reads the new declaration on
its next catalog refresh).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from catalog.models import Dataset
from kernel.clock import utcnow
from services.models import ServiceVersion
from services.package import FILE, ServicePackageError, ServiceSpec, read_service

KIND = "service"


@dataclass(frozen=True)
class ServiceImport:
    service_id: str
    version: int
    unchanged: bool
    parameters: int
    paths: int


def _descriptor(path: Path) -> Path:
    return path / FILE if path.is_dir() else path


def import_service(engine: Engine, path: Path, *, replace: bool = False) -> ServiceImport:
    """Check and publish the service package at `path`; ServicePackageError (nothing
    changed) on bad input or when the name is taken without `replace`."""
    spec = read_service(path)
    raw = _descriptor(path).read_bytes()
    digest = hashlib.sha256(raw).hexdigest()
    doc = json.loads(raw.decode("utf-8-sig"))
    with Session(engine) as session:
        dataset = session.get(Dataset, spec.name)
        latest = None
        if dataset is not None:
            if dataset.kind != KIND:
                raise ServicePackageError(f"名称 {spec.name} 已是一个数据集，接口服务须另取名称")
            latest = session.exec(
                select(ServiceVersion)
                .where(ServiceVersion.service_id == spec.name)
                .order_by(ServiceVersion.version.desc())  # type: ignore[attr-defined]
            ).first()
            if latest is not None and latest.source_sha256 == digest:
                return _result(spec, latest.version, unchanged=True)
            if not replace:
                raise ServicePackageError(
                    f"接口服务 {spec.name} 已存在；要发布新版本请加 --replace"
                )
        version = (latest.version if latest else 0) + 1
        now = utcnow()
        if dataset is None:
            dataset = Dataset(
                id=spec.name,
                title=spec.title,
                open_type=spec.open_type.value,
                kind=KIND,
                level=spec.level,
                current_version=version,
                row_count=0,
                created_at=now,
            )
        dataset.title = spec.title
        dataset.description = spec.description
        dataset.publisher = spec.publisher
        dataset.theme = spec.theme
        dataset.keywords = list(spec.keywords)
        dataset.open_type = spec.open_type.value
        dataset.level = spec.level
        dataset.zone = spec.zone
        dataset.current_version = version
        dataset.search_text = " ".join(
            [spec.name, spec.title, spec.description, spec.publisher, spec.theme, *spec.keywords]
        ).lower()
        dataset.updated_at = now
        session.add(dataset)
        session.add(
            ServiceVersion(
                service_id=spec.name,
                version=version,
                spec=doc,
                source_sha256=digest,
                imported_at=now,
            )
        )
        session.commit()
    return _result(spec, version, unchanged=False)


def _result(spec: ServiceSpec, version: int, *, unchanged: bool) -> ServiceImport:
    return ServiceImport(spec.name, version, unchanged, len(spec.parameters), len(spec.fields))
