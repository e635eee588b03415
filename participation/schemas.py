"""Request bodies of the participation API, with the Chinese descriptions the reference
shows. Lengths and presence are checked by `participation.texts`, which answers in Chinese."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class FeedbackIn(_Body):
    field: str | None = Field(default=None, description="有误的字段名（可选），须为数据集字段")
    record: str | None = Field(
        default=None, description="有误记录的主键（可选）；主键不公开的数据集不接受"
    )
    message: str = Field(
        description="问题说明，1–2000 字；引用的本记录三、四级字段值只以密钥摘要保存"
    )


class FeedbackNote(_Body):
    response: str | None = Field(default=None, description="受理说明（可选）")


class FeedbackReject(_Body):
    reason: str = Field(description="不予采纳的理由，将展示给提交人")


class FeedbackFixed(_Body):
    version: int = Field(description="已修正的数据集版本号：已发布且晚于纠错时的版本")


class DemandIn(_Body):
    title: str = Field(description="需求名称，1–100 字")
    description: str = Field(description="需求描述：需要哪些数据、字段、更新频率，1–2000 字")
    department: str | None = Field(default=None, description="期望提供数据的部门（可选）")
    scenario: str | None = Field(default=None, description="应用场景（可选），1000 字以内")


class DemandAnswer(_Body):
    response: str = Field(description="答复内容")


class DemandSatisfy(_Body):
    dataset_id: str = Field(description="满足该需求的已开放数据集 id")
    response: str | None = Field(default=None, description="答复内容（可选）")


class DemandDecline(_Body):
    reason: str = Field(description="未能满足的理由")


# Answers. Routes return `JSONResponse` directly (no second validation on the way out);
# these models are what the OpenAPI document shows a caller.


class FeedbackOut(BaseModel):
    id: int = Field(description="纠错编号")
    dataset_id: str = Field(description="数据集 id")
    version: int | None = Field(description="提交时数据集的版本号")
    field: str | None = Field(description="有误的字段名")
    record: str | None = Field(description="有误记录的主键")
    message: str = Field(description="问题说明；引用的三、四级字段值已替换为摘要")
    redacted: bool = Field(description="说明中是否有三、四级字段值被隐去")
    reporter: str | None = Field(description="提交人账号；匿名提交为 null")
    status: str = Field(description="submitted / accepted / rejected / fixed")
    status_label: str = Field(description="状态的中文名称")
    response: str | None = Field(description="处理说明或不予采纳的理由")
    fixed_in_version: int | None = Field(description="已修正的数据集版本号")
    created_at: str = Field(description="提交时间（UTC，ISO 8601）")
    handled_at: str | None = Field(description="处理时间（UTC，ISO 8601）；未处理为 null")


class FeedbackPage(BaseModel):
    data: list[FeedbackOut] = Field(description="本页的纠错，新提交的在前")
    next_cursor: str | None = Field(description="下一页的游标；没有更多时为 null")


class DemandOut(BaseModel):
    id: int = Field(description="需求编号")
    title: str = Field(description="需求名称")
    description: str = Field(description="需求描述")
    department: str | None = Field(description="期望提供数据的部门")
    scenario: str | None = Field(description="应用场景")
    status: str = Field(description="open / answered / satisfied / declined")
    status_label: str = Field(description="状态的中文名称")
    response: str | None = Field(description="答复内容或未能满足的理由")
    dataset_id: str | None = Field(description="满足该需求的数据集 id")
    seconds: int = Field(description="附议人数")
    created_at: str = Field(description="提出时间（UTC，ISO 8601）")
    answered_at: str | None = Field(description="答复时间（UTC，ISO 8601）；未答复为 null")


class DemandPage(BaseModel):
    data: list[DemandOut] = Field(description="本页的数据需求，新提出的在前")
    next_cursor: str | None = Field(description="下一页的游标；没有更多时为 null")


class Overview(BaseModel):
    """The cockpit's public totals; every member is a count or a list of counts."""

    datasets: dict[str, Any] = Field(description="按开放属性、分级、主题、部门、专区的数据集数量")
    demands: dict[str, Any] = Field(description="数据需求的受理、答复与满足")
    feedback: dict[str, Any] = Field(description="纠错的受理与按时处理")
    requests: dict[str, Any] = Field(description="近 30 天每日数据调用量")
    top_datasets: list[dict[str, Any]] = Field(description="最常用的数据集")
    generated_at: str = Field(description="统计时间（UTC，ISO 8601）；每 30 秒至多更新一次")
