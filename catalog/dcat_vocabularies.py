"""The controlled vocabularies DCAT-AP asks for, and how the catalog's own words map onto
them (docs/contract-dcat.md). A value with no mapping is left out of the graph rather than
published as a literal where DCAT-AP expects an IRI."""

from __future__ import annotations

from rdflib import Namespace

EU = "http://publications.europa.eu/resource/authority/"
LICENCE = Namespace(EU + "licence/")
FREQUENCY = Namespace(EU + "frequency/")
ACCESS_RIGHT = Namespace(EU + "access-right/")
LANGUAGE = Namespace(EU + "language/")
FILE_TYPE = Namespace(EU + "file-type/")
IANA = Namespace("https://www.iana.org/assignments/media-types/")

# Package `license` values (SPDX identifiers) → the EU licence vocabulary; any other SPDX
# identifier falls back to its SPDX IRI. `other-closed` is only ever on closed datasets,
# which are not published.
LICENCES: dict[str, str] = {
    "CC-BY-4.0": LICENCE["CC_BY_4_0"],
    "CC-BY-SA-4.0": LICENCE["CC_BYSA_4_0"],
    "CC0-1.0": LICENCE["CC0"],
    "ODbL-1.0": LICENCE["ODBL"],
}
SPDX = "https://spdx.org/licenses/"

# Package `update_frequency` values → the EU frequency vocabulary.
FREQUENCIES: dict[str, str] = {
    "realtime": FREQUENCY["UPDATE_CONT"],
    "continuous": FREQUENCY["UPDATE_CONT"],
    "hourly": FREQUENCY["HOURLY"],
    "daily": FREQUENCY["DAILY"],
    "weekly": FREQUENCY["WEEKLY"],
    "monthly": FREQUENCY["MONTHLY"],
    "quarterly": FREQUENCY["QUARTERLY"],
    "yearly": FREQUENCY["ANNUAL"],
    "annual": FREQUENCY["ANNUAL"],
    "irregular": FREQUENCY["IRREG"],
    "never": FREQUENCY["NEVER"],
}

# open_type → access right. `closed` has none: closed datasets are not listed at all.
ACCESS_RIGHTS: dict[str, str] = {
    "unconditional": ACCESS_RIGHT["PUBLIC"],
    "conditional": ACCESS_RIGHT["RESTRICTED"],
}

CHINESE = LANGUAGE["ZHO"]

# ADMS publisher type: the gateway serves a city's departments (市…局), local authorities.
LOCAL_AUTHORITY = "http://purl.org/adms/publishertype/LocalAuthority"

# What the records API's description (/openapi.json) conforms to.
OPENAPI_3_1 = "https://spec.openapis.org/oas/v3.1.0"

# The departments' 统一社会信用代码 (GB 32100-2015), by the publisher name the packages use.
# Empty on purpose: the project knows no verified codes, and an invented one would be
# published as fact. An installation fills this in (or a later package field replaces it);
# a publisher without a code is published with its name only.
PUBLISHER_CREDIT_CODES: dict[str, str] = {}


def licence_iri(license_id: str) -> str | None:
    if license_id in LICENCES:
        return LICENCES[license_id]
    # An SPDX-looking identifier (letters, digits, dots, dashes) gets its SPDX IRI;
    # `other-…` is CKAN's word for "no standard licence" and has none.
    spdx_like = all(c.isascii() and (c.isalnum() or c in ".-+") for c in license_id)
    if license_id and spdx_like and not license_id.lower().startswith("other"):
        return SPDX + license_id
    return None


__all__ = [
    "ACCESS_RIGHTS",
    "CHINESE",
    "FILE_TYPE",
    "FREQUENCIES",
    "IANA",
    "LICENCES",
    "LOCAL_AUTHORITY",
    "OPENAPI_3_1",
    "PUBLISHER_CREDIT_CODES",
    "licence_iri",
]
