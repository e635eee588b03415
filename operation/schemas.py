"""Request bodies and answers of the operation API, described in Chinese for the reference."""

from __future__ import annotations

from datetime import date
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

# Row ids and money fit the INTEGER columns of both databases (2^31 - 1).
IdIn = Annotated[int, Field(ge=1, le=2**31 - 1)]
Fen = Annotated[int, Field(ge=0, le=2**31 - 1)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ZoneIn(_Body):
    id: str = Field(description="专区标识，小写字母、数字或连字符，如 finance")
    name: str = Field(description="专区名称，如“金融专区”")
    description: str = Field(default="", description="专区简介")


class OperatorIn(_Body):
    name: str = Field(description="运营机构名称")
    credit_code: str = Field(description="统一社会信用代码（18 位，校验码须正确）")
    contact: str = Field(default="", description="联系人或联系方式（可选）")


class OperatorAppIn(_Body):
    client_id: str = Field(description="归属该运营机构的应用 client_id")


class AgreementIn(_Body):
    operator_id: IdIn = Field(description="运营机构编号")
    title: str = Field(description="协议名称")
    datasets: list[str] = Field(default_factory=list, description="协议范围内的数据集 id")
    services: list[str] = Field(default_factory=list, description="协议范围内的接口服务 id")
    modes: list[str] = Field(description="允许的使用方式：records、aggregate、verify、call")
    starts_on: date = Field(description="协议起始日期")
    ends_on: date = Field(description="协议终止日期，须晚于起始日期")


class Reason(_Body):
    reason: str = Field(default="", description="理由（暂停、终止时必填）")


class ScenarioIn(_Body):
    name: str = Field(description="应用场景名称")
    category: str = Field(description="类别：public_governance、public_welfare 或 industry")
    organization: str = Field(description="申请单位")
    description: str = Field(default="", description="场景说明")
    zone_id: str | None = Field(default=None, description="所属专区（可选）")


class ProductIn(_Body):
    code: str = Field(description="登记编码（登记赋码）")
    operator_id: IdIn = Field(description="运营机构编号")
    title: str = Field(description="产品名称")
    description: str = Field(default="", description="产品说明")
    zone_id: str | None = Field(default=None, description="所属专区（可选）")
    datasets: list[str] = Field(description="产品使用的数据集 id，须在运营机构的协议范围内")
    services: list[str] = Field(
        default_factory=list, description="产品使用的接口服务 id（方式 call），须在协议范围内"
    )
    modes: list[str] = Field(description="产品使用的方式")
    unit: str = Field(description="计价单位：call、1000_rows 或 month")
    price_fen: Fen = Field(description="单价（分），不超过上限")
    cap_fen: Fen = Field(description="管理部门核定的价格上限（分）")


class PriceIn(_Body):
    price_fen: Fen | None = Field(default=None, description="新单价（分）")
    cap_fen: Fen | None = Field(default=None, description="新价格上限（分），仅数据管理员可设")


class GrantBinding(_Body):
    scenario_id: IdIn | None = Field(default=None, description="获批的应用场景编号")
    product_id: IdIn | None = Field(default=None, description="计量所依据的数据产品编号")


class ZoneOut(BaseModel):
    id: str = Field(description="专区标识")
    name: str = Field(description="专区名称")
    description: str = Field(description="专区简介")
    datasets: int = Field(description="专区内已开放的数据集数")
    products: int = Field(description="专区内的数据产品数")


class ZoneList(BaseModel):
    data: list[ZoneOut] = Field(description="全部行业专区")


class OperatorOut(BaseModel):
    id: int = Field(description="运营机构编号")
    name: str = Field(description="运营机构名称")
    credit_code: str = Field(description="统一社会信用代码")
    contact: str | None = Field(description="联系方式")


class AgreementOut(BaseModel):
    id: int = Field(description="协议编号")
    operator_id: IdIn = Field(description="运营机构编号")
    title: str = Field(description="协议名称")
    datasets: list[str] = Field(description="范围内的数据集")
    services: list[str] = Field(description="范围内的接口服务")
    modes: list[str] = Field(description="允许的使用方式")
    starts_on: str = Field(description="起始日期")
    ends_on: str = Field(description="终止日期")
    status: str = Field(description="draft / active / suspended / terminated")
    status_label: str = Field(description="状态的中文名称")
    status_reason: str | None = Field(description="暂停或终止的理由")


class ScenarioOut(BaseModel):
    id: int = Field(description="场景编号")
    name: str = Field(description="场景名称")
    category: str = Field(description="场景类别")
    category_label: str = Field(description="类别的中文名称")
    zone_id: str | None = Field(description="所属专区")
    organization: str = Field(description="申请单位")
    description: str = Field(description="场景说明")
    approved_at: str | None = Field(description="批准时间；未批准为 null")


class ScenarioList(BaseModel):
    data: list[ScenarioOut] = Field(description="已批准的应用场景（公开登记）")


class ProductOut(BaseModel):
    id: int = Field(description="产品编号")
    code: str = Field(description="登记编码")
    title: str = Field(description="产品名称")
    description: str = Field(description="产品说明")
    operator: str = Field(description="运营机构")
    zone_id: str | None = Field(description="所属专区")
    datasets: list[str] = Field(description="使用的数据集")
    modes: list[str] = Field(description="使用方式")
    unit: str = Field(description="计价单位")
    unit_label: str = Field(description="计价单位的中文名称")
    price_fen: int = Field(description="单价（分）")
    price_yuan: str = Field(description="单价（元，两位小数）")
    cap_fen: int = Field(description="价格上限（分）")
    cap_yuan: str = Field(description="价格上限（元）")


class ProductList(BaseModel):
    data: list[ProductOut] = Field(description="数据产品及价格（年度公开披露）")


class StatementLine(BaseModel):
    client_id: str = Field(description="应用")
    product_id: int = Field(description="产品编号")
    product_code: str = Field(description="登记编码")
    product_title: str = Field(description="产品名称")
    operator: str = Field(description="运营机构")
    free: bool = Field(description="公共治理、公益事业场景：计量但不收费")
    calls: int = Field(description="调用次数")
    rows: int = Field(description="返回行数")
    unit: str = Field(description="计价单位")
    units: int = Field(description="计费数量（次、行或月）")
    unit_price_fen: int = Field(description="单价（分）")
    amount_fen: int = Field(description="金额（分），按千行计价时四舍五入到分")
    amount_yuan: str = Field(description="金额（元）")


class StatementOut(BaseModel):
    month: str = Field(description="账期 YYYY-MM（北京时间）")
    issued: bool = Field(description="是否已正式出具（出具后不可更改）")
    lines: list[StatementLine] = Field(description="应用 × 产品的账单行")
    total_fen: int = Field(description="合计（分）")
    total_yuan: str = Field(description="合计（元）")
    digest: str | None = Field(description="已出具账单各行的 SHA-256 摘要")
    signature: str | None = Field(description="审计密钥环对账单的 Ed25519 签名")
    key_id: str | None = Field(description="签名密钥编号")


class Difference(BaseModel):
    client_id: str = Field(description="应用")
    product_id: int = Field(description="产品编号")
    free: bool = Field(description="是否免费场景")
    ledger: dict[str, int] | None = Field(default=None, description="计量台账的次数与行数")
    issued: dict[str, int] | None = Field(default=None, description="已出具账单的次数与行数")
    audit: dict[str, int] = Field(description="由审计日志重新计算的次数与行数")


class Reconciliation(BaseModel):
    month: str = Field(description="账期")
    differences: list[Difference] = Field(description="差异；一致时为空")
