"""Fixtures of the services tests; real Redis under a key prefix of the test's own, removed
afterwards (never a flush: the server is shared)."""

from __future__ import annotations

import copy
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import REDIS_URL, REQUIRE_REDIS
from tests.services.helpers import COMPANY_CREDIT, Clock


@pytest.fixture
def descriptor() -> dict[str, Any]:
    return copy.deepcopy(COMPANY_CREDIT)


@pytest.fixture
def clock() -> Clock:
    return Clock()


def _reachable() -> None:
    import redis

    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1).ping()
    except redis.RedisError as exc:
        message = f"Redis is not reachable at {REDIS_URL} ({exc}); set OPENGATE_TEST_REDIS_URL"
        if REQUIRE_REDIS:
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    """A key prefix no other test uses; its keys are deleted afterwards."""
    import redis

    _reachable()
    prefix = f"og-test:services:{uuid.uuid4().hex[:12]}:"
    yield prefix
    client = redis.Redis.from_url(REDIS_URL)
    keys = list(client.scan_iter(match=prefix + "*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()
