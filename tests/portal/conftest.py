"""The portal tests use the participation catalog and accounts."""

from tests.gateway.test_docs_browser import browser  # noqa: F401 (a fixture)
from tests.participation.conftest import world  # noqa: F401 (a fixture)
