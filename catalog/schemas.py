"""OpenAPI response schemas of the catalog routes (search, detail, DCAT). They describe what
`catalog.service` renders; the routes answer with their own JSONResponse."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, PlainSerializer

from catalog.models import FieldType, OpenType, Pii
from kernel.clock import iso_utc

# Row attributes as response models render them (read with `from_attributes`).
UtcTime = Annotated[
    datetime,
    PlainSerializer(iso_utc, return_type=str),
    Field(description="RFC 3339, UTC"),
]
# A text column that stores "" for nothing; the API says null.
OptionalText = Annotated[str | None, AfterValidator(lambda text: text or None)]


FROM_ROWS = ConfigDict(from_attributes=True, populate_by_name=True)


class DatasetSummary(BaseModel):
    model_config = FROM_ROWS

    id: str
    title: str
    description: str
    publisher: str
    theme: str
    keywords: list[str]
    open_type: OpenType
    kind: str = Field(
        default="table",
        description="table: records, export, aggregate, verify; service: an interface service "
        "(POST /api/v1/services/{id}/call, described at GET /api/v1/services/{id})",
    )
    level: int = Field(ge=1, le=4, description="the highest level of its fields")
    zone: str
    license: str
    update_frequency: str
    version: int = Field(validation_alias="current_version")
    row_count: int
    created_at: UtcTime
    updated_at: UtcTime


class DatasetPage(BaseModel):
    total: int
    page: int
    per_page: int
    data: list[DatasetSummary]


class FieldDescription(BaseModel):
    model_config = FROM_ROWS

    name: str
    type: FieldType
    title: str
    description: str
    level: int = Field(ge=1, le=4)
    pii: Pii
    subject_key: bool


class DatasetDetail(DatasetSummary):
    primary_key: str | None
    fields: list[FieldDescription]


class DcatCatalog(BaseModel):
    """DCAT-AP 3 in compacted JSON-LD (rdflib): `@graph` holds one node per resource — the
    dcat:Catalog, its dcat:Dataset, dcat:Distribution and dcat:DataService entries, the
    publishers, the contact point and the theme concepts (docs/contract-dcat.md)."""

    model_config = ConfigDict(populate_by_name=True)

    context: dict[str, str] = Field(alias="@context")
    graph: list[dict[str, Any]] = Field(
        alias="@graph",
        description="目录中的各个节点：目录、数据集、分发、数据服务、发布机构、联系人与主题概念",
    )
