"""What each field of a dataset will look like to an app under the default transforms
(contract §3), shown on the application form: an invented example value per field, put
through the very functions that mask the API's answers (policies.compiled). No row of the
dataset is read."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from catalog.hosted import HostedField
from policies.compiled import compile_transform
from policies.transform_rules import default_transform

# Invented values, one per pii kind (the contract's own examples where it has them).
EXAMPLES_BY_PII: dict[str, Any] = {
    "name": "张三丰",
    "id_number": "370202199001011234",
    "phone": "13812345678",
    "bank_card": "6222021234567890123",
    "email": "zhangsan@example.com",
    "address": "青岛市市南区香港中路10号",
    "date_of_birth": "1990-05-17",
    "other": "示例信息",
}
EXAMPLES_BY_TYPE: dict[str, Any] = {
    "string": "示例文本",
    "integer": 12345,
    "number": 3.5,
    "boolean": True,
    "date": "2026-01-15",
    "datetime": "2026-01-15T09:30:00+08:00",
}
# A pseudonym depends on the app's own key; the preview uses a key of its own, so the
# value shown is the right shape but never one any app receives.
PREVIEW_KEY = b"opengate application-form preview key"

TRANSFORM_LABELS = {
    "clear": "原样提供",
    "redact": "不提供（空值）",
    "mask_name": "姓名脱敏",
    "mask_id_number": "证件号脱敏",
    "mask_phone": "手机号脱敏",
    "mask_bank_card": "银行卡号脱敏",
    "mask_email": "邮箱脱敏",
    "mask_address": "地址脱敏",
    "mask_default": "通用脱敏",
    "year_only": "仅保留年份",
    "pseudonym": "假名化（每个应用不同）",
}
LEVEL_LABELS = {1: "1 级 公开", 2: "2 级 内部", 3: "3 级 敏感", 4: "4 级 高度敏感"}
PII_LABELS = {
    "none": "非个人信息",
    "name": "姓名",
    "id_number": "身份证号",
    "phone": "电话",
    "bank_card": "银行卡号",
    "email": "电子邮箱",
    "address": "地址",
    "date_of_birth": "出生日期",
    "other": "其他个人信息",
}


@dataclass(frozen=True)
class FieldPreview:
    name: str
    title: str
    level: int
    level_label: str
    pii_label: str
    transform: str
    transform_label: str
    example: str
    shown: str


def _text(value: Any) -> str:
    if value is None:
        return "（空）"
    if value is True:
        return "true"
    return str(value)


def preview(field: HostedField) -> FieldPreview:
    spec = default_transform(field.level, field.pii)
    example = EXAMPLES_BY_PII.get(field.pii, EXAMPLES_BY_TYPE.get(str(field.type), "示例"))
    shown = compile_transform(spec, key=PREVIEW_KEY, pii=field.pii)(example)
    return FieldPreview(
        name=field.name,
        title=field.title or field.name,
        level=field.level,
        level_label=LEVEL_LABELS.get(field.level, str(field.level)),
        pii_label=PII_LABELS.get(field.pii, field.pii),
        transform=spec,
        transform_label=TRANSFORM_LABELS.get(spec, spec),
        example=_text(example),
        shown=_text(shown),
    )
