"""The pieces of `services/` in the order a call uses them — signature, parameters, breaker,
upstream, projection, audit paths — against a stand-in upstream: the composition the gateway's
route makes, held here so that the pieces are known to fit before it exists."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import pytest

from kernel.problems import Problem
from policies.pseudonyms import derive_app_key
from services.breaker import BreakerConfig, CircuitOpen, MemoryBreaker
from services.masking import default_specs, projector
from services.package import ServiceSpec, parse_service
from services.parameters import check_call
from services.paths import ProjectionError, returned_paths
from services.signing import MemoryNonces, SignatureVerifier, sign_request
from tests.services.helpers import COMPANY_CREDIT, Clock

SECRET = b"signing-secret-of-app-1-32-bytes"
PATH = "/api/v1/services/company-credit/call"
UPSTREAM_ANSWER = {
    "code": 0,
    "trace": "internal-7781",
    "data": {
        "company_name": "青岛海晏科技有限公司",
        "legal_person": "张三丰",
        "legal_id": "370202199001011234",
        "phone": "13812345678",
        "shareholders": [{"name": "李四", "ratio": 0.6, "id_number": "370202198501011234"}],
    },
}


class Gateway:
    """What the route will do, in a dozen lines, with the upstream a plain function."""

    def __init__(self, service: ServiceSpec, clock: Clock, upstream: Callable[..., bytes]):
        self.service = service
        self.upstream = upstream
        self.verifier = SignatureVerifier(
            {"app-1": SECRET}.get, MemoryNonces(clock=clock), clock=clock
        )
        self.breaker = MemoryBreaker(BreakerConfig(failure_threshold=3, cool_down=30), clock=clock)
        key = derive_app_key(b"master" * 6, "app-1")
        self.project = projector(service, default_specs(service), key=key)
        self.events: list[dict[str, Any]] = []

    async def call(self, query: str, body: bytes, headers: dict[str, str]) -> Any:
        client = await self.verifier.verify(
            method="POST", path=PATH, query=query, headers=headers, body=body
        )
        arguments = check_call(self.service, body)
        try:
            ticket = await self.breaker.admit(self.service.name)
        except CircuitOpen as exc:
            raise exc.problem(self.service.title) from None
        try:
            answer = self.project.answer(self.upstream(arguments))
        except (ProjectionError, OSError):
            await self.breaker.failure(ticket)
            raise Problem(503, "unavailable", "上游接口出错") from None  # 502 once the code exists
        await self.breaker.success(ticket)
        self.events.append(
            {
                "client": client,
                "parameters": arguments.names,
                "paths": returned_paths(answer, self.project.tree),
            }
        )
        return answer


def signed_call(gateway: Gateway, clock: Clock, members: dict[str, Any]) -> Any:
    body = json.dumps(members).encode()
    headers = sign_request(
        "POST", PATH, client_id="app-1", secret=SECRET, body=body, timestamp_ms=int(clock() * 1000)
    )
    return asyncio.run(gateway.call("", body, headers))


def test_a_call_end_to_end(clock: Clock):
    seen = []

    def upstream(arguments):
        seen.append(arguments)
        return json.dumps(UPSTREAM_ANSWER).encode()

    gateway = Gateway(parse_service(COMPANY_CREDIT), clock, upstream)
    answer = signed_call(
        gateway, clock, {"uscc": "91370200163562681G", "legal_id": "370202199001011234"}
    )
    assert answer["code"] == 0 and "trace" not in answer
    data = answer["data"]
    assert data["legal_person"] == "张**" and data["phone"] == "138****5678"
    assert data["legal_id"].startswith("p_") and "370202" not in json.dumps(answer)
    assert data["shareholders"] == [{"name": "李*", "ratio": 0.6}]
    assert seen[0].body == {"uscc": "91370200163562681G", "legal_id": "370202199001011234"}
    (event,) = gateway.events
    assert event == {
        "client": "app-1",
        "parameters": ("uscc", "legal_id"),
        "paths": (
            "$.code",
            "$.data.company_name",
            "$.data.legal_person",
            "$.data.legal_id",
            "$.data.phone",
            "$.data.shareholders[*].name",
            "$.data.shareholders[*].ratio",
        ),
    }
    assert "370202" not in json.dumps(event)  # names, never values


def test_a_failing_upstream_opens_the_breaker_and_it_recovers(clock: Clock):
    answers = [b"<html>502 Bad Gateway</html>"] * 3 + [json.dumps(UPSTREAM_ANSWER).encode()]
    calls = []

    def upstream(arguments):
        calls.append(arguments)
        return answers[min(len(calls), len(answers)) - 1]

    gateway = Gateway(parse_service(COMPANY_CREDIT), clock, upstream)
    for _ in range(3):
        with pytest.raises(Problem) as caught:
            signed_call(gateway, clock, {"uscc": "x"})
        assert "html" not in caught.value.detail.lower()
    with pytest.raises(Problem) as caught:
        signed_call(gateway, clock, {"uscc": "x"})
    assert (caught.value.status, caught.value.headers) == (503, {"Retry-After": "30"})
    assert len(calls) == 3  # the open breaker did not call the upstream
    clock.advance(30)
    assert signed_call(gateway, clock, {"uscc": "x"})["code"] == 0  # the probe, then closed
    assert signed_call(gateway, clock, {"uscc": "x"})["code"] == 0


def test_bad_input_stops_before_the_upstream(clock: Clock):
    gateway = Gateway(parse_service(COMPANY_CREDIT), clock, lambda _a: pytest.fail("called"))
    with pytest.raises(Problem) as caught:
        signed_call(gateway, clock, {"uscc": "x", "name": "张三"})
    assert (caught.value.code, caught.value.extra) == ("invalid_parameter", {"parameter": "name"})
    body = b'{"uscc": "x"}'
    stamp = int(clock() * 1000)
    headers = sign_request(
        "POST", PATH, client_id="app-1", secret=b"wrong", body=body, timestamp_ms=stamp
    )
    with pytest.raises(Problem) as caught:
        asyncio.run(gateway.call("", body, headers))
    assert caught.value.code == "unauthorized" and caught.value.detail.startswith("签名无效")
