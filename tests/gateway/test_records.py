"""The records API over HTTP: fields, filters, order, keyset pages, formats, bad input."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import orjson
import pytest
from sqlalchemy.engine import Engine

from catalog.importer import import_package
from tests.conftest import TestClient
from tests.packages import STATION_FIELDS, station_rows, write_package

URL = "/api/v1/datasets/air-readings/records"


@pytest.fixture
def loaded(engine: Engine, packages: Path) -> None:
    import_package(engine, write_package(packages))


def walk(client: TestClient, url: str) -> list[dict]:
    rows: list[dict] = []
    while url:
        response = client.get(url)
        assert response.status_code == 200, response.text
        body = response.json()
        rows.extend(body["data"])
        assert len(rows) <= 250, "pagination is looping"
        link = response.headers.get("link")
        if body["next_cursor"] is None:
            assert link is None
            break
        assert link and link.endswith('; rel="next"')
        url = link[1 : link.index(">")]
    return rows


def test_default_page_and_envelope(client: TestClient, loaded: None):
    response = client.get(URL)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert body["dataset"] == "air-readings" and body["version"] == 1
    assert [f["name"] for f in body["fields"]][:3] == ["reading_id", "station", "district"]
    assert all(f["transform"] == "clear" for f in body["fields"])
    assert len(body["data"]) == 100
    assert body["data"][0]["reading_id"] == 1
    assert body["data"][0]["calibrated"] is True
    assert body["data"][0]["day"] == "2024-01-02"
    assert body["data"][0]["observed_at"] == "2024-01-02T01:00:00"
    assert "市" in response.text  # Chinese is not \u-escaped


def test_fields_selection(client: TestClient, loaded: None):
    body = client.get(URL, params={"fields": "district,aqi", "limit": 3}).json()
    assert [f["name"] for f in body["fields"]] == ["district", "aqi"]
    assert body["data"][0] == {"district": "市北区", "aqi": 37}


ROWS = [dict(zip([f["name"] for f in STATION_FIELDS], r, strict=True)) for r in station_rows(250)]


@pytest.mark.parametrize(
    ("params", "keep"),
    [
        ({"district": "崂山区"}, lambda r: r["district"] == "崂山区"),
        ({"district__ne": "崂山区"}, lambda r: r["district"] != "崂山区"),
        ({"reading_id__gt": "245"}, lambda r: r["reading_id"] > 245),
        ({"reading_id__gte": "249"}, lambda r: r["reading_id"] >= 249),
        ({"reading_id__lt": "3"}, lambda r: r["reading_id"] < 3),
        ({"reading_id__lte": "2"}, lambda r: r["reading_id"] <= 2),
        ({"reading_id__in": "5,7,9999"}, lambda r: r["reading_id"] in (5, 7)),
        ({"station__contains": "站3"}, lambda r: "站3" in r["station"]),
        ({"station__startswith": "崂山"}, lambda r: r["station"].startswith("崂山")),
        ({"aqi__isnull": "true"}, lambda r: r["aqi"] == ""),
        ({"aqi__isnull": "false"}, lambda r: r["aqi"] != ""),
        ({"aqi__gte": "290"}, lambda r: r["aqi"] != "" and r["aqi"] >= 290),
        ({"calibrated": "false"}, lambda r: r["calibrated"] == "false"),
        ({"day": "2024-01-05"}, lambda r: r["day"] == "2024-01-05"),
        ({"day__lt": "2024-01-03"}, lambda r: r["day"] < "2024-01-03"),
        (
            {"observed_at__gte": "2024-01-28T20:00:00"},
            lambda r: r["observed_at"] >= "2024-01-28T20:00:00",
        ),
        ({"pm25__gt": "148"}, lambda r: r["pm25"] != "" and r["pm25"] > 148),
        ({"station__contains": "%"}, lambda r: False),
        (
            {"district": "崂山区", "aqi__lt": "100"},
            lambda r: r["district"] == "崂山区" and r["aqi"] != "" and r["aqi"] < 100,
        ),
    ],
)
def test_filters(client: TestClient, loaded: None, params: dict, keep):
    expected = [r["reading_id"] for r in ROWS if keep(r)]
    assert expected or params == {"station__contains": "%"}, "a filter test must select rows"
    body = client.get(URL, params={**params, "limit": 1000}).json()
    assert [r["reading_id"] for r in body["data"]] == expected


@pytest.mark.parametrize("order", ["aqi", "-aqi", "district,-pm25", "-day,station", "-reading_id"])
def test_keyset_pages_never_skip_or_repeat(client: TestClient, loaded: None, order: str):
    full = client.get(URL, params={"order_by": order, "limit": 10000}).json()["data"]
    paged = walk(client, f"{URL}?order_by={order}&limit=7")
    assert [r["reading_id"] for r in paged] == [r["reading_id"] for r in full]
    assert len({r["reading_id"] for r in paged}) == 250


def test_order_puts_nulls_last_both_ways(client: TestClient, loaded: None):
    for order in ("aqi", "-aqi"):
        rows = client.get(URL, params={"order_by": order, "limit": 10000}).json()["data"]
        values = [r["aqi"] for r in rows]
        nulls = values.index(None)
        assert all(v is None for v in values[nulls:])
        assert values[:nulls] == sorted(values[:nulls], reverse=order.startswith("-"))


def test_csv_has_bom_header_and_opens_as_utf8(client: TestClient, loaded: None):
    response = client.get(
        URL, params={"format": "csv", "limit": 3, "fields": "reading_id,station,calibrated,aqi"}
    )
    assert response.headers["content-type"].startswith("text/csv")
    raw = response.content
    assert raw.startswith("\ufeff".encode())
    rows = list(csv.reader(io.StringIO(raw.decode("utf-8-sig"))))
    assert rows[0] == ["reading_id", "station", "calibrated", "aqi"]
    assert rows[1] == ["1", "市北站1", "true", "37"]
    assert response.headers["link"].endswith('rel="next"')


def test_accept_header_chooses_format(client: TestClient, loaded: None):
    response = client.get(URL, params={"limit": 2}, headers={"Accept": "application/x-ndjson"})
    lines = response.content.splitlines()
    assert len(lines) == 2 and orjson.loads(lines[0])["reading_id"] == 1
    response = client.get(URL, params={"limit": 2}, headers={"Accept": "text/csv"})
    assert response.content.startswith("\ufeff".encode())


def test_single_record(client: TestClient, loaded: None):
    body = client.get(f"{URL}/42").json()
    assert body["data"]["reading_id"] == 42
    assert client.get(f"{URL}/42", params={"fields": "station"}).json()["data"] == {
        "station": ROWS[41]["station"]
    }
    for missing in ("9999", "abc"):
        response = client.get(f"{URL}/{missing}")
        assert response.status_code == 404 and response.json()["code"] == "not_found"


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_export_streams_every_row(client: TestClient, loaded: None, fmt: str):
    response = client.get("/api/v1/datasets/air-readings/export", params={"format": fmt})
    assert response.status_code == 200
    assert "attachment" in response.headers["content-disposition"]
    if fmt == "csv":
        rows = list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"))))
        assert len(rows) == 251 and rows[0][0] == "reading_id"
    else:
        rows = [orjson.loads(line) for line in response.content.splitlines()]
        assert [r["reading_id"] for r in rows] == list(range(1, 251))
    filtered = client.get(
        "/api/v1/datasets/air-readings/export", params={"format": "jsonl", "district": "市南区"}
    )
    assert len(filtered.content.splitlines()) == len([i for i in range(1, 251) if i % 6 == 0])


@pytest.mark.parametrize(
    ("params", "parameter"),
    [
        ({"limit": "0"}, "limit"),
        ({"limit": "10001"}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"nope": "1"}, "nope"),
        ({"aqi__like": "1"}, "aqi__like"),
        ({"aqi": "high"}, "aqi"),
        ({"aqi__in": "1,x"}, "aqi__in"),
        ({"pm25__gt": "inf"}, "pm25__gt"),
        ({"day": "2024-13-01"}, "day"),
        ({"calibrated": "yes"}, "calibrated"),
        ({"aqi__isnull": "maybe"}, "aqi__isnull"),
        ({"aqi__contains": "1"}, "aqi__contains"),
        ({"order_by": "nope"}, "order_by"),
        ({"order_by": "aqi,aqi"}, "order_by"),
        ({"fields": "reading_id,nope"}, "fields"),
        ({"cursor": "not-a-cursor"}, "cursor"),
        ({"cursor": "WyJpZCIsWzJdXQ"}, "cursor"),  # a cursor from another order
        ({"cursor": "WyJyZWFkaW5nX2lkIixbInR3byJdXQ"}, "cursor"),  # wrong type inside
        ({"format": "xml"}, "format"),
        ({"limit": ["1", "2"]}, "limit"),
    ],
)
def test_bad_parameters_are_named(client: TestClient, loaded: None, params: dict, parameter: str):
    response = client.get(URL, params=params)
    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["code"] == "invalid_parameter"
    assert problem["parameter"] == parameter
    assert parameter.split("__")[0] in problem["detail"]


def test_unknown_dataset_is_404(client: TestClient):
    for url in (
        "/api/v1/datasets/nope/records",
        "/api/v1/datasets/nope/records/1",
        "/api/v1/datasets/nope/export",
        "/api/v1/datasets/nope",
    ):
        response = client.get(url)
        assert response.status_code == 404 and response.json()["code"] == "not_found"


def test_conditional_needs_grant_and_closed_does_not_exist(
    client: TestClient, engine: Engine, packages: Path
):
    fields = [
        {"name": "record_id", "type": "integer", "level": 1},
        {"name": "id_number", "type": "string", "level": 4, "pii": "id_number"},
    ]
    rows = [[1, "370202199001011237"]]
    import_package(
        engine,
        write_package(packages, name="si", open_type="conditional", fields=fields, rows=rows),
    )
    import_package(
        engine, write_package(packages, name="hh", open_type="closed", fields=fields, rows=rows)
    )
    for suffix in ("/records", "/records/1", "/export?format=csv"):
        response = client.get(f"/api/v1/datasets/si{suffix}")
        assert response.status_code == 403 and response.json()["code"] == "grant_required"
        assert "370202199001011237" not in response.text
        response = client.get(f"/api/v1/datasets/hh{suffix}")
        assert response.status_code == 404 and response.json()["code"] == "not_found"


def test_replace_is_seen_whole(client: TestClient, engine: Engine, packages: Path, loaded: None):
    package = packages / "air-readings"
    write_package(packages, rows=station_rows(5))
    import_package(engine, package, replace=True)
    body = client.get(URL, params={"limit": 10000}).json()
    assert body["version"] == 2 and len(body["data"]) == 5


@pytest.mark.parametrize(
    ("query", "parameter"),
    [
        # 1000 filters made SQLite answer "Expression tree is too large" (a 500).
        ("&".join(f"aqi__ne={i}" for i in range(1000)), "aqi__ne"),
        # a pattern over 50 kB made SQLite answer "LIKE or GLOB pattern too complex" (a 500).
        ("station__contains=" + "a" * 55_000, "station__contains"),
    ],
    ids=["many-filters", "long-pattern"],
)
def test_too_complex_a_query_is_a_named_400(
    client: TestClient, loaded: None, query: str, parameter: str
):
    response = client.get(f"{URL}?{query}")
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["code"] == "invalid_parameter"
    assert body["parameter"] == parameter
