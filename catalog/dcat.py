"""The public catalog as a DCAT-AP 3 graph (rdflib), and its serializations.

Closed datasets are not published. Every term DCAT-AP expects from a controlled vocabulary
is an IRI (catalog.dcat_vocabularies), typed with the class the DCAT-AP shapes ask for, so
that the graph validates on its own, without fetching the vocabularies.
docs/contract-dcat.md is the contract."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from rdflib import RDF, XSD, Graph, Literal, Namespace, URIRef
from rdflib.namespace import DCAT, DCTERMS, FOAF, SKOS
from sqlmodel import Session, select

from catalog import dcat_vocabularies as vocab
from catalog.models import Dataset, OpenType

ZH = "zh-CN"
VCARD = Namespace("http://www.w3.org/2006/vcard/ns#")

# The prefixes a serialization uses (the JSON-LD context too).
PREFIXES: dict[str, str] = {
    "dcat": str(DCAT),
    "dct": str(DCTERMS),
    "foaf": str(FOAF),
    "skos": str(SKOS),
    "vcard": str(VCARD),
    "xsd": str(XSD),
}

# (Accept media type, rdflib format, ?format= value)
FORMATS: dict[str, tuple[str, str]] = {
    "jsonld": ("application/ld+json", "json-ld"),
    "ttl": ("text/turtle", "turtle"),
    "rdf": ("application/rdf+xml", "pretty-xml"),
}


@dataclass(frozen=True, slots=True)
class CatalogInfo:
    """What the installation says of its catalog (settings)."""

    title: str
    description: str
    publisher: str
    contact_email: str


def _instant(moment: datetime) -> Literal:
    # SQLite hands back naive datetimes; they are UTC (kernel.clock), so say so.
    aware = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return Literal(aware, datatype=XSD.dateTime)


def themes_iri(base_url: str) -> URIRef:
    return URIRef(f"{base_url}/api/v1/themes")


def theme_iri(base_url: str, theme: str) -> URIRef:
    # A hash IRI: it resolves to the concept scheme document that defines it.
    return URIRef(f"{base_url}/api/v1/themes#{quote(theme, safe='')}")


class _Builder:
    def __init__(self, base_url: str, info: CatalogInfo) -> None:
        self.base = base_url
        self.info = info
        self.g = Graph()
        for prefix, ns in PREFIXES.items():
            self.g.bind(prefix, ns)
        self.catalog = URIRef(f"{base_url}/api/v1/catalog")
        self.contact = URIRef(f"{base_url}/api/v1/catalog#contact")
        self._agents: dict[str, URIRef] = {}

    def typed(self, iri: str, cls: URIRef) -> URIRef:
        """An IRI of a controlled vocabulary, with the class its vocabulary gives it."""
        node = URIRef(iri)
        self.g.add((node, RDF.type, cls))
        return node

    def zh(self, subject: Any, predicate: URIRef, text: str) -> None:
        if text:
            self.g.add((subject, predicate, Literal(text, lang=ZH)))

    def agent(self, name: str) -> URIRef:
        if name not in self._agents:
            node = URIRef(f"{self.base}/api/v1/catalog#publisher-{quote(name, safe='')}")
            self.g.add((node, RDF.type, FOAF.Agent))
            self.g.add((node, RDF.type, FOAF.Organization))
            self.g.add((node, FOAF.name, Literal(name, lang=ZH)))
            kind = self.typed(vocab.LOCAL_AUTHORITY, SKOS.Concept)
            self.g.add((kind, SKOS.prefLabel, Literal("地方政府部门", lang=ZH)))
            self.g.add((node, DCTERMS.type, kind))
            code = vocab.PUBLISHER_CREDIT_CODES.get(name)
            if code:
                self.g.add((node, DCTERMS.identifier, Literal(code)))
            self._agents[name] = node
        return self._agents[name]

    def contact_point(self) -> URIRef:
        g = self.g
        g.add((self.contact, RDF.type, VCARD.Kind))
        g.add((self.contact, RDF.type, VCARD.Organization))
        g.add((self.contact, VCARD.fn, Literal(self.info.publisher, lang=ZH)))
        g.add((self.contact, VCARD.hasEmail, URIRef(f"mailto:{self.info.contact_email}")))
        return self.contact

    def theme_scheme(self, themes: list[str]) -> URIRef:
        g = self.g
        scheme = themes_iri(self.base)
        g.add((scheme, RDF.type, SKOS.ConceptScheme))
        g.add((scheme, DCTERMS.title, Literal("数据目录主题分类", lang=ZH)))
        for theme in themes:
            concept = theme_iri(self.base, theme)
            g.add((concept, RDF.type, SKOS.Concept))
            g.add((concept, SKOS.prefLabel, Literal(theme, lang=ZH)))
            g.add((concept, SKOS.inScheme, scheme))
            g.add((scheme, SKOS.hasTopConcept, concept))
        return scheme

    def described(self, node: URIRef, d: Dataset) -> None:
        """What a DCAT dataset and a data service both say of themselves."""
        g = self.g
        g.add((node, DCTERMS.identifier, Literal(d.id)))
        self.zh(node, DCTERMS.title, d.title)
        # DCAT-AP requires a description; a package without one is described by its title.
        self.zh(node, DCTERMS.description, d.description or d.title)
        if d.publisher:
            g.add((node, DCTERMS.publisher, self.agent(d.publisher)))
        for keyword in d.keywords:
            self.zh(node, DCAT.keyword, keyword)
        if d.theme:
            g.add((node, DCAT.theme, theme_iri(self.base, d.theme)))
        if d.open_type in vocab.ACCESS_RIGHTS:
            right = self.typed(vocab.ACCESS_RIGHTS[d.open_type], DCTERMS.RightsStatement)
            g.add((node, DCTERMS.accessRights, right))
        licence = vocab.licence_iri(d.license)
        if licence:
            g.add((node, DCTERMS.license, self.typed(licence, DCTERMS.LicenseDocument)))
        g.add((node, DCAT.contactPoint, self.contact))

    def dataset(self, d: Dataset, records_api: URIRef) -> URIRef:
        g = self.g
        api = f"{self.base}/api/v1/datasets/{d.id}"
        node = URIRef(api)
        g.add((node, RDF.type, DCAT.Dataset))
        self.described(node, d)
        frequency = vocab.FREQUENCIES.get(d.update_frequency)
        if frequency:
            g.add((node, DCTERMS.accrualPeriodicity, self.typed(frequency, DCTERMS.Frequency)))
        g.add((node, DCTERMS.issued, _instant(d.created_at)))
        g.add((node, DCTERMS.modified, _instant(d.updated_at)))
        g.add((node, DCTERMS.language, self.typed(vocab.CHINESE, DCTERMS.LinguisticSystem)))
        g.add((node, DCAT.landingPage, self.typed(f"{self.base}/datasets/{d.id}", FOAF.Document)))
        # Only an unconditional dataset can be downloaded by anyone: a conditional one
        # answers its export with 403 until an app holds a grant, so it gets accessURL only.
        downloadable = d.open_type == OpenType.unconditional.value
        licence = vocab.licence_iri(d.license)
        for fmt, media, file_type, title, description in (
            (
                "json",
                "application/json",
                "JSON",
                "JSON（分页接口）",
                "按字段过滤、分页读取记录",
            ),
            ("csv", "text/csv", "CSV", "CSV 文件", "整表导出为 CSV（UTF-8）"),
            # JSON Lines has no IANA registration (application/jsonl is not one): its
            # distribution names no media type rather than a wrong one.
            ("jsonl", None, None, "JSON Lines 文件（每行一个 JSON 对象）", "整表导出为 JSON Lines"),
        ):
            dist = URIRef(f"{api}#distribution-{fmt}")
            g.add((dist, RDF.type, DCAT.Distribution))
            g.add((node, DCAT.distribution, dist))
            self.zh(dist, DCTERMS.title, title)
            self.zh(dist, DCTERMS.description, description)
            if licence:
                g.add((dist, DCTERMS.license, self.typed(licence, DCTERMS.LicenseDocument)))
            g.add((dist, DCAT.accessURL, URIRef(f"{api}/records?format={fmt}")))
            g.add((dist, DCAT.accessService, records_api))
            if downloadable and fmt != "json":
                g.add((dist, DCAT.downloadURL, URIRef(f"{api}/export?format={fmt}")))
            if media:
                g.add((dist, DCAT.mediaType, self.typed(vocab.IANA[media], DCTERMS.MediaType)))
            if file_type:
                typed = self.typed(vocab.FILE_TYPE[file_type], DCTERMS.MediaTypeOrExtent)
                g.add((dist, DCTERMS.format, typed))
        return node

    def records_api(self) -> URIRef:
        g = self.g
        node = URIRef(f"{self.base}/api/v1/datasets")
        g.add((node, RDF.type, DCAT.DataService))
        self.zh(node, DCTERMS.title, "数据集记录接口")
        self.zh(node, DCTERMS.description, "按字段过滤、分页读取已开放数据集的记录（REST，JSON）。")
        g.add((node, DCAT.endpointURL, node))
        g.add((node, DCAT.endpointDescription, URIRef(f"{self.base}/openapi.json")))
        g.add((node, DCTERMS.conformsTo, self.typed(vocab.OPENAPI_3_1, DCTERMS.Standard)))
        g.add((node, DCTERMS.publisher, self.agent(self.info.publisher)))
        g.add((node, DCAT.contactPoint, self.contact))
        return node

    def interface_service(self, d: Dataset) -> URIRef:
        g = self.g
        node = URIRef(f"{self.base}/api/v1/services/{d.id}")
        g.add((node, RDF.type, DCAT.DataService))
        self.described(node, d)
        g.add((node, DCAT.endpointURL, URIRef(f"{self.base}/api/v1/services/{d.id}/call")))
        g.add((node, DCAT.endpointDescription, node))
        return node


def catalog_graph(session: Session, *, base_url: str, info: CatalogInfo) -> Graph:
    """The public catalog: a dcat:Catalog of every dataset and interface service that is
    not closed, the records API as a dcat:DataService, and the theme concept scheme."""
    rows = session.exec(
        select(Dataset).where(Dataset.open_type != OpenType.closed.value).order_by(Dataset.id)
    ).all()
    b = _Builder(base_url, info)
    g, catalog = b.g, b.catalog
    g.add((catalog, RDF.type, DCAT.Catalog))
    b.zh(catalog, DCTERMS.title, info.title)
    b.zh(catalog, DCTERMS.description, info.description)
    g.add((catalog, DCTERMS.publisher, b.agent(info.publisher)))
    g.add((catalog, FOAF.homepage, b.typed(f"{base_url}/", FOAF.Document)))
    g.add((catalog, DCTERMS.language, b.typed(vocab.CHINESE, DCTERMS.LinguisticSystem)))
    b.contact_point()
    themes = sorted({d.theme for d in rows if d.theme})
    g.add((catalog, DCAT.themeTaxonomy, b.theme_scheme(themes)))
    if rows:
        first, last = min(d.created_at for d in rows), max(d.updated_at for d in rows)
        g.add((catalog, DCTERMS.issued, _instant(first)))
        g.add((catalog, DCTERMS.modified, _instant(last)))
    records_api = b.records_api()
    g.add((catalog, DCAT.service, records_api))
    for d in rows:
        if d.kind == "service":  # a department's API: a data service, nothing to download
            g.add((catalog, DCAT.service, b.interface_service(d)))
        else:
            dataset = b.dataset(d, records_api)
            g.add((catalog, DCAT.dataset, dataset))
            g.add((records_api, DCAT.servesDataset, dataset))
    return g


def themes_graph(session: Session, *, base_url: str) -> Graph:
    """The theme concept scheme alone (GET /api/v1/themes)."""
    themes = session.exec(
        select(Dataset.theme)
        .where(Dataset.open_type != OpenType.closed.value, Dataset.theme != "")
        .distinct()
        .order_by(Dataset.theme)
    ).all()
    b = _Builder(base_url, CatalogInfo("", "", "", ""))
    b.theme_scheme(list(themes))
    return b.g


def serialize(graph: Graph, fmt: str) -> bytes:
    rdflib_format = FORMATS[fmt][1]
    if fmt == "jsonld":
        return graph.serialize(format=rdflib_format, context=PREFIXES, auto_compact=True).encode()
    return graph.serialize(format=rdflib_format, encoding="utf-8")


def negotiate(accept: str | None) -> str | None:
    """The ?format= key for an Accept header; None when nothing offered is acceptable.
    No header, */* and application/* (or application/json) get JSON-LD."""
    if not accept:
        return "jsonld"
    offered = {media: key for key, (media, _) in FORMATS.items()}
    best: tuple[float, int, str] | None = None
    for position, part in enumerate(accept.split(",")):
        media, *params = (p.strip() for p in part.split(";"))
        quality = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        media = media.lower()
        if media in offered:
            key = offered[media]
        elif media in ("*/*", "application/*", "application/json"):
            key = "jsonld"
        elif media == "text/*":
            key = "ttl"
        else:
            continue
        if quality > 0 and (best is None or (quality, -position) > (best[0], best[1])):
            best = (quality, -position, key)
    return best[2] if best else None


__all__ = [
    "FORMATS",
    "PREFIXES",
    "VCARD",
    "CatalogInfo",
    "catalog_graph",
    "negotiate",
    "serialize",
    "theme_iri",
    "themes_graph",
    "themes_iri",
]
