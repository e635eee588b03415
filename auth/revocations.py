"""Revocations that reach every worker on the next request.

Keys are `jti:<token id>`, `consent:<id>`, `user:<id>`, `client:<client_id>`. Each is kept
until the tokens it concerns have expired. The database table is the record. A worker
checks an in-memory mirror of the table, refreshed every `poll` seconds, and — when Redis is
configured — Redis too, where a revocation is visible to every worker and host at once.
Without Redis, workers agree within `poll` seconds.

If the database does not answer, the mirror as last read keeps serving for `stale`
seconds (a revocation is written to the database first, so none can be missed that the
mirror could have had; Redis is still asked), tried again every `poll` seconds by one
thread; past that, or before the first good read, requests with a token get 503.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable
from datetime import UTC, datetime

import anyio
import redis
import sqlalchemy as sa
from redis import asyncio as aioredis
from sqlalchemy.engine import Engine

from auth.models import Revocation
from catalog.problems import Problem

log = logging.getLogger("opengate.auth")


class Revocations:
    def __init__(
        self,
        engine: Engine,
        *,
        redis_url: str | None = None,
        poll: float = 1.0,
        stale: float = 60.0,
    ):
        self._engine = engine
        self._poll = poll
        self._stale = stale
        self._mirror: dict[str, float] = {}
        self._synced_at = 0.0  # last attempt
        self._good_at = 0.0  # last read that worked
        self._lock = threading.Lock()
        self._syncing = threading.Lock()
        self._redis: aioredis.Redis | None = None
        self._redis_sync: redis.Redis | None = None
        if redis_url:
            options = {"socket_timeout": 0.5, "socket_connect_timeout": 0.5}
            self._redis = aioredis.Redis.from_url(redis_url, **options)
            self._redis_sync = redis.Redis.from_url(redis_url, **options)

    def revoke(self, key: str, until: float) -> None:
        """Record a revocation (synchronous: called from request handlers in a thread)."""
        expires = datetime.fromtimestamp(until, UTC)
        table = Revocation.__table__
        with self._engine.begin() as conn:
            conn.execute(sa.delete(table).where(table.c.key == key))
            conn.execute(sa.insert(table).values(key=key, expires_at=expires))
        with self._lock:
            self._mirror[key] = until
        if self._redis_sync is not None:
            ttl = max(1, int(until - time.time()) + 1)
            try:
                self._redis_sync.set(f"og:revoked:{key}", 1, ex=ttl)
            except redis.RedisError:
                log.warning("revocation of %s written to the database only: Redis is down", key)

    async def any_revoked(self, keys: Iterable[str]) -> bool:
        # The mirror of the table is always consulted (it catches a revocation that was
        # written while Redis was down); Redis makes new ones visible at once.
        keys = list(keys)
        now = time.time()
        if now - self._synced_at > self._poll:
            await anyio.to_thread.run_sync(self._sync, now)
        self._check_fresh(now)
        mirror = self._mirror
        if any(mirror.get(k, 0) > now for k in keys):
            return True
        if self._redis is not None:
            try:
                return bool(await self._redis.exists(*(f"og:revoked:{k}" for k in keys)))
            except Exception:
                log.warning("Redis unreachable for the revocation check; using the database")
        return False

    def revoked_now(self, keys: Iterable[str]) -> bool:
        """`any_revoked` for synchronous callers (the OAuth endpoints, in a thread)."""
        keys = list(keys)
        now = time.time()
        if now - self._synced_at > self._poll:
            self._sync(now)
        self._check_fresh(now)
        if any(self._mirror.get(k, 0) > now for k in keys):
            return True
        if self._redis_sync is not None:
            try:
                return bool(self._redis_sync.exists(*(f"og:revoked:{k}" for k in keys)))
            except redis.RedisError:
                log.warning("Redis unreachable for the revocation check; using the database")
        return False

    def _check_fresh(self, now: float) -> None:
        if now - self._good_at > self._poll + self._stale:
            raise Problem(
                503,
                "unavailable",
                "令牌撤销名单暂时无法更新，请稍后重试",
                headers={"Retry-After": "5"},
            )

    def _sync(self, now: float) -> None:
        # One thread reads at a time; the others go on with the mirror as it is — except
        # before the first read, when there is nothing to go on with.
        if not self._syncing.acquire(blocking=self._good_at == 0.0):
            return
        try:
            if now - self._synced_at <= self._poll:
                return  # read by another thread while this one waited
            self._read(now)
        except (sa.exc.DBAPIError, sa.exc.TimeoutError) as exc:
            self._synced_at = now  # the next try after `poll`, not on every request
            log.warning(
                "revocations: database unavailable (%s), using the list as last read",
                type(exc).__name__,
                extra={"repeat_key": "revocations:stale"},
            )
        finally:
            self._syncing.release()

    def _read(self, now: float) -> None:
        table = Revocation.__table__
        with self._engine.connect() as conn:
            rows = conn.execute(
                sa.select(table.c.key, table.c.expires_at).where(
                    table.c.expires_at > datetime.fromtimestamp(now, UTC)
                )
            ).all()
        mirror = {}
        for key, expires in rows:
            if expires.tzinfo is None:
                expires = expires.replace(tzinfo=UTC)
            mirror[key] = expires.timestamp()
        with self._lock:
            self._mirror = mirror
            self._synced_at = self._good_at = now
