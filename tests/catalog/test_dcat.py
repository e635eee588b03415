"""The DCAT-AP catalog over HTTP: validated with pySHACL against the official DCAT-AP 3.0.1
shapes (vendored in tests/catalog/shapes/, no network), content negotiation, and the IRIs
it publishes (docs/contract-dcat.md)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pyshacl import validate
from rdflib import RDF, Graph, Literal, Namespace, URIRef
from rdflib.compare import isomorphic
from rdflib.namespace import DCTERMS, FOAF, SKOS
from sqlalchemy.engine import Engine

from catalog import dcat_vocabularies
from catalog.dcat import VCARD
from catalog.importer import import_package
from gateway.demo_upstreams import service_packages
from gateway.settings import Settings
from services.registry import import_service
from tests.conftest import TestClient
from tests.gateway.test_catalog_api import catalog as catalog_fixture  # noqa: F401 (a fixture)
from tests.packages import write_package

SHAPES_DIR = Path(__file__).parent / "shapes"
# An open namespace: pytest probes module attributes, and rdflib's DCAT warns on each probe.
DCAT = Namespace("http://www.w3.org/ns/dcat#")
EU = "http://publications.europa.eu/resource/authority/"
IANA = "https://www.iana.org/assignments/media-types/"
CONTACT = "opendata-test@example.gov.cn"


@pytest.fixture(scope="module")
def shapes() -> Graph:
    graph = Graph()
    for name in ("shapes.ttl", "range.ttl", "shapes_recommended.ttl"):
        graph.parse(SHAPES_DIR / name, format="turtle")
    return graph


@pytest.fixture
def demo_like(
    catalog_fixture: None,  # noqa: F811 (the fixture imported above)
    engine: Engine,
    packages: Path,
    tmp_path: Path,
) -> None:
    """The demo's shape: test_catalog_api's catalog (unconditional daily datasets, a
    conditional and a closed one), an hourly dataset and the demo's interface services."""
    hourly = write_package(packages, name="air-hourly", title="空气质量小时值")
    descriptor = json.loads((hourly / "datapackage.json").read_text(encoding="utf-8"))
    descriptor["update_frequency"] = "hourly"
    (hourly / "datapackage.json").write_text(json.dumps(descriptor), encoding="utf-8")
    import_package(engine, hourly)
    for name, doc in service_packages("http://127.0.0.1:9").items():
        folder = tmp_path / "services" / name
        folder.mkdir(parents=True)
        (folder / "service.json").write_text(json.dumps(doc, ensure_ascii=False))
        import_service(engine, folder)


@pytest.fixture
def api(engine: Engine, settings: Settings, demo_like: None) -> Iterator[TestClient]:
    from gateway.app import create_app

    configured = settings.model_copy(update={"catalog_contact_email": CONTACT})
    with TestClient(create_app(configured, engine=engine)) as client:
        yield client


def fetch(client: TestClient, url: str = "/api/v1/catalog", **headers: str) -> Graph:
    response = client.get(url, headers=headers)
    assert response.status_code == 200, response.text
    media = response.headers["content-type"].split(";")[0]
    return Graph().parse(data=response.content, format=media)


def violations(data: Graph, shapes: Graph) -> tuple[int, str]:
    _conforms, report, text = validate(
        data, shacl_graph=shapes, inference="none", allow_warnings=True, do_owl_imports=False
    )
    sh = "http://www.w3.org/ns/shacl#"
    count = len(
        set(report.subjects(RDF.type, URIRef(sh + "ValidationResult")))
        & set(report.subjects(URIRef(sh + "resultSeverity"), URIRef(sh + "Violation")))
    )
    return count, text


def ds(client: TestClient, name: str) -> URIRef:
    return URIRef(f"{client.app.state.public_url}/api/v1/datasets/{name}")


# --- SHACL ------------------------------------------------------------------------------


def test_the_demo_like_catalog_has_no_dcat_ap_violations(api: TestClient, shapes: Graph):
    graph = fetch(api, Accept="text/turtle")
    count, text = violations(graph, shapes)
    assert count == 0, text
    # It is the catalog the test means: datasets, services and their distributions.
    assert len(set(graph.subjects(RDF.type, DCAT.Dataset))) == 4
    assert len(set(graph.subjects(RDF.type, DCAT.DataService))) == 3
    assert len(set(graph.subjects(RDF.type, DCAT.Distribution))) == 12


def test_the_shapes_do_catch_a_broken_catalog(api: TestClient, shapes: Graph):
    graph = fetch(api)
    root = next(graph.subjects(RDF.type, DCAT.Catalog))
    graph.remove((root, DCTERMS.title, None))  # DCAT-AP: a catalog has a title
    bus = ds(api, "bus-stops")
    graph.set((bus, DCAT.theme, Literal("交通出行")))  # a literal where a concept belongs
    count, text = violations(graph, shapes)
    assert count >= 2, text


# --- content negotiation ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("accept", "media"),
    [
        ("application/ld+json", "application/ld+json"),
        ("text/turtle", "text/turtle"),
        ("application/rdf+xml", "application/rdf+xml"),
        ("text/html;q=0.9, text/turtle;q=0.5", "text/turtle"),
        ("application/rdf+xml;q=0.4, application/ld+json;q=0.8", "application/ld+json"),
        ("*/*", "application/ld+json"),
    ],
)
def test_accept_chooses_the_serialization(api: TestClient, accept: str, media: str):
    for url in ("/api/v1/catalog", "/api/v1/catalog.jsonld"):
        response = api.get(url, headers={"Accept": accept})
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].split(";")[0] == media
        assert "Accept" in response.headers["vary"]


def test_the_three_serializations_are_one_graph(api: TestClient):
    turtle = fetch(api, Accept="text/turtle")
    assert isomorphic(turtle, fetch(api, Accept="application/rdf+xml"))
    assert isomorphic(turtle, fetch(api, Accept="application/ld+json"))
    assert isomorphic(turtle, fetch(api, "/api/v1/catalog.jsonld"))


@pytest.mark.parametrize(
    ("fmt", "media"),
    [("ttl", "text/turtle"), ("rdf", "application/rdf+xml"), ("jsonld", "application/ld+json")],
)
def test_the_format_parameter_wins_over_accept(api: TestClient, fmt: str, media: str):
    response = api.get("/api/v1/catalog", params={"format": fmt}, headers={"Accept": "text/html"})
    assert response.status_code == 200
    assert response.headers["content-type"].split(";")[0] == media


def test_an_unoffered_media_type_is_a_chinese_406(api: TestClient):
    for url in ("/api/v1/catalog", "/api/v1/catalog.jsonld", "/api/v1/themes"):
        response = api.get(url, headers={"Accept": "text/html, application/xml;q=0.9"})
        assert response.status_code == 406
        assert response.headers["content-type"] == "application/problem+json"
        problem = response.json()
        assert problem["code"] == "not_acceptable"
        assert "text/turtle" in problem["detail"] and "格式" in problem["detail"]


def test_an_unknown_format_parameter_is_refused(api: TestClient):
    response = api.get("/api/v1/catalog", params={"format": "xml"})
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_parameter"
    assert not response.json()["detail"].isascii()


# --- what the graph says ------------------------------------------------------------------


def test_closed_datasets_are_not_published(api: TestClient):
    graph = fetch(api)
    assert (ds(api, "household-registry"), None, None) not in graph
    assert "户籍" not in graph.serialize(format="turtle")
    assert "other-closed" not in graph.serialize(format="turtle")


def test_access_rights_and_downloads_follow_the_open_type(api: TestClient):
    graph = fetch(api)
    public, restricted = URIRef(EU + "access-right/PUBLIC"), URIRef(EU + "access-right/RESTRICTED")
    assert graph.value(ds(api, "air-readings"), DCTERMS.accessRights) == public
    si = ds(api, "social-insurance")
    assert graph.value(si, DCTERMS.accessRights) == restricted
    # A conditional dataset's export answers 403 without a grant: no downloadURL for it.
    si_dists = list(graph.objects(si, DCAT.distribution))
    assert len(si_dists) == 3
    assert all(graph.value(d, DCAT.accessURL) for d in si_dists)
    assert not any(graph.value(d, DCAT.downloadURL) for d in si_dists)
    assert api.get("/api/v1/datasets/social-insurance/export?format=csv").status_code in (401, 403)
    downloads = {
        str(graph.value(d, DCAT.downloadURL))
        for d in graph.objects(ds(api, "air-readings"), DCAT.distribution)
    } - {"None"}
    assert len(downloads) == 2
    for url in downloads:  # what the catalog says the public can download, it can
        path = url.removeprefix(api.app.state.public_url)
        assert api.get(path).status_code == 200, url


def test_vocabulary_terms_are_iris(api: TestClient):
    graph = fetch(api)
    air, bus = ds(api, "air-readings"), ds(api, "bus-stops")
    assert graph.value(air, DCTERMS.license) == URIRef(EU + "licence/CC_BY_4_0")
    assert graph.value(air, DCTERMS.accrualPeriodicity) == URIRef(EU + "frequency/DAILY")
    hourly = graph.value(ds(api, "air-hourly"), DCTERMS.accrualPeriodicity)
    assert hourly == URIRef(EU + "frequency/HOURLY")
    assert graph.value(bus, DCTERMS.license) == URIRef(EU + "licence/CC_BY_4_0")
    assert graph.value(air, DCTERMS.language) == URIRef(EU + "language/ZHO")
    media = {
        graph.value(d, DCTERMS.title).value: graph.value(d, DCAT.mediaType)
        for d in graph.objects(air, DCAT.distribution)
    }
    assert media["CSV 文件"] == URIRef(IANA + "text/csv")
    assert media["JSON（分页接口）"] == URIRef(IANA + "application/json")
    # JSON Lines has no IANA registration: no media type rather than a wrong one.
    assert media["JSON Lines 文件（每行一个 JSON 对象）"] is None
    for dist in graph.objects(air, DCAT.distribution):  # each distribution under its licence
        assert graph.value(dist, DCTERMS.license) == URIRef(EU + "licence/CC_BY_4_0")
    for predicate in (DCAT.theme, DCTERMS.license, DCTERMS.accrualPeriodicity, DCAT.mediaType):
        assert all(isinstance(o, URIRef) for o in graph.objects(None, predicate)), predicate


def test_themes_are_a_published_concept_scheme(api: TestClient):
    graph = fetch(api)
    themes = set(graph.objects(None, DCAT.theme))
    service_themes = {doc["theme"] for doc in service_packages("http://127.0.0.1:9").values()}
    expected = {"生态环境", "交通出行", "社保就业"} | service_themes
    scheme = graph.value(next(graph.subjects(RDF.type, DCAT.Catalog)), DCAT.themeTaxonomy)
    assert str(scheme).endswith("/api/v1/themes")
    published = fetch(api, "/api/v1/themes", Accept="text/turtle")
    assert (scheme, RDF.type, SKOS.ConceptScheme) in published
    for concept in themes:
        assert (concept, SKOS.inScheme, scheme) in published
        assert published.value(concept, SKOS.prefLabel).language == "zh-CN"
    assert {published.value(c, SKOS.prefLabel).value for c in themes} == expected
    assert "公共安全" not in {str(o) for o in published.objects(None, SKOS.prefLabel)}


def test_catalog_metadata_publisher_and_contact(api: TestClient):
    graph = fetch(api)
    root = next(graph.subjects(RDF.type, DCAT.Catalog))
    assert str(root) == f"{api.app.state.public_url}/api/v1/catalog"
    for predicate in (DCTERMS.title, DCTERMS.description):
        assert graph.value(root, predicate).language == "zh-CN"
    assert graph.value(root, FOAF.homepage) == URIRef(f"{api.app.state.public_url}/")
    for predicate in (DCTERMS.issued, DCTERMS.modified):  # instants, with their zone
        assert graph.value(root, predicate).value.tzinfo is not None
    publisher = graph.value(ds(api, "bus-stops"), DCTERMS.publisher)
    assert (publisher, RDF.type, FOAF.Organization) in graph
    assert graph.value(publisher, FOAF.name).value == "市交通运输局"
    authority = URIRef("http://purl.org/adms/publishertype/LocalAuthority")
    assert graph.value(publisher, DCTERMS.type) == authority
    contact = graph.value(ds(api, "bus-stops"), DCAT.contactPoint)
    assert (contact, RDF.type, VCARD.Kind) in graph
    assert graph.value(contact, VCARD.hasEmail) == URIRef(f"mailto:{CONTACT}")
    assert graph.value(contact, VCARD.fn)


def test_a_known_credit_code_is_the_publishers_identifier(
    api: TestClient, monkeypatch: pytest.MonkeyPatch
):
    code = "11370200MB1234567X"
    monkeypatch.setitem(dcat_vocabularies.PUBLISHER_CREDIT_CODES, "市交通运输局", code)
    graph = fetch(api)
    publisher = graph.value(ds(api, "bus-stops"), DCTERMS.publisher)
    assert graph.value(publisher, DCTERMS.identifier) == Literal(code)
    other = graph.value(ds(api, "air-readings"), DCTERMS.publisher)
    assert graph.value(other, DCTERMS.identifier) is None  # unknown: no invented code


def test_data_services(api: TestClient):
    graph = fetch(api)
    base = api.app.state.public_url
    records = URIRef(f"{base}/api/v1/datasets")
    assert (records, RDF.type, DCAT.DataService) in graph
    served = set(graph.objects(records, DCAT.servesDataset))
    names = ("air-readings", "air-hourly", "bus-stops", "social-insurance")
    assert served == {ds(api, n) for n in names}
    for name in service_packages("http://127.0.0.1:9"):
        service = URIRef(f"{base}/api/v1/services/{name}")
        assert (service, RDF.type, DCAT.DataService) in graph
        assert graph.value(service, DCAT.endpointURL) == URIRef(f"{service}/call")
        assert graph.value(service, DCTERMS.accessRights) == URIRef(EU + "access-right/RESTRICTED")
    # Every IRI the gateway mints is under its configured address, not the Host header.
    turtle = api.get("/api/v1/catalog?format=ttl", headers={"Host": "evil.example"}).text
    assert "evil.example" not in turtle


def test_jsonld_is_compacted_with_the_dcat_prefixes(api: TestClient):
    response = api.get("/api/v1/catalog.jsonld")
    assert response.headers["content-type"] == "application/ld+json"
    doc: dict[str, Any] = response.json()
    assert doc["@context"]["dcat"] == str(DCAT)
    types = {n.get("@type") for n in doc["@graph"] if isinstance(n.get("@type"), str)}
    assert {"dcat:Catalog", "dcat:Dataset", "dcat:DataService"} <= types
