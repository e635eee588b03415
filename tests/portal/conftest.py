"""The portal tests use the participation catalog and accounts, a person with a consent
to give (tests/portal/consenting.py) and the headless browser of the docs test."""

from tests.gateway.test_docs_browser import browser  # noqa: F401 (a fixture)
from tests.participation.conftest import world  # noqa: F401 (a fixture)
from tests.portal.consenting import setup  # noqa: F401 (a fixture)
