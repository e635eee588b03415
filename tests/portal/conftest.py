"""The portal tests use the participation catalog and accounts."""

from tests.participation.conftest import world  # noqa: F401 (a fixture)
