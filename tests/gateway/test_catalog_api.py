"""Catalog search, detail and DCAT over HTTP."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from catalog.importer import import_package
from tests.conftest import TestClient
from tests.packages import import_conditional, write_package

SI_FIELDS = [
    {"name": "record_id", "type": "integer", "title": "记录编号", "level": 1},
    {"name": "person_name", "type": "string", "title": "姓名", "level": 3, "pii": "name"},
    {
        "name": "id_number",
        "type": "string",
        "title": "公民身份号码",
        "level": 4,
        "pii": "id_number",
        "subject_key": True,
    },
]


@pytest.fixture
def catalog(engine: Engine, packages: Path) -> None:
    import_package(engine, write_package(packages))
    import_package(
        engine,
        write_package(
            packages,
            name="bus-stops",
            title="公交站点信息",
            keywords=["公交", "交通"],
            publisher="市交通运输局",
            theme="交通出行",
        ),
    )
    import_conditional(
        engine,
        packages,
        fields=SI_FIELDS,
        keywords=["社保", "参保"],
        publisher="市人力资源社会保障局",
        theme="社保就业",
        rows=[[1, "张三丰", "370202199001011237"]],
    )
    import_package(
        engine,
        write_package(
            packages,
            name="household-registry",
            title="户籍人口信息",
            open_type="closed",
            keywords=["户籍"],
            publisher="市公安局",
            theme="公共安全",
            fields=SI_FIELDS,
            rows=[[1, "张三丰", "370202199001011237"]],
        ),
    )


def ids(response) -> list[str]:
    assert response.status_code == 200, response.text
    return [d["id"] for d in response.json()["data"]]


def test_list_hides_closed_datasets(client: TestClient, catalog: None):
    body = client.get("/api/v1/datasets").json()
    assert body["total"] == 3 and body["page"] == 1 and body["per_page"] == 20
    assert "household-registry" not in {d["id"] for d in body["data"]}


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"q": "社保"}, ["social-insurance"]),
        ({"q": "参保缴费"}, ["social-insurance"]),
        ({"q": "人力资源"}, ["social-insurance"]),
        ({"q": "BUS"}, ["bus-stops"]),
        ({"q": "户籍"}, []),
        ({"q": "100%"}, []),
        ({"theme": "交通出行"}, ["bus-stops"]),
        ({"publisher": "市生态环境局"}, ["air-readings"]),
        ({"open_type": "conditional"}, ["social-insurance"]),
        ({"level": "4"}, ["social-insurance"]),
        ({"zone": "nowhere"}, []),
    ],
)
def test_filters(client: TestClient, catalog: None, params: dict, expected: list[str]):
    assert ids(client.get("/api/v1/datasets", params=params)) == expected


def test_pagination(client: TestClient, catalog: None):
    first = client.get("/api/v1/datasets", params={"per_page": 2, "page": 1}).json()
    second = client.get("/api/v1/datasets", params={"per_page": 2, "page": 2}).json()
    assert first["total"] == second["total"] == 3
    assert len(first["data"]) == 2 and len(second["data"]) == 1
    assert not {d["id"] for d in first["data"]} & {d["id"] for d in second["data"]}


@pytest.mark.parametrize(
    "params",
    [
        {"per_page": "0"},
        {"per_page": "101"},
        {"page": "0"},
        {"level": "5"},
        {"open_type": "sometimes"},
        {"page": "x"},
    ],
)
def test_bad_catalog_parameters(client: TestClient, catalog: None, params: dict):
    response = client.get("/api/v1/datasets", params=params)
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_parameter"
    assert response.json()["parameter"] == next(iter(params))


def test_detail_has_field_dictionary(client: TestClient, catalog: None):
    body = client.get("/api/v1/datasets/social-insurance").json()
    assert body["open_type"] == "conditional" and body["level"] == 4 and body["version"] == 1
    assert body["row_count"] == 1 and body["primary_key"] == "record_id"
    assert body["updated_at"].endswith("Z")
    assert body["fields"][2] == {
        "name": "id_number",
        "type": "string",
        "title": "公民身份号码",
        "description": "",
        "level": 4,
        "pii": "id_number",
        "subject_key": True,
    }
    assert "370202199001011237" not in client.get("/api/v1/datasets/social-insurance").text
    assert client.get("/api/v1/datasets/household-registry").status_code == 404


def test_dcat_jsonld(client: TestClient, catalog: None):
    # The graph itself is tests/catalog/test_dcat.py's; here: the route and its JSON-LD.
    response = client.get("/api/v1/catalog.jsonld")
    assert response.headers["content-type"] == "application/ld+json"
    doc = response.json()
    assert doc["@context"]["dcat"] == "http://www.w3.org/ns/dcat#"
    nodes = doc["@graph"]
    assert any(n.get("@type") == "dcat:Catalog" for n in nodes)
    entries = {n["dct:identifier"]: n for n in nodes if n.get("@type") == "dcat:Dataset"}
    assert set(entries) == {"air-readings", "bus-stops", "social-insurance"}
    bus = entries["bus-stops"]
    assert bus["dct:title"]["@value"] == "公交站点信息"
    publisher = next(n for n in nodes if n["@id"] == bus["dct:publisher"]["@id"])
    assert publisher["foaf:name"]["@value"] == "市交通运输局"
    assert len(bus["dcat:distribution"]) == 3


def test_closed_datasets_are_listed_to_data_admins_only(
    client: TestClient, engine: Engine, catalog: None
):
    from tests.auth.helpers import PASSWORD, user

    for role in ("data_admin", "developer", "auditor"):
        user(engine, f"cat-{role}", role)

    def visible(role: str) -> set[str]:
        token = client.post(
            "/auth/login", json={"username": f"cat-{role}", "password": PASSWORD}
        ).json()["access_token"]
        headers = {"Authorization": f"Bearer {token}"}
        listed = {d["id"] for d in client.get("/api/v1/datasets", headers=headers).json()["data"]}
        detail = client.get("/api/v1/datasets/household-registry", headers=headers)
        return listed | ({"detail"} if detail.status_code == 200 else set())

    assert {"household-registry", "detail"} <= visible("data_admin")
    for role in ("developer", "auditor"):
        assert not {"household-registry", "detail"} & visible(role)
