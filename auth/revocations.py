"""Revocations and principal state that reach every worker on the next request.

Revocation keys are `jti:<token id>`, `consent:<id>`, `user:<id>`, `client:<client_id>`,
`family:<id>`. Each is kept until the tokens it concerns have expired. The database table is
the record.

Principal state is what a token was issued against and may have changed since: an account's
`is_active` and `role`, an app's `is_active` and `secret_epoch`. A token carries the role
(`role`) and the secret epoch (`sep`) it was issued with; an account or app that ever
changed has `state_changed_at` set, and its current state is mirrored here. A principal not
in the mirror never changed, so every token of it is consistent with the truth.

A worker checks an in-memory mirror of both, refreshed every `poll` seconds, and — when Redis
is configured — Redis too, where a change is visible to every worker and host at once (one
pipelined round trip per request). Without Redis, workers agree within `poll` seconds.

If the database does not answer, the mirror as last read keeps serving for `stale`
seconds (a revocation is written to the database first, so none can be missed that the
mirror could have had; Redis is still asked), tried again every `poll` seconds by one
thread; past that, or before the first good read, requests with a token get 503.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import anyio
import redis
import sqlalchemy as sa
from redis import asyncio as aioredis
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine

from auth.models import App, Revocation, User
from kernel.problems import Problem

log = logging.getLogger("opengate.auth")
STATE_TTL = 3600  # Redis keeps a change this long; the database mirror has it within `poll`


@dataclass(frozen=True, slots=True)
class PrincipalState:
    """The current truth about an account (`user:<id>`) or an app (`client:<client_id>`).
    `epoch`: an app's secret epoch; for an account, the second of its last change (a token
    issued before it is from the account as it was: disabled and enabled again, say)."""

    active: bool
    role: str | None = None
    epoch: int = 0

    def encode(self) -> str:
        return f"{int(self.active)}|{self.role or ''}|{self.epoch}"

    @classmethod
    def decode(cls, raw: bytes | str) -> PrincipalState:
        text = raw.decode() if isinstance(raw, bytes) else raw
        active, role, epoch = text.split("|")
        return cls(active == "1", role or None, int(epoch))


def change_second(moment: datetime) -> int:
    """An account's change time as the epoch of its state (whole seconds, like `iat`)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp())


def state_keys(claims: Any) -> list[str]:
    """The principals a token's validity depends on (`claims`: auth.tokens.TokenClaims)."""
    keys = []
    if claims.user_id is not None:
        keys.append(f"user:{claims.user_id}")
    if claims.client_id is not None:
        keys.append(f"client:{claims.client_id}")
    return keys


def stale_reason(claims: Any, key: str, state: PrincipalState) -> str | None:
    """Why a token no longer matches its principal's current state (a Chinese sentence),
    or None when it still does."""
    if key.startswith("user:"):
        if not state.active:
            return "账号已停用"
        if claims.role is not None and claims.role != state.role:
            return "账号角色已变更，请重新登录"
        if claims.issued_at < state.epoch:
            return "账号状态已变更，请重新登录"
        return None
    if not state.active:
        return "应用已停用"
    if int(claims.raw.get("sep", 0)) != state.epoch:
        return "应用密钥已更换或应用已重新启用，请重新获取令牌"
    return None


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
        self._states: dict[str, PrincipalState] = {}
        # Changes this worker published lately: a sync whose read began before their commit
        # must not put the old state back.
        self._published: dict[str, tuple[PrincipalState, float]] = {}
        self._synced_at = 0.0  # last attempt
        self._sync_due = False  # a request of this process awaits a read now
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
        insert = (
            postgresql.insert(table)
            if self._engine.dialect.name == "postgresql"
            else sqlite.insert(table)
        ).values(key=key, expires_at=expires)
        # One statement: two workers revoking the same key at once must both succeed.
        upsert = insert.on_conflict_do_update(
            index_elements=[table.c.key], set_={"expires_at": insert.excluded.expires_at}
        )
        with self._engine.begin() as conn:
            conn.execute(upsert)
        with self._lock:
            self._mirror[key] = until
        if self._redis_sync is not None:
            ttl = max(1, int(until - time.time()) + 1)
            try:
                self._redis_sync.set(f"og:revoked:{key}", 1, ex=ttl)
            except redis.RedisError:
                log.warning("revocation of %s written to the database only: Redis is down", key)

    def publish_state(self, key: str, state: PrincipalState) -> None:
        """Make a committed change of an account or app visible to every worker now (the
        database row, with `state_changed_at` set, reaches the others' mirrors anyway)."""
        with self._lock:
            self._states[key] = state
            self._published[key] = (state, time.monotonic())
        if self._redis_sync is not None:
            try:
                self._redis_sync.set(f"og:state:{key}", state.encode(), ex=STATE_TTL)
            except redis.RedisError:
                log.warning("state of %s written to the database only: Redis is down", key)

    async def refusal(self, claims: Any) -> str | None:
        """Why this token must be refused now — revoked, or its account or app changed since
        it was issued — or None. One Redis round trip (pipelined) when Redis is configured."""
        keys = claims.revocation_keys()
        principals = state_keys(claims)
        now = time.time()
        if now - self._synced_at > self._poll and (not self._sync_due or not self._good_at):
            # One read under way per process: every request arriving meanwhile queued a
            # thread of its own (behind the routes' threads, one at a time on SQLite) only
            # to find the read done or taken; they go on with the mirror as it is, as
            # `_sync` lets other threads do — except before the first read.
            self._sync_due = True
            try:
                await anyio.to_thread.run_sync(self._sync, now)
            finally:
                self._sync_due = False
        self._check_fresh(now)
        local = self._local_refusal(claims, keys, principals, now)
        if local or self._redis is None:
            return local
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                answers = await _queue(pipe, keys, principals).execute()
        except Exception:
            log.warning("Redis unreachable for the revocation check; using the database")
            return None
        return self._remote_refusal(claims, answers, principals)

    def refusal_now(self, claims: Any) -> str | None:
        """`refusal` for synchronous callers (the OAuth endpoints, in a thread)."""
        keys = claims.revocation_keys()
        principals = state_keys(claims)
        now = time.time()
        if now - self._synced_at > self._poll:
            self._sync(now)
        self._check_fresh(now)
        local = self._local_refusal(claims, keys, principals, now)
        if local or self._redis_sync is None:
            return local
        try:
            with self._redis_sync.pipeline(transaction=False) as pipe:
                answers = _queue(pipe, keys, principals).execute()
        except redis.RedisError:
            log.warning("Redis unreachable for the revocation check; using the database")
            return None
        return self._remote_refusal(claims, answers, principals)

    def _local_refusal(
        self, claims: Any, keys: list[str], principals: list[str], now: float
    ) -> str | None:
        mirror = self._mirror
        if any(mirror.get(k, 0) > now for k in keys):
            return "令牌已被撤销"
        states = self._states
        for key in principals:
            state = states.get(key)
            if state is not None and (reason := stale_reason(claims, key, state)):
                return reason
        return None

    @staticmethod
    def _remote_refusal(claims: Any, answers: list[Any], principals: list[str]) -> str | None:
        # Either source saying "changed" is enough: a token passes only when the mirror and
        # Redis both find it consistent.
        if answers[0]:
            return "令牌已被撤销"
        states = answers[1] if principals else []
        for key, raw in zip(principals, states, strict=True):
            if raw is not None and (
                reason := stale_reason(claims, key, PrincipalState.decode(raw))
            ):
                return reason
        return None

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
            users, apps = User.__table__, App.__table__
            changed_users = conn.execute(
                sa.select(
                    users.c.id, users.c.is_active, users.c.role, users.c.state_changed_at
                ).where(users.c.state_changed_at.is_not(None))
            ).all()
            changed_apps = conn.execute(
                sa.select(apps.c.client_id, apps.c.is_active, apps.c.secret_epoch).where(
                    apps.c.state_changed_at.is_not(None)
                )
            ).all()
        mirror = {}
        for key, expires in rows:
            if expires.tzinfo is None:
                expires = expires.replace(tzinfo=UTC)
            mirror[key] = expires.timestamp()
        states = {
            f"user:{i}": PrincipalState(bool(a), role=r, epoch=change_second(at))
            for i, a, r, at in changed_users
        }
        states.update({f"client:{c}": PrincipalState(bool(a), epoch=e) for c, a, e in changed_apps})
        with self._lock:
            recent = time.monotonic() - 10 * max(self._poll, 0.1)
            self._published = {k: v for k, v in self._published.items() if v[1] > recent}
            states.update({k: v[0] for k, v in self._published.items()})
            self._mirror = mirror
            self._states = states
            self._synced_at = self._good_at = now


def _queue(pipe: Any, keys: list[str], principals: list[str]) -> Any:
    """The revocation check's Redis commands, queued on a (sync or async) pipeline."""
    pipe.exists(*(f"og:revoked:{k}" for k in keys))
    if principals:
        pipe.mget([f"og:state:{k}" for k in principals])
    return pipe
