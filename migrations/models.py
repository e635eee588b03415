"""Every package's tables, imported in one place for Alembic."""

import catalog.models  # noqa: F401
