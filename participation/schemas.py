"""Request bodies of the participation API, with the Chinese descriptions the reference
shows. Lengths and presence are checked by `participation.texts`, which answers in Chinese."""

from __future__ import annotations

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
