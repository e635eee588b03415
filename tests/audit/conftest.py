"""The classified-access world (a conditional dataset, a bank's app, an admin) for audit
tests that need grants."""

from collections.abc import Iterator

import pytest
from sqlalchemy.engine import Engine

from gateway.database import create_engine
from gateway.migrate import upgrade
from tests.conftest import _reset_postgres
from tests.gateway.test_classified_access import world  # noqa: F401  (a fixture)


@pytest.fixture
def pg_engine(pg_database: str) -> Iterator[Engine]:
    """A migrated, empty PostgreSQL database (for tests that run on PostgreSQL only)."""
    _reset_postgres(pg_database)
    engine = create_engine(pg_database)
    upgrade(engine)
    yield engine
    engine.dispose()
