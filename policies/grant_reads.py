"""The active grant of an app on a dataset, read from the database on every request (a
revocation, suspension or expiry acts on the very next one, on every worker) — by one
statement compiled once and run on the driver's cursor, the cheapest read there is.

What is derived from the row (the parsed terms, the expiry) is kept by the row's raw
values: an unchanged grant is read but not parsed again; any change to the row, a
version bump or ε spent, is a different key."""

from __future__ import annotations

import threading
from datetime import datetime
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from catalog.statements import CompiledStatement, fetch_all
from kernel.clock import aware, utcnow
from policies.decide import GrantTerms
from policies.models import Grant

_TEXT = ("modes", "fields", "transforms", "row_filter", "quotas")  # JSON, read as text
_PLAIN = ("id", "version", "purpose", "k", "epsilon", "epsilon_spent")
_BOUNDS = ("epsilon_floor", "epsilon_ceiling", "expires_at")
Row = tuple[Any, ...]


class GrantReader:
    def __init__(self, engine: Engine) -> None:
        table = Grant.__table__
        columns = [table.c[n] for n in _PLAIN]
        columns += [sa.cast(table.c[n], sa.Text) for n in _TEXT]
        columns += [table.c[n] for n in _BOUNDS]
        statement = sa.select(*columns).where(
            table.c.client_id == sa.bindparam("client_id"),
            table.c.dataset_id == sa.bindparam("dataset_id"),
            table.c.status == "active",
        )
        compiled = statement.compile(dialect=engine.dialect)
        positional = compiled.positiontup if engine.dialect.positional else None
        self._statement = CompiledStatement(
            sql=compiled.string,
            parameter_order=tuple(positional) if positional is not None else None,
            width=len(columns),
            key_positions=(),
            boolean_positions=(),
            constants={k: v for k, v in compiled.params.items() if v is not None},
        )
        self._constants = dict(self._statement.constants)
        self._engine = engine
        self._parsed: dict[Row, tuple[GrantTerms, datetime]] = {}
        self._lock = threading.Lock()

    def read(self, client_id: str, dataset_id: str) -> tuple[GrantTerms, Row] | None:
        """The active, unexpired grant's terms and its raw row (a key for what is derived
        from it), or None."""
        values = {**self._constants, "client_id": client_id, "dataset_id": dataset_id}
        rows = fetch_all(self._engine, self._statement, values)
        if not rows:
            return None
        row = tuple(rows[0])
        parsed = self._parsed.get(row)
        if parsed is None:
            parsed = _terms(row)
            with self._lock:
                if len(self._parsed) > 4096:  # every grant change is a new key: bound them
                    self._parsed.clear()
                self._parsed[row] = parsed
        terms, expires_at = parsed
        if expires_at <= utcnow():
            return None
        return terms, row


def _terms(row: Row) -> tuple[GrantTerms, datetime]:
    plain = dict(zip(_PLAIN, row, strict=False))
    n = len(_PLAIN)
    modes, fields, transforms, row_filter, quotas = (
        None if text is None else orjson.loads(text) for text in row[n : n + len(_TEXT)]
    )
    floor, ceiling, expires_at = row[n + len(_TEXT) :]
    if isinstance(expires_at, str):  # SQLite hands the stored text back
        expires_at = datetime.fromisoformat(expires_at)
    terms = GrantTerms(
        id=plain["id"],
        version=plain["version"],
        purpose=plain["purpose"],
        modes=tuple(modes),
        fields=tuple(fields) if fields is not None else None,
        transforms=dict(transforms),
        row_filter=dict(row_filter),
        quotas=dict(quotas),
        k=plain["k"],
        epsilon=plain["epsilon"],
        epsilon_spent=plain["epsilon_spent"],
        epsilon_floor=floor,
        epsilon_ceiling=ceiling,
    )
    return terms, aware(expires_at)
