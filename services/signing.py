"""Signed calls (接口签名, contract §12; details in docs/contract-services.md).

A server-to-server caller signs each request instead of sending a bearer token:

    X-Client-Id   the app's client id
    X-Timestamp   milliseconds since the epoch, within ±5 minutes of the gateway's clock
    X-Nonce       16–64 characters of [A-Za-z0-9_-], used once per client within 10 minutes
    X-Signature   base64(HMAC-SHA256(signing secret, canonical string))

    canonical = METHOD \\n PATH \\n SORTED_QUERY \\n TIMESTAMP \\n NONCE \\n hex(SHA-256(body))

`sign_request` is the client's side (tests and docs use it); `SignatureVerifier` the
gateway's. The nonce is recorded only once the signature verifies, so nobody without the
secret can spend a client's nonces; it is held in a `NonceStore`: `MemoryNonces` (one
process) or `RedisNonces` (`SET NX EX`: every host sees it).

Every refusal is `401 unauthorized` with a Chinese detail that names what is wrong and
never the secret, the expected signature or the canonical string.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import inspect
import re
import secrets
import threading
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Protocol
from urllib.parse import parse_qsl, quote, urlsplit

from redis import asyncio as aioredis

from kernel.problems import Problem
from services.scripts import ERRORS, ScriptFactory, as_bytes, factory_of

CLIENT_ID = "X-Client-Id"
TIMESTAMP = "X-Timestamp"
NONCE = "X-Nonce"
SIGNATURE = "X-Signature"
HEADERS = (CLIENT_ID, TIMESTAMP, NONCE, SIGNATURE)
SCHEME = "OpenGate-HMAC-SHA256"

WINDOW_SECONDS = 300
NONCE_SECONDS = 600
NONCE_PATTERN = re.compile(r"[A-Za-z0-9_-]{16,64}")
CLIENT_ID_PATTERN = re.compile(r"[A-Za-z0-9._~-]{1,128}")
_TIMESTAMP_PATTERN = re.compile(r"[0-9]{1,16}")

Clock = Callable[[], float]
SecretFor = Callable[[str], "bytes | Awaitable[bytes | None] | None"]


# --- the canonical string ----------------------------------------------------------------


def _encode(text: str) -> str:
    return quote(text, safe="-_.~")  # RFC 3986 unreserved characters only


def sorted_query(query: str | Iterable[tuple[str, str]]) -> str:
    """The query as signed: pairs decoded (`+` is a space, as in forms), each name and value
    percent-encoded again with every character but RFC 3986's unreserved ones, sorted by
    name then value, joined `name=value` with `&`. A client's and the gateway's encodings of
    one query may differ (`%20` or `+`, `%7E` or `~`); this form is the same for both."""
    pairs = parse_qsl(query, keep_blank_values=True) if isinstance(query, str) else list(query)
    return "&".join(f"{n}={v}" for n, v in sorted((_encode(n), _encode(v)) for n, v in pairs))


def canonical_string(
    method: str,
    path: str,
    query: str | Iterable[tuple[str, str]],
    timestamp: str,
    nonce: str,
    body: bytes,
) -> bytes:
    digest = hashlib.sha256(body).hexdigest()
    text = "\n".join((method.upper(), path, sorted_query(query), timestamp, nonce, digest))
    return text.encode("utf-8")


def signature(secret: bytes, canonical: bytes) -> str:
    return base64.b64encode(hmac.digest(secret, canonical, "sha256")).decode("ascii")


def sign_request(
    method: str,
    url: str,
    *,
    client_id: str,
    secret: bytes,
    body: bytes = b"",
    timestamp_ms: int | None = None,
    nonce: str | None = None,
) -> dict[str, str]:
    """The four headers of a signed call to `url` (a full URL or a path, with its query).

    >>> headers = sign_request("POST", "https://gw.example/api/v1/services/x/call",
    ...     client_id="app-1", secret=b"s" * 32, body=b'{"q": 1}')
    """
    parts = urlsplit(url)
    stamp = str(int(time.time() * 1000) if timestamp_ms is None else timestamp_ms)
    once = secrets.token_urlsafe(18) if nonce is None else nonce
    canonical = canonical_string(method, parts.path or "/", parts.query, stamp, once, body)
    return {
        CLIENT_ID: client_id,
        TIMESTAMP: stamp,
        NONCE: once,
        SIGNATURE: signature(secret, canonical),
    }


# --- nonces ------------------------------------------------------------------------------


class NonceStore(Protocol):
    async def first_use(self, client_id: str, nonce: str, ttl: int) -> bool:
        """Record the nonce; True the first time within `ttl` seconds, False after."""
        ...


class MemoryNonces:
    """The nonces of one process. When `most` live entries are held, new nonces are refused
    (503) rather than old ones forgotten: forgetting one would allow its replay."""

    def __init__(self, *, clock: Clock = time.time, most: int = 1_000_000) -> None:
        self._clock = clock
        self._most = most
        # Insertion order is expiry order (one ttl per verifier, a clock that moves on), so
        # the expired ones are always at the front: each use drops those, in O(1) amortized,
        # instead of sweeping a dict of up to `most` entries under the lock.
        self._seen: dict[tuple[str, str], float] = {}  # → expiry
        self._lock = threading.Lock()

    async def first_use(self, client_id: str, nonce: str, ttl: int) -> bool:
        now = self._clock()
        key = (client_id, nonce)
        with self._lock:
            seen = self._seen
            while seen:
                oldest = next(iter(seen))
                if seen[oldest] > now:
                    break
                del seen[oldest]
            expiry = seen.get(key)
            if expiry is not None and expiry > now:
                return False
            if len(seen) >= self._most:
                raise _nonces_unavailable()
            seen.pop(key, None)  # an expired entry behind a live one: re-insert at the end
            seen[key] = now + ttl
            return True


class RedisNonces:
    """Nonces in Redis, `{prefix}{client_id}:{nonce}` set with `SET NX EX`: one host's use
    is seen by every other at once. If Redis does not answer, the call is refused with 503:
    without the check a replay could not be told apart. `store`: a redis-py asyncio client
    or a `services.scripts.ScriptFactory`; `errors`: what it raises when Redis is away."""

    _SET = "return redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[1]) and 1 or 0"

    def __init__(
        self,
        store: aioredis.Redis | ScriptFactory,
        *,
        prefix: str = "og:nonce:",
        errors: tuple[type[Exception], ...] = ERRORS,
    ) -> None:
        self._set = factory_of(store)(self._SET)
        self._prefix = prefix
        self._errors = errors

    async def first_use(self, client_id: str, nonce: str, ttl: int) -> bool:
        try:
            reply = await self._set([f"{self._prefix}{client_id}:{nonce}"], as_bytes([ttl]))
        except self._errors:
            raise _nonces_unavailable() from None
        return reply == 1


def _nonces_unavailable() -> Problem:
    return Problem(503, "unavailable", "签名校验暂不可用（nonce 记录不可达），请稍后重试")


# --- verification ------------------------------------------------------------------------


def _refuse(detail: str) -> Problem:
    return Problem(401, "unauthorized", detail, headers={"WWW-Authenticate": SCHEME})


class SignatureVerifier:
    """Checks signed calls. `secret_for(client_id)` returns the app's signing secret, or
    None for an unknown or disabled app (it may be a coroutine function)."""

    def __init__(
        self,
        secret_for: SecretFor,
        nonces: NonceStore,
        *,
        clock: Clock = time.time,
        window: int = WINDOW_SECONDS,
        nonce_ttl: int = NONCE_SECONDS,
    ) -> None:
        if nonce_ttl < 2 * window:
            # A nonce must outlive every timestamp that could carry it: now-window..now+window.
            raise ValueError("nonce_ttl must be at least twice the timestamp window")
        self._secret_for = secret_for
        self._nonces = nonces
        self._clock = clock
        self._window = window
        self._nonce_ttl = nonce_ttl

    @staticmethod
    def is_signed(headers: Mapping[str, str]) -> bool:
        """Does the request try a signature (any of the four headers)? Then it is judged
        as one, not passed on as anonymous."""
        return any(_header(headers, name) is not None for name in HEADERS)

    async def verify(
        self,
        *,
        method: str,
        path: str,
        query: str,
        headers: Mapping[str, str],
        body: bytes,
    ) -> str:
        """The client id of a good signed request; raise `Problem(401)` otherwise."""
        values = {}
        for name in HEADERS:
            value = _header(headers, name)
            if value is None or not value:
                raise _refuse(f"签名调用缺少请求头 {name}")
            values[name] = value
        client_id, stamp, nonce = values[CLIENT_ID], values[TIMESTAMP], values[NONCE]
        if not CLIENT_ID_PATTERN.fullmatch(client_id):
            raise _refuse(f"请求头 {CLIENT_ID} 格式无效")
        if not _TIMESTAMP_PATTERN.fullmatch(stamp):
            raise _refuse(f"请求头 {TIMESTAMP} 须为自 1970-01-01 起的毫秒数（整数）")
        if not NONCE_PATTERN.fullmatch(nonce):
            raise _refuse(f"请求头 {NONCE} 须为 16–64 个字母、数字、下划线或连字符")
        skew = int(stamp) / 1000 - self._clock()
        if abs(skew) > self._window:
            where = "早于" if skew < 0 else "晚于"
            raise _refuse(
                f"请求时间戳{where}网关时间超过 {self._window // 60} 分钟，请校准时钟后重新签名"
            )
        try:
            given = base64.b64decode(values[SIGNATURE], validate=True)
        except (binascii.Error, ValueError):
            given = b""
        secret = self._secret_for(client_id)
        if inspect.isawaitable(secret):
            secret = await secret
        canonical = canonical_string(method, path, query, stamp, nonce, body)
        # Compared even for an unknown client (under a throw-away key), so the time taken
        # does not tell which client ids exist.
        expected = hmac.digest(secret or _UNKNOWN, canonical, "sha256")
        if not hmac.compare_digest(expected, given) or not secret:
            raise _refuse(
                "签名无效：请检查客户端标识与签名密钥，以及签名串的方法、路径、查询参数、"
                "时间戳、nonce 和请求体"
            )
        if not await self._nonces.first_use(client_id, nonce, self._nonce_ttl):
            raise _refuse("该 nonce 已使用过：每次请求须使用新的 nonce（重放的请求被拒绝）")
        return client_id


_UNKNOWN = secrets.token_bytes(32)


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is None:
        value = headers.get(name.lower())
    return value
