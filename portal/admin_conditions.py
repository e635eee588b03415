"""The approval form of the administrator console: the transforms offered per field (only
those a grant may set at its level, each with an example of its output) and the reading of
the submitted conditions into the overrides the API's approve takes. Every rule is the
service's (policies.grants.validate_terms); this module only turns text into values and
names the field it could not read."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from starlette.datastructures import FormData

from catalog.hosted import HostedDataset, HostedField
from kernel.problems import Problem
from policies.compiled import compile_transform
from policies.grants import QUOTA_KEYS
from policies.transform_rules import allowed_transforms, default_transform
from portal.field_preview import (
    EXAMPLES_BY_PII,
    EXAMPLES_BY_TYPE,
    LEVEL_LABELS,
    PII_LABELS,
    PREVIEW_KEY,
    TRANSFORM_LABELS,
    _text,
)
from portal.forms import text

BUCKET_WIDTHS = (10, 100, 1000)
QUOTA_LABELS = {
    "requests_per_day": "每日请求次数",
    "rows_per_day": "每日返回行数",
    "verifies_per_day": "每日核验次数",
    "verifies_per_subject_per_day": "同一对象每日核验次数",
}
CONDITION_NAMES = {
    "fields": "字段",
    "transforms": "字段处理方式",
    "modes": "使用方式",
    "row_filter": "行过滤",
    "quotas": "配额",
    "k": "最小分组 k",
    "epsilon": "隐私预算 ε",
    "duration_days": "授权期限",
}


@dataclass(frozen=True)
class Choice:
    spec: str
    label: str
    example: str


@dataclass(frozen=True)
class FieldChoices:
    name: str
    title: str
    level: int
    level_label: str
    pii: str
    pii_label: str
    default: str
    example: str
    choices: tuple[Choice, ...]


def _example_of(field: HostedField) -> Any:
    if field.pii in EXAMPLES_BY_PII:
        return EXAMPLES_BY_PII[field.pii]
    return EXAMPLES_BY_TYPE.get(str(field.type), "示例")


def _fits(spec: str, field: HostedField) -> bool:
    """A spec that means something for the field's values (the service accepts any
    grantable spec; the form offers the ones whose output is worth showing)."""
    kind = str(field.type)
    if spec == "year_only":
        return kind in ("date", "datetime")
    if spec.startswith("mask_"):
        return kind == "string"
    return True


def field_choices(field: HostedField) -> FieldChoices:
    example = _example_of(field)
    specs: list[str] = []
    for name in allowed_transforms(field.level, field.pii):
        if name == "bucket:W":
            if str(field.type) in ("integer", "number"):
                specs += [f"bucket:{w}" for w in BUCKET_WIDTHS]
        elif _fits(name, field):
            specs.append(name)
    default = default_transform(field.level, field.pii)
    if default not in specs:
        specs.append(default)
    choices = []
    for spec in specs:
        try:
            shown = _text(compile_transform(spec, key=PREVIEW_KEY, pii=field.pii)(example))
        except (ValueError, TypeError):
            shown = "（不适用）"
        label = TRANSFORM_LABELS.get(
            spec, f"分段（宽 {spec[7:]}）" if spec[:7] == "bucket:" else spec
        )
        choices.append(Choice(spec, label, shown))
    return FieldChoices(
        name=field.name,
        title=field.title or field.name,
        level=field.level,
        level_label=LEVEL_LABELS.get(field.level, str(field.level)),
        pii=field.pii,
        pii_label=PII_LABELS.get(field.pii, field.pii),
        default=default,
        example=_text(example),
        choices=tuple(choices),
    )


def _bad(parameter: str, detail: str) -> Problem:
    return Problem(400, "invalid_parameter", detail, parameter=parameter)


def _integer(form: FormData, name: str, label: str) -> int | None:
    raw = text(form, name, limit=20)
    if not raw:
        return None
    try:
        return int(raw)
    except ValueError:
        raise _bad(name, f"{label}（{name}）须为整数，收到“{raw}”") from None


def _number(form: FormData, name: str, label: str) -> float | None:
    raw = text(form, name, limit=30)
    if not raw:
        return None
    try:
        value = float(raw)
    except ValueError:
        raise _bad(name, f"{label}（{name}）须为数字，收到“{raw}”") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise _bad(name, f"{label}（{name}）须为有限的数字")
    return value


def read_conditions(form: FormData, hosted: HostedDataset) -> dict[str, Any]:
    """The conditions of the form as the API's `Conditions` body (absent: not set)."""
    overrides: dict[str, Any] = {}
    modes = [m for m in form.getlist("modes") if isinstance(m, str)][:3]
    if not modes:
        raise _bad("modes", "请至少选择一种使用方式（modes）")
    overrides["modes"] = modes
    fields = [f for f in form.getlist("fields") if isinstance(f, str)][:200]
    if not fields:
        raise _bad("fields", "请至少选择一个字段（fields）")
    if set(fields) != {f.name for f in hosted.fields}:
        overrides["fields"] = fields
    transforms: dict[str, str] = {}
    for name in fields:
        spec = text(form, f"transform.{name}", limit=60)
        field = hosted.by_name.get(name)
        # The default is not a condition: the grant stays open to a re-classification.
        if spec and (field is None or spec != default_transform(field.level, field.pii)):
            transforms[name] = spec
    if transforms:
        overrides["transforms"] = transforms
    row_filter: dict[str, str] = {}
    # One textarea (a filter a line), or one hidden field a filter on the confirm step.
    written = "\n".join(v for v in form.getlist("row_filter") if isinstance(v, str))[:2000]
    for line in written.splitlines():
        if not line.strip():
            continue
        name, sep, value = line.partition("=")
        if not sep or not name.strip():
            raise _bad(
                "row_filter", f"行过滤（row_filter）每行须写作 字段=取值，无法识别“{line[:40]}”"
            )
        row_filter[name.strip()] = value.strip()
    if row_filter:
        overrides["row_filter"] = row_filter
    quotas: dict[str, int] = {}
    for key in QUOTA_KEYS:
        value = _integer(form, f"quota.{key}", QUOTA_LABELS[key])
        if value is not None:
            quotas[key] = value
    if quotas:
        overrides["quotas"] = quotas
    for name, label in (("k", "最小分组 k"), ("duration_days", "授权期限（天）")):
        value = _integer(form, name, label)
        if value is not None:
            overrides[name] = value
    epsilon = _number(form, "epsilon", "隐私预算 ε")
    if epsilon is not None:
        overrides["epsilon"] = epsilon
    return overrides


def form_values(overrides: dict[str, Any], hosted: HostedDataset) -> list[tuple[str, str]]:
    """The overrides as hidden form fields again, for the confirm step."""
    pairs: list[tuple[str, str]] = [("modes", m) for m in overrides.get("modes", [])]
    fields = overrides.get("fields") or [f.name for f in hosted.fields]
    pairs += [("fields", f) for f in fields]
    pairs += [(f"transform.{n}", s) for n, s in (overrides.get("transforms") or {}).items()]
    pairs += [("row_filter", f"{n}={v}") for n, v in (overrides.get("row_filter") or {}).items()]
    pairs += [(f"quota.{k}", str(v)) for k, v in (overrides.get("quotas") or {}).items()]
    for name in ("k", "duration_days", "epsilon"):
        if overrides.get(name) is not None:
            pairs.append(
                (name, repr(overrides[name]) if name == "epsilon" else str(overrides[name]))
            )
    return pairs
