"""The classified-access world (a conditional dataset, a bank's app, an admin) for audit
tests that need grants."""

from tests.gateway.test_classified_access import world  # noqa: F401  (a fixture)
