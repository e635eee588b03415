"""API docs for people (issue 15 point 7): every operation of /openapi.json has a Chinese
summary and every property of every schema a description."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient

from gateway.openapi_text import BY_NAME, BY_SCHEMA, describe

CJK = re.compile(r"[\u4e00-\u9fff]")
METHODS = {"get", "post", "put", "patch", "delete"}


def test_every_operation_has_a_chinese_summary(client: TestClient) -> None:
    document = client.get("/openapi.json").json()
    missing = [
        f"{method.upper()} {path}: {operation.get('summary')!r}"
        for path, operations in document["paths"].items()
        for method, operation in operations.items()
        if method in METHODS and not CJK.search(operation.get("summary") or "")
    ]
    assert len(document["paths"]) > 40
    assert not missing, missing


def test_every_schema_property_has_a_description(client: TestClient) -> None:
    schemas = client.get("/openapi.json").json()["components"]["schemas"]
    missing, seen = [], 0
    for name, schema in schemas.items():
        for prop, spec in schema.get("properties", {}).items():
            seen += 1
            if not (spec.get("description") or "").strip():
                missing.append(f"{name}.{prop}")
    assert seen > 300
    assert not missing, missing
    grants = schemas["GrantSummary"]["properties"]
    assert "行过滤" in grants["row_filter"]["description"]
    assert "转换" in grants["transforms"]["description"]
    assert "配额" in grants["quotas"]["description"]


def test_a_description_a_model_writes_wins_over_the_glossary(client: TestClient) -> None:
    schemas = client.get("/openapi.json").json()["components"]["schemas"]
    # Problem.detail is described on its model (kernel/problem_schema.py)
    assert schemas["Problem"]["properties"]["detail"]["description"] != BY_NAME["detail"]


def test_the_glossary_names_only_what_the_document_has(client: TestClient) -> None:
    """No stale entry: each glossary name is a property somewhere in the document."""
    schemas = client.get("/openapi.json").json()["components"]["schemas"]
    props = {prop for schema in schemas.values() for prop in schema.get("properties", {})}
    pairs = {
        f"{name}.{prop}"
        for name, schema in schemas.items()
        for prop in schema.get("properties", {})
    }
    assert set(BY_NAME) - props == set()
    assert set(BY_SCHEMA) - pairs == set()
    assert describe("RecordsPage", "data") == BY_SCHEMA["RecordsPage.data"]
