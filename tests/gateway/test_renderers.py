"""One renderer registry for records, one record and export: every registered format on
every route, the same problem for an unknown one, the export's file name from the
registered extension."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import orjson
import pytest
from sqlalchemy.engine import Engine

from catalog.importer import import_package
from gateway.renderers import RENDERERS
from tests.conftest import TestClient
from tests.packages import write_package

BASE = "/api/v1/datasets/air-readings"
ROUTES = (f"{BASE}/records", f"{BASE}/records/7", f"{BASE}/export")


@pytest.fixture
def loaded(engine: Engine, packages: Path) -> None:
    import_package(engine, write_package(packages))


def test_the_registry_holds_the_contract_formats():
    assert RENDERERS.names == ("json", "csv", "jsonl")
    assert [r.media_type for r in RENDERERS] == [
        "application/json",
        "text/csv; charset=utf-8",
        "application/jsonl; charset=utf-8",
    ]


@pytest.mark.parametrize("fmt", ["xml", "", "JSON", "csv;", "json,csv"])
def test_an_unknown_format_is_one_problem_everywhere(client: TestClient, loaded: None, fmt: str):
    answers = [client.get(url, params={"format": fmt}) for url in ROUTES]
    bodies = []
    for answer in answers:
        assert answer.status_code == 400, answer.text
        assert answer.headers["content-type"] == "application/problem+json"
        body = answer.json()
        assert body["code"] == "invalid_parameter" and body["parameter"] == "format"
        assert "json | csv | jsonl" in body["detail"]
        bodies.append({k: v for k, v in body.items() if k != "request_id"})
    assert bodies[0] == bodies[1] == bodies[2]
    # nothing was served: the records answer is the same afterwards
    assert client.get(f"{BASE}/records/7").json()["data"]["reading_id"] == 7


def test_a_bad_csv_option_is_refused_on_every_route(client: TestClient, loaded: None):
    for url in ROUTES:
        answer = client.get(url, params={"format": "csv", "csv_formulas": "maybe"})
        assert answer.status_code == 400 and answer.json()["parameter"] == "csv_formulas", url


def rows_of(fmt: str, content: bytes) -> list[dict]:
    if fmt == "json":
        body = orjson.loads(content)
        data = body["data"]
        return data if isinstance(data, list) else [data]
    if fmt == "jsonl":
        return [orjson.loads(line) for line in content.splitlines()]
    text = content.decode("utf-8")
    assert text.startswith("\ufeff")
    return list(csv.DictReader(io.StringIO(text[1:])))


@pytest.mark.parametrize("fmt", RENDERERS.names)
def test_every_format_answers_on_every_route(client: TestClient, loaded: None, fmt: str):
    renderer = next(r for r in RENDERERS if r.name == fmt)
    params = {"format": fmt, "fields": "reading_id,station"}
    page = client.get(f"{BASE}/records", params={**params, "limit": 250})
    one = client.get(f"{BASE}/records/7", params=params)
    export = client.get(f"{BASE}/export", params=params)
    for answer in (page, one, export):
        assert answer.status_code == 200, answer.text
        assert answer.headers["content-type"] == renderer.media_type
    assert "content-disposition" not in page.headers
    assert export.headers["content-disposition"] == (
        f'attachment; filename="air-readings-v1.{renderer.extension}"'
    )
    paged, single, exported = (rows_of(fmt, a.content) for a in (page, one, export))
    assert len(exported) == 250 and paged == exported
    assert single == [paged[6]] and str(single[0]["reading_id"]) == "7"
    if fmt == "json":
        whole = orjson.loads(export.content)
        assert whole["dataset"] == "air-readings" and whole["version"] == 1
        assert whole["fields"] == orjson.loads(page.content)["fields"]
        assert set(whole) == {"dataset", "version", "fields", "data"}


def test_an_empty_json_export_is_still_json(client: TestClient, loaded: None):
    answer = client.get(f"{BASE}/export", params={"format": "json", "reading_id": "9999"})
    body = orjson.loads(answer.content)
    assert body["data"] == [] and body["dataset"] == "air-readings"


def test_defaults_and_accept_are_the_registry_s(client: TestClient, loaded: None):
    # no format: records and one record answer JSON, an export CSV (as before)
    assert client.get(f"{BASE}/records").headers["content-type"] == "application/json"
    assert client.get(f"{BASE}/records/7").headers["content-type"] == "application/json"
    assert client.get(f"{BASE}/export").headers["content-type"].startswith("text/csv")
    # the Accept header chooses through the same table on every route
    for url in ROUTES:
        accepted = client.get(url, headers={"Accept": "application/x-ndjson"})
        assert accepted.headers["content-type"].startswith("application/jsonl"), url
        # JSON is chosen by `format=` only: an export asked for JSON by Accept stays CSV
    exported = client.get(f"{BASE}/export", headers={"Accept": "application/json"})
    assert exported.headers["content-type"].startswith("text/csv")
