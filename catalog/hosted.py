"""Hosted data: one typed table per dataset version, and the in-memory description of a
published version that every data request works from.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from catalog.models import Dataset, DatasetField, DatasetVersion, FieldType

log = logging.getLogger("opengate.catalog")
# While the database does not answer, how often a worker tries it again for a dataset it
# still serves from its last good read (instead of on every request).
RETRY_SECONDS = 1.0


class FieldLike(Protocol):
    name: str
    type: FieldType | str
    subject_key: bool


# Beside a subject_key column, the keyed HMAC of its value: a person's rows are found by
# the HMAC of their identity number, so the gateway never needs the number itself.
SUBJECT_COLUMN = "_subject_hmac"
# Beside the fields of a dataset that is not open to all, a row key: a random number,
# unique in the version, that orders pages when the caller does not receive the primary
# key in clear (ordered by a hidden key, the pages would tell how the hidden values sort).
# Never returned; a cursor that carries it is sealed. Versions imported before it existed
# have none and order by the key.
ROW_COLUMN = "_row"


def table_name(dataset_id: str, version: int) -> str:
    # Dataset ids are [a-z0-9-]; swapping "-" for "_" keeps distinct ids distinct.
    return f"data_{dataset_id.replace('-', '_')}_v{version}"


def _column_type(ftype: FieldType | str, dialect: str) -> sa.types.TypeEngine:
    ftype = FieldType(ftype)
    if ftype is FieldType.string:
        return sa.Text()
    if ftype is FieldType.integer:
        return sa.BigInteger() if dialect != "sqlite" else sa.Integer()
    if ftype is FieldType.number:
        return sa.Double()
    if ftype is FieldType.boolean:
        return sa.Boolean(create_constraint=False)
    if dialect == "sqlite":  # ISO-8601 text; see catalog.values
        return sa.Text()
    return sa.Date() if ftype is FieldType.date else sa.DateTime()


def build_table(
    name: str, fields: Sequence[FieldLike], dialect: str, *, row_key: bool = False
) -> sa.Table:
    """A Core table for a hosted version, on a private MetaData: Alembic never sees it."""
    columns = [sa.Column(f.name, _column_type(f.type, dialect)) for f in fields]
    if any(f.subject_key for f in fields):
        columns.append(sa.Column(SUBJECT_COLUMN, sa.String(64)))
    if row_key:
        columns.append(sa.Column(ROW_COLUMN, sa.BigInteger()))
    return sa.Table(name, sa.MetaData(), *columns)


@dataclass(frozen=True, slots=True)
class HostedField:
    name: str
    type: FieldType
    title: str
    description: str
    level: int
    pii: str
    subject_key: bool
    primary_key: bool
    has_nulls: bool


TABLE_MODES = ("records", "aggregate", "verify")
# What `HostedCatalog` hands out for a catalog entry of another kind (an interface
# service: services.catalog.HostedService), loaded by the function its package registers:
# the catalog attributes of a HostedDataset (id … fields, by_name, subject_field, modes),
# no table — the enforcement door refuses every table mode before one is needed.
KindLoader = Callable[[Session, Dataset], Any]


@dataclass(frozen=True, slots=True)
class HostedDataset:
    """A published version as a request sees it: metadata, fields and the table."""

    id: str
    title: str
    open_type: str
    level: int
    version: int
    row_count: int
    updated_at: datetime
    fields: tuple[HostedField, ...]
    by_name: dict[str, HostedField]
    primary_key: str
    table: sa.Table

    @property
    def row_key(self) -> bool:
        return ROW_COLUMN in self.table.c

    @property
    def subject_field(self) -> HostedField | None:
        return next((f for f in self.fields if f.subject_key), None)

    @property
    def modes(self) -> tuple[str, ...]:
        """The access modes a grant on it may name (an interface service has `call`)."""
        return TABLE_MODES


class HostedCatalog:
    """Published versions, cached per process for `ttl` seconds.

    A data request must not pay a metadata query. After `--replace` another worker may
    serve the previous version for up to `ttl` seconds; that table is kept (only versions
    two behind are dropped), so the answer is always one complete version.

    When the database does not answer, a dataset read less than `stale` seconds ago is
    served as last read (its data queries fail on their own if the outage lasts), and the
    database is asked again once a second, not on every request; past `stale`, or for a
    dataset never read, the error is raised (the gateway answers 503).
    """

    def __init__(self, engine: Engine, *, ttl: float = 2.0, stale: float = 60.0) -> None:
        self._engine = engine
        self._dialect = engine.dialect.name
        self._ttl = ttl
        self._stale = stale
        # id → (when to read it again, when it was last read, the version or None)
        self._cache: dict[str, tuple[float, float, HostedDataset | None]] = {}
        self._row_keys: dict[str, bool] = {}  # table → has a row key (a version never changes)
        self._kinds: dict[str, KindLoader] = {}
        self._lock = threading.Lock()

    def get(self, dataset_id: str) -> HostedDataset | None:
        now = time.monotonic()
        hit = self._cache.get(dataset_id)
        if hit is not None and now < hit[0]:
            return hit[2]
        try:
            hosted = self._load(dataset_id)
        except (sa.exc.DBAPIError, sa.exc.TimeoutError) as exc:
            if hit is None or now - hit[1] > self._stale:
                raise
            log.warning(
                "catalog: database unavailable (%s), serving datasets as last read",
                type(exc).__name__,
                extra={"repeat_key": "catalog:stale"},
            )
            with self._lock:
                self._cache[dataset_id] = (now + RETRY_SECONDS, hit[1], hit[2])
            return hit[2]
        with self._lock:
            if len(self._cache) > 10_000:  # unknown ids must not grow memory without bound
                self._cache.clear()
            self._cache[dataset_id] = (now + self._ttl, now, hosted)
        return hosted

    def register_kind(self, kind: str, loader: KindLoader) -> None:
        """Serve catalog entries of `kind` through `loader` (the composing app does this;
        without it such an entry is not found here)."""
        self._kinds[kind] = loader

    def _load(self, dataset_id: str) -> Any:
        with Session(self._engine) as session:
            dataset = session.get(Dataset, dataset_id)
            if dataset is None:
                return None
            if dataset.kind != "table":
                loader = self._kinds.get(dataset.kind)
                return loader(session, dataset) if loader else None
            version = session.exec(
                select(DatasetVersion).where(
                    DatasetVersion.dataset_id == dataset_id,
                    DatasetVersion.version == dataset.current_version,
                )
            ).one()
            rows = session.exec(
                select(DatasetField)
                .where(
                    DatasetField.dataset_id == dataset_id,
                    DatasetField.version == dataset.current_version,
                )
                .order_by(DatasetField.position)
            ).all()
            row_key = self._row_keys.get(version.table_name)
            if row_key is None:
                columns = sa.inspect(session.connection()).get_columns(version.table_name)
                row_key = any(c["name"] == ROW_COLUMN for c in columns)
                self._row_keys[version.table_name] = row_key
        fields = tuple(
            HostedField(
                name=r.name,
                type=FieldType(r.type),
                title=r.title,
                description=r.description,
                level=r.level,
                pii=r.pii,
                subject_key=r.subject_key,
                primary_key=r.primary_key,
                has_nulls=r.has_nulls,
            )
            for r in rows
        )
        return HostedDataset(
            id=dataset.id,
            title=dataset.title,
            open_type=dataset.open_type,
            level=dataset.level,
            version=dataset.current_version,
            row_count=dataset.row_count,
            updated_at=dataset.updated_at,
            fields=fields,
            by_name={f.name: f for f in fields},
            primary_key=next(f.name for f in fields if f.primary_key),
            table=build_table(version.table_name, fields, self._dialect, row_key=row_key),
        )
