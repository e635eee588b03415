"""Alembic creates exactly what the models define, on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import SQLModel

import migrations.models  # noqa: F401
from catalog.importer import import_package
from gateway.migrate import check, is_current
from tests.packages import write_package


def test_upgrade_head_matches_the_models(engine: Engine, packages: Path):
    assert is_current(engine)
    check(engine)  # raises if autogenerate would find any difference
    tables = set(sa.inspect(engine).get_table_names())
    assert set(SQLModel.metadata.tables) <= tables
    # hosted dataset tables are the importer's, not the migrations'
    import_package(engine, write_package(packages))
    check(engine)
