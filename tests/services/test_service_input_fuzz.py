"""Fuzzing what callers and publishers send: any call body gives checked arguments or a
`Problem` of the contract's codes (never another exception, never the value in the
detail), and any descriptor gives a spec or one `ServicePackageError` line."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from kernel.problems import Problem
from services.package import ServicePackageError, parse_service
from services.parameters import CallLimits, check_call
from tests.services.helpers import COMPANY_CREDIT

SERVICE = parse_service(COMPANY_CREDIT)
NAMES = [p.name for p in SERVICE.parameters]
MARK = "zz-secret-value-zz"  # every generated text carries it: a detail must never

json_values = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-(2**63), max_value=2**63 - 1),
        st.floats(allow_nan=False, allow_infinity=False),
        st.text(max_size=10).map(lambda t: t + MARK),
    ),
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(st.text(max_size=5), children, max_size=4)
    ),
    max_leaves=12,
)
bodies = st.one_of(
    st.dictionaries(st.sampled_from([*NAMES, "other", "Uscc"]), json_values, max_size=6),
    json_values,
)


@settings(max_examples=300, deadline=None)
@given(st.one_of(bodies.map(lambda b: json.dumps(b).encode()), st.binary(max_size=80)))
def test_any_call_body(raw: bytes):
    limits = CallLimits(max_body_bytes=400)
    try:
        call = check_call(SERVICE, raw, limits)
    except Problem as problem:
        assert (problem.status, problem.code) in {
            (400, "invalid_parameter"),
            (413, "payload_too_large"),
        }
        assert MARK not in problem.detail
        assert problem.code != "invalid_parameter" or "parameter" in problem.extra
        return
    assert set(call.names) <= set(NAMES) and "uscc" in call.names
    assert {n for n, _ in call.query} | set(call.body) == set(call.names)
    assert all(type(v) is str for _, v in call.query)


descriptor_parts = st.fixed_dictionaries(
    {},
    optional={
        "name": st.one_of(st.sampled_from(["svc", "company-credit", "A", ""]), json_values),
        "title": st.one_of(st.just("服务"), json_values),
        "open_type": st.one_of(st.sampled_from(["conditional", "unconditional"]), json_values),
        "upstream": st.one_of(
            st.fixed_dictionaries(
                {},
                optional={
                    "url": st.one_of(st.just("http://127.0.0.1:1/x"), json_values),
                    "method": st.one_of(st.sampled_from(["GET", "POST"]), json_values),
                    "timeout_ms": st.one_of(st.integers(-10, 10**6), json_values),
                },
            ),
            json_values,
        ),
        "parameters": st.one_of(
            st.lists(
                st.fixed_dictionaries(
                    {
                        "name": st.sampled_from(["q", "Q", "1x", "id"]),
                        "in": st.sampled_from(["query", "body", "x"]),
                    },
                    optional={"type": json_values, "level": json_values, "pii": json_values},
                ),
                max_size=3,
            ),
            json_values,
        ),
        "response": st.one_of(
            st.fixed_dictionaries(
                {
                    "fields": st.one_of(
                        st.lists(
                            st.fixed_dictionaries(
                                {
                                    "path": st.one_of(
                                        st.sampled_from(["$.a", "$.a.b", "$.a[*]", "$[*]", "$..x"]),
                                        json_values,
                                    )
                                },
                                optional={"type": json_values, "level": st.integers(0, 5)},
                            ),
                            max_size=4,
                        ),
                        json_values,
                    )
                }
            ),
            json_values,
        ),
        "extra": json_values,
    },
)


@settings(max_examples=300, deadline=None)
@given(descriptor_parts)
def test_any_descriptor(doc: dict[str, Any]):
    try:
        spec = parse_service(doc)
    except ServicePackageError as exc:
        message = str(exc)
        assert message.startswith("service.json") and "\n" not in message
        return
    assert spec.fields and spec.tree.paths == tuple(f.path for f in spec.fields)
