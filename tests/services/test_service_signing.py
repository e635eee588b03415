"""Signed calls (contract §12): the canonical string, the client's `sign_request`, and the
verifier's refusals — each `401 unauthorized` in Chinese, never echoing the secret or the
expected signature — with nonces held in memory and in Redis (two verifiers on one Redis
are two hosts)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from redis import asyncio as aioredis

from kernel.problems import Problem
from services.signing import (
    CLIENT_ID,
    NONCE,
    SIGNATURE,
    TIMESTAMP,
    MemoryNonces,
    RedisNonces,
    SignatureVerifier,
    canonical_string,
    sign_request,
    sorted_query,
)
from tests.conftest import REDIS_URL
from tests.services.helpers import Clock, pipe_scripts, run

SECRET = b"k3y-of-app-1-for-signing-32bytes"
PATH = "/api/v1/services/company-credit/call"
BODY = b'{"uscc": "91370200163562681G"}'
SECRETS = {"app-1": SECRET, "app-2": b"another-secret-of-app-2-32bytes!"}


def secret_for(client_id: str) -> bytes | None:
    return SECRETS.get(client_id)


def signed(clock: Clock, **overrides: Any) -> dict[str, Any]:
    """A request signed now by app-1, as `verify` takes it."""
    url = overrides.pop("url", f"https://gw.example{PATH}?year=2025&detail=true")
    body = overrides.pop("body", BODY)
    headers = sign_request(
        "POST",
        url,
        client_id=overrides.pop("client_id", "app-1"),
        secret=overrides.pop("secret", SECRET),
        body=body,
        timestamp_ms=overrides.pop("timestamp_ms", int(clock() * 1000)),
        **overrides,
    )
    return {
        "method": "POST",
        "path": PATH,
        "query": "detail=true&year=2025",
        "headers": headers,
        "body": body,
    }


def test_the_canonical_string():
    canonical = canonical_string("post", PATH, "b=2&a=1&a=0", "1800000000000", "n" * 16, b"{}")
    assert canonical == (
        b"POST\n"
        b"/api/v1/services/company-credit/call\n"
        b"a=0&a=1&b=2\n"
        b"1800000000000\n"
        b"nnnnnnnnnnnnnnnn\n"
        b"44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
    )
    assert hashlib.sha256(b"{}").hexdigest() == canonical.decode().rsplit("\n", 1)[1]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("", ""),
        ("a=1", "a=1"),
        ("q=%E9%9D%92%E5%B2%9B&q=a+b", "q=%E9%9D%92%E5%B2%9B&q=a%20b"),
        ("q=青岛", "q=%E9%9D%92%E5%B2%9B"),
        ("q=a%20b", "q=a%20b"),
        ("t=%7E~", "t=~~"),
        ("flag&x=", "flag=&x="),
        ("k=a%26b", "k=a%26b"),
        ([("b", "2"), ("a", "x y")], "a=x%20y&b=2"),
    ],
)
def test_one_query_whatever_the_client_encoding(query: Any, expected: str):
    assert sorted_query(query) == expected


def test_sign_request_gives_the_four_headers():
    headers = sign_request(
        "POST",
        f"{PATH}?b=1",
        client_id="app-1",
        secret=SECRET,
        body=BODY,
        timestamp_ms=1,
        nonce="N" * 16,
    )
    assert set(headers) == {CLIENT_ID, TIMESTAMP, NONCE, SIGNATURE}
    assert (headers[TIMESTAMP], headers[NONCE]) == ("1", "N" * 16)
    # An independent computation of the same signature.
    text = f"POST\n{PATH}\nb=1\n1\n{'N' * 16}\n{hashlib.sha256(BODY).hexdigest()}"
    mac = hmac.new(SECRET, text.encode(), hashlib.sha256).digest()
    assert headers[SIGNATURE] == base64.b64encode(mac).decode()
    fresh = sign_request("GET", PATH, client_id="app-1", secret=SECRET)
    again = sign_request("GET", PATH, client_id="app-1", secret=SECRET)
    assert fresh[NONCE] != again[NONCE] and len(fresh[NONCE]) >= 16


def memory_verifier(clock: Clock) -> SignatureVerifier:
    return SignatureVerifier(secret_for, MemoryNonces(clock=clock), clock=clock)


def refusal(verifier: SignatureVerifier, request: dict[str, Any]) -> Problem:
    with pytest.raises(Problem) as caught:
        asyncio.run(verifier.verify(**request))
    problem = caught.value
    assert (problem.status, problem.code) == (401, "unauthorized")
    assert problem.headers["WWW-Authenticate"] == "OpenGate-HMAC-SHA256"
    # Nothing secret in it: not the secret, not the expected signature, not the string signed.
    expected = sign_request("POST", PATH, client_id="app-1", secret=SECRET)[SIGNATURE]
    for secret in (SECRET.decode(), expected[:12], base64.b64encode(SECRET).decode()[:12], "\n"):
        assert secret not in problem.detail
    return problem


def test_a_good_signature(clock: Clock):
    verifier = memory_verifier(clock)
    assert asyncio.run(verifier.verify(**signed(clock))) == "app-1"
    # The query in another order and encoding is the same query.
    request = signed(clock, url=f"{PATH}?year=2025&detail=true")
    request["query"] = "detail=%74rue&year=2025"
    assert asyncio.run(verifier.verify(**request)) == "app-1"
    # Lower-case header names (ASGI's) are found too.
    request = signed(clock)
    request["headers"] = {k.lower(): v for k, v in request["headers"].items()}
    assert asyncio.run(verifier.verify(**request)) == "app-1"


def test_an_async_secret_lookup(clock: Clock):
    async def lookup(client_id: str) -> bytes | None:
        return SECRETS.get(client_id)

    verifier = SignatureVerifier(lookup, MemoryNonces(clock=clock), clock=clock)
    assert asyncio.run(verifier.verify(**signed(clock))) == "app-1"


BAD_SIGNATURE = "签名无效：请检查客户端标识与签名密钥"


@pytest.mark.parametrize(
    ("change", "detail"),
    [
        ({"path": "/api/v1/services/social-insurance/call"}, BAD_SIGNATURE),
        ({"method": "PUT"}, BAD_SIGNATURE),
        ({"query": "detail=false&year=2025"}, BAD_SIGNATURE),
        ({"query": ""}, BAD_SIGNATURE),
        ({"body": b'{"uscc": "91370200163562681H"}'}, BAD_SIGNATURE),
        ({"body": b""}, BAD_SIGNATURE),
    ],
)
def test_a_signature_over_another_request(clock: Clock, change: dict[str, Any], detail: str):
    request = signed(clock) | change
    assert refusal(memory_verifier(clock), request).detail.startswith(detail)


@pytest.mark.parametrize(
    ("header", "value"),
    [
        (CLIENT_ID, "app-2"),  # another app's id with app-1's signature
        (CLIENT_ID, "nobody"),
        (SIGNATURE, "not base64!"),
        (SIGNATURE, base64.b64encode(b"x" * 32).decode()),
        (NONCE, "Z" * 16),
        (TIMESTAMP, None),  # set below: one millisecond later
    ],
)
def test_any_header_changed_breaks_it(clock: Clock, header: str, value: str | None):
    request = signed(clock)
    request["headers"][header] = value or str(int(request["headers"][TIMESTAMP]) + 1)
    assert refusal(memory_verifier(clock), request).detail.startswith(BAD_SIGNATURE)


def test_the_wrong_secret(clock: Clock):
    request = signed(clock, secret=b"guessed")
    assert refusal(memory_verifier(clock), request).detail.startswith(BAD_SIGNATURE)


@pytest.mark.parametrize(
    ("skew", "detail"),
    [
        (-360, "请求时间戳早于网关时间超过 5 分钟，请校准时钟后重新签名"),
        (+360, "请求时间戳晚于网关时间超过 5 分钟"),
        (-300.001, "早于网关时间超过 5 分钟"),
    ],
)
def test_stale_and_future_timestamps(clock: Clock, skew: float, detail: str):
    request = signed(clock, timestamp_ms=int((clock() + skew) * 1000))
    assert detail in refusal(memory_verifier(clock), request).detail


@pytest.mark.parametrize("skew", [-300, -299.5, 0, 299.5, 300])
def test_within_five_minutes(clock: Clock, skew: float):
    request = signed(clock, timestamp_ms=int((clock() + skew) * 1000))
    assert asyncio.run(memory_verifier(clock).verify(**request)) == "app-1"


@pytest.mark.parametrize("missing", [CLIENT_ID, TIMESTAMP, NONCE, SIGNATURE])
def test_missing_headers(clock: Clock, missing: str):
    request = signed(clock)
    del request["headers"][missing]
    assert refusal(memory_verifier(clock), request).detail == f"签名调用缺少请求头 {missing}"
    request["headers"][missing] = ""
    assert refusal(memory_verifier(clock), request).detail == f"签名调用缺少请求头 {missing}"


@pytest.mark.parametrize(
    ("header", "value", "detail"),
    [
        (TIMESTAMP, "1.8e12", "请求头 X-Timestamp 须为自 1970-01-01 起的毫秒数（整数）"),
        (TIMESTAMP, "-1", "须为自 1970-01-01 起的毫秒数"),
        (TIMESTAMP, "9" * 40, "须为自 1970-01-01 起的毫秒数"),
        (NONCE, "short", "请求头 X-Nonce 须为 16–64 个字母、数字、下划线或连字符"),
        (NONCE, "n" * 65, "须为 16–64 个"),
        (NONCE, "nonce with spaces!!", "须为 16–64 个"),
        (CLIENT_ID, "a b", "请求头 X-Client-Id 格式无效"),
    ],
)
def test_malformed_headers(clock: Clock, header: str, value: str, detail: str):
    request = signed(clock)
    request["headers"][header] = value
    assert detail in refusal(memory_verifier(clock), request).detail


def test_is_signed_tells_a_signed_attempt():
    assert SignatureVerifier.is_signed({"x-nonce": "x"})
    assert SignatureVerifier.is_signed({SIGNATURE: ""})
    assert not SignatureVerifier.is_signed({"Authorization": "Bearer x"})


REPLAYED = "该 nonce 已使用过：每次请求须使用新的 nonce（重放的请求被拒绝）"


def test_a_replayed_nonce_in_memory(clock: Clock):
    verifier = memory_verifier(clock)
    request = signed(clock)
    asyncio.run(verifier.verify(**request))
    clock.advance(299)
    assert refusal(verifier, request).detail == REPLAYED
    # Another app may use the same nonce: nonces are per client.
    other = signed(
        clock, client_id="app-2", secret=SECRETS["app-2"], nonce=request["headers"][NONCE]
    )
    assert asyncio.run(verifier.verify(**other)) == "app-2"


def test_a_bad_signature_does_not_spend_the_nonce(clock: Clock):
    verifier = memory_verifier(clock)
    request = signed(clock)
    forged = {
        **request,
        "headers": {**request["headers"], SIGNATURE: base64.b64encode(b"f" * 32).decode()},
    }
    refusal(verifier, forged)
    assert asyncio.run(verifier.verify(**request)) == "app-1"


def test_memory_nonces_are_forgotten_after_ten_minutes_only(clock: Clock):
    nonces = MemoryNonces(clock=clock)
    assert asyncio.run(nonces.first_use("app-1", "n" * 16, 600))
    clock.advance(599)
    assert not asyncio.run(nonces.first_use("app-1", "n" * 16, 600))
    clock.advance(1)
    assert asyncio.run(nonces.first_use("app-1", "n" * 16, 600))


def test_a_full_memory_store_refuses_rather_than_forgets(clock: Clock):
    nonces = MemoryNonces(clock=clock, most=2)
    assert asyncio.run(nonces.first_use("a", "1", 600))
    assert asyncio.run(nonces.first_use("a", "2", 600))
    with pytest.raises(Problem) as caught:
        asyncio.run(nonces.first_use("a", "3", 600))
    assert (caught.value.status, caught.value.code) == (503, "unavailable")
    assert not asyncio.run(nonces.first_use("a", "1", 600))  # still remembered
    clock.advance(600)
    assert asyncio.run(nonces.first_use("a", "3", 600))  # expired ones make room


def test_a_replayed_nonce_on_another_host(redis_prefix: str, clock: Clock):
    """Two verifiers sharing Redis are two hosts: a request used on one is refused on the
    other, within the ten minutes."""

    async def scenario(client: aioredis.Redis):
        second = aioredis.Redis.from_url(REDIS_URL)
        try:
            host_a = SignatureVerifier(
                secret_for, RedisNonces(client, prefix=redis_prefix), clock=clock
            )
            host_b = SignatureVerifier(
                secret_for, RedisNonces(second, prefix=redis_prefix), clock=clock
            )
            request = signed(clock)
            assert await host_a.verify(**request) == "app-1"
            with pytest.raises(Problem) as caught:
                await host_b.verify(**request)
            assert (caught.value.status, caught.value.detail) == (401, REPLAYED)
            # At once on both: exactly one of many concurrent tries wins.
            fresh = signed(clock)
            results = await asyncio.gather(
                *(h.verify(**fresh) for h in (host_a, host_b) * 5), return_exceptions=True
            )
            assert results.count("app-1") == 1
            key = f"{redis_prefix}app-1:{fresh['headers'][NONCE]}"
            assert 590 <= await client.ttl(key) <= 600
        finally:
            await second.aclose()

    run(scenario)


def test_replays_across_hosts_on_the_gateway_pipe(redis_prefix: str, clock: Clock):
    """The same with the gateway's pipelined script runner as the Redis client."""

    async def scenario():
        with pipe_scripts() as (scripts, errors):
            hosts = [
                SignatureVerifier(
                    secret_for,
                    RedisNonces(scripts, prefix=redis_prefix, errors=errors),
                    clock=clock,
                )
                for _ in range(2)
            ]
            request = signed(clock)
            assert await hosts[0].verify(**request) == "app-1"
            with pytest.raises(Problem) as caught:
                await hosts[1].verify(**request)
            return caught.value

    assert asyncio.run(scenario()).detail == REPLAYED


def test_without_redis_signed_calls_are_refused_503(clock: Clock):
    async def scenario():
        dead = aioredis.Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.2)
        try:
            verifier = SignatureVerifier(secret_for, RedisNonces(dead), clock=clock)
            with pytest.raises(Problem) as caught:
                await verifier.verify(**signed(clock))
            return caught.value
        finally:
            await dead.aclose()

    problem = asyncio.run(scenario())
    assert (problem.status, problem.code) == (503, "unavailable")


def test_the_nonce_must_outlive_the_window():
    with pytest.raises(ValueError, match="twice the timestamp window"):
        SignatureVerifier(secret_for, MemoryNonces(), window=300, nonce_ttl=599)


def test_the_client_in_the_contract_page_signs_alike(monkeypatch: pytest.MonkeyPatch):
    """docs/contract-services.md shows a standalone client; it must agree with sign_request."""
    import re
    import secrets as secrets_module
    import time as time_module
    from pathlib import Path

    page = (Path(__file__).resolve().parents[2] / "docs" / "contract-services.md").read_text()
    (code,) = re.findall(r"```python\n(.*?)```", page, re.DOTALL)
    scope: dict[str, Any] = {}
    exec(code, scope)  # the page's own code
    monkeypatch.setattr(time_module, "time", lambda: 1_800_000_000.123)
    monkeypatch.setattr(secrets_module, "token_urlsafe", lambda n: "fixed-nonce-0123456789")
    url = f"https://gw.example{PATH}?q=a+b&year=2025&q=青岛"
    theirs = scope["sign"]("POST", url, BODY, "app-1", SECRET)
    ours = sign_request("POST", url, client_id="app-1", secret=SECRET, body=BODY)
    assert theirs == ours
    assert ours[TIMESTAMP] == "1800000000123"


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from(["method", "path", "query", "body", CLIENT_ID, TIMESTAMP, NONCE, SIGNATURE]),
    st.text(st.characters(codec="utf-8"), max_size=20),
)
def test_any_change_to_a_signed_request_is_refused(part: str, replacement: str):
    clock = Clock()
    request = signed(clock)
    if part in request["headers"]:
        if request["headers"][part] == replacement:
            return
        request["headers"][part] = replacement
    else:
        value = replacement.encode() if part == "body" else replacement
        if request[part] == value or (part == "method" and replacement.upper() == "POST"):
            return
        if part == "query" and sorted_query(replacement) == sorted_query(request["query"]):
            return  # the same query in another spelling
        request[part] = value
    with pytest.raises(Problem) as caught:
        asyncio.run(memory_verifier(clock).verify(**request))
    assert caught.value.status == 401
