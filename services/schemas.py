"""What the API says about an interface service: its parameters and response paths with
their levels — never the upstream's address, which is the department's internal one."""

from __future__ import annotations

from pydantic import BaseModel, Field

from catalog.models import FieldType, OpenType, Pii


class ParameterOut(BaseModel):
    name: str
    location: str = Field(serialization_alias="in", description="query 或 body（上游接收的位置）")
    type: FieldType
    required: bool = Field(description="是否必填")
    level: int = Field(ge=1, le=4, description="分级（1–4）")
    pii: Pii
    title: str


class ResponseFieldOut(BaseModel):
    path: str = Field(description="应答中的位置，如 $.data.items[*].name")
    type: FieldType
    level: int = Field(ge=1, le=4, description="分级（1–4）；3、4 级按授权脱敏")
    pii: Pii
    title: str


class ServiceOut(BaseModel):
    id: str
    title: str
    description: str
    publisher: str
    open_type: OpenType
    level: int = Field(ge=1, le=4, description="参数与应答字段中的最高分级（就高从严）")
    version: int
    method: str = Field(description="上游接口的调用方式（网关统一以 POST …/call 接收）")
    timeout_ms: int = Field(description="上游超时（毫秒），超时答 504 upstream_timeout")
    call: str = Field(description="调用地址")
    parameters: list[ParameterOut] = Field(description="调用参数（请求体 JSON 对象的成员）")
    response: list[ResponseFieldOut] = Field(description="声明的应答字段；未声明的成员一律去除")


class ServiceList(BaseModel):
    data: list[ServiceOut]
