"""The CKAN actions (contract §11, docs/contract-ckan.md): catalog reads through
`catalog.service` and `catalog.models`, and `datastore_search` through the one enforcement
door (`policies.access.Enforcer`), never around it.

A package is a dataset: its organization the publisher, its groups the theme and the zone,
its tags the keywords, one resource whose `url` is the records API. An interface service
(`kind == "service"`) is a package too, its one resource of type `api` being its call
route; it has no datastore.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import Text
from sqlmodel import Session, col, func, select

from audit.events import note_into
from auth.principal import Principal
from catalog.models import Dataset, DatasetField, OpenType
from catalog.service import dataset_fields, get_dataset
from ckan.envelope import invalid, not_found
from kernel.clock import iso_utc
from kernel.problems import Problem
from policies.access import Enforcer, sees_closed

MAX_ROWS = 1000  # package_search
DEFAULT_ROWS = 10
MAX_LIMIT = 32_000  # datastore_search
DEFAULT_LIMIT = 100
MAX_OFFSET = 10_000_000
FQ_KEYS = {"organization": "publisher", "groups": "group", "tags": "tag", "res_format": "format"}
# CKAN's datastore types (PostgreSQL's names) for the field dictionary's.
TYPES = {
    "string": "text",
    "integer": "int",
    "number": "numeric",
    "boolean": "bool",
    "date": "date",
    "datetime": "timestamp",
}
SORTS = {"metadata_modified": Dataset.updated_at, "name": Dataset.id, "title": Dataset.title}


@dataclass(frozen=True, slots=True)
class Call:
    """One action call: who asks, its parameters, and the request's facts it needs."""

    principal: Principal | None
    params: Mapping[str, Any]
    public_url: str
    notes: dict[str, Any]


def _text(call: Call, name: str, default: str | None = None) -> str | None:
    value = call.params.get(name, default)
    if value is None:
        return None
    if not isinstance(value, str | int | float) or isinstance(value, bool):
        raise invalid(name, f"参数 {name} 必须是字符串")
    return str(value)


def _required(call: Call, name: str) -> str:
    value = _text(call, name)
    if not value:
        raise invalid(name, f"缺少参数 {name}")
    return value


def _integer(call: Call, name: str, default: int, low: int, high: int) -> int:
    value = call.params.get(name, default)
    if isinstance(value, str) and value.isascii() and value.strip().isdigit():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise invalid(name, f"参数 {name} 必须是 {low} 到 {high} 之间的整数")
    return value


def _flag(call: Call, name: str, default: bool) -> bool:
    value = call.params.get(name, default)
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    if not isinstance(value, bool):
        raise invalid(name, f"参数 {name} 只能是 true 或 false")
    return value


# -- packages -------------------------------------------------------------------------


def _resource(d: Dataset, base: str) -> dict[str, Any]:
    if d.kind == "service":
        return {
            "id": d.id,
            "package_id": d.id,
            "name": d.title,
            "description": "接口服务：以 POST 调用，参数与返回字段见服务说明",
            "url": f"{base}/api/v1/services/{d.id}/call",
            "format": "API",
            "resource_type": "api",
            "datastore_active": False,
            "describedBy": f"{base}/api/v1/services/{d.id}",
            "last_modified": iso_utc(d.updated_at),
        }
    return {
        "id": d.id,
        "package_id": d.id,
        "name": d.title,
        "description": "记录查询接口（JSON、CSV、JSON Lines），亦可用 datastore_search",
        "url": f"{base}/api/v1/datasets/{d.id}/records",
        "format": "JSON",
        "mimetype": "application/json",
        "resource_type": "api",
        "datastore_active": True,
        "last_modified": iso_utc(d.updated_at),
    }


def organization(name: str, count: int | None = None) -> dict[str, Any]:
    org: dict[str, Any] = {
        "id": name,
        "name": name,
        "title": name,
        "type": "organization",
        "is_organization": True,
        "state": "active",
    }
    if count is not None:
        org["package_count"] = count
    return org


def _group(name: str) -> dict[str, Any]:
    return {"id": name, "name": name, "title": name, "display_name": name}


def package(d: Dataset, base: str) -> dict[str, Any]:
    return {
        "id": d.id,
        "name": d.id,
        "title": d.title,
        "notes": d.description,
        "type": "dataset",
        "state": "active",
        "private": d.open_type != OpenType.unconditional.value,
        "license_id": d.license,
        "license_title": d.license,
        "version": str(d.current_version),
        "metadata_created": iso_utc(d.created_at),
        "metadata_modified": iso_utc(d.updated_at),
        "owner_org": d.publisher,
        "organization": organization(d.publisher),
        "groups": [_group(g) for g in (d.theme, d.zone) if g],
        "tags": [{"name": k, "display_name": k, "state": "active"} for k in d.keywords],
        "num_tags": len(d.keywords),
        "resources": [_resource(d, base)],
        "num_resources": 1,
        "url": f"{base}/api/v1/{'services' if d.kind == 'service' else 'datasets'}/{d.id}",
        "extras": [
            {"key": "open_type", "value": d.open_type},
            {"key": "level", "value": str(d.level)},
            {"key": "kind", "value": d.kind},
            {"key": "update_frequency", "value": d.update_frequency},
            {"key": "row_count", "value": str(d.row_count)},
        ],
    }


def _visible(call: Call) -> list[Any]:
    return [] if sees_closed(call.principal) else [Dataset.open_type != OpenType.closed.value]


def _fq_terms(fq: str) -> list[Any]:
    """`organization:X groups:Y tags:Z res_format:JSON` (values may be quoted); terms are
    ANDed, as Solr's default operator in CKAN does."""
    terms: list[Any] = []
    for part in _fq_parts(fq):
        key, sep, value = part.partition(":")
        value = value.strip().strip('"')
        if not sep or key.lstrip("+") not in FQ_KEYS or not value:
            raise invalid(
                "fq", f"fq 仅支持 {'、'.join(f'{k}:值' for k in FQ_KEYS)}，无法理解：{part[:40]}"
            )
        kind = FQ_KEYS[key.lstrip("+")]
        if kind == "publisher":
            terms.append(Dataset.publisher == value)
        elif kind == "group":
            terms.append((Dataset.theme == value) | (Dataset.zone == value))
        elif kind == "tag":
            # keywords are a JSON list; its text holds each as a quoted string, written
            # with or without \u escapes depending on the engine's serializer
            text = func.cast(Dataset.keywords, Text())
            terms.append(
                text.contains(orjson.dumps(value).decode(), autoescape=True)
                | text.contains(json.dumps(value), autoescape=True)
            )
        else:
            fmt = value.upper()
            terms.append(Dataset.kind == ("service" if fmt == "API" else "table"))
            if fmt not in ("API", "JSON", "CSV", "JSONL"):
                terms.append(Dataset.id.is_(None))  # type: ignore[union-attr]
    return terms


def _fq_parts(fq: str) -> list[str]:
    parts: list[str] = []
    current = ""
    quoted = False
    for ch in fq:
        if ch == '"':
            quoted = not quoted
        if ch.isspace() and not quoted:
            if current:
                parts.append(current)
            current = ""
            continue
        current += ch
    if current:
        parts.append(current)
    return [p for p in parts if p.upper() != "AND"]


def _sort(raw: str | None) -> list[Any]:
    if not raw:
        return [col(Dataset.updated_at).desc(), Dataset.id]
    order: list[Any] = []
    for item in raw.split(","):
        name, _, direction = item.strip().partition(" ")
        direction = direction.strip().lower() or "asc"
        if name not in SORTS or direction not in ("asc", "desc"):
            raise invalid("sort", f"sort 仅支持 {'、'.join(SORTS)} 加 asc 或 desc，例如 name asc")
        column = col(SORTS[name])
        order.append(column.desc() if direction == "desc" else column.asc())
    return [*order, Dataset.id]


def _like(text: str) -> str:
    escaped = text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


class Actions:
    """The action table; each action takes a `Call` and returns its `result`."""

    def __init__(self, enforcer: Enforcer) -> None:
        self.enforcer = enforcer
        self.engine = enforcer.engine
        self.table: dict[str, Callable[[Call], Any]] = {
            "status_show": self.status_show,
            "package_list": self.package_list,
            "package_search": self.package_search,
            "package_show": self.package_show,
            "organization_list": self.organization_list,
            "organization_show": self.organization_show,
            "group_list": self.group_list,
            "tag_list": self.tag_list,
            "resource_show": self.resource_show,
            "datastore_search": self.datastore_search,
        }

    def run(self, name: str, call: Call) -> Any:
        action = self.table.get(name)
        if action is None:
            raise not_found(f"未知的操作 {name[:64]}；可用：{'、'.join(self.table)}")
        return action(call)

    def status_show(self, call: Call) -> dict[str, Any]:
        return {
            "site_title": "公共数据开放网关",
            "site_url": call.public_url,
            "site_description": "CKAN Action API 兼容子集（合同第 11 节）",
            "ckan_version": "2.10.0",
            "api_version": 3,
            "extensions": ["datastore"],
            "locale_default": "zh_Hans_CN",
        }

    def package_list(self, call: Call) -> list[str]:
        limit = _integer(call, "limit", MAX_ROWS, 1, MAX_ROWS)
        offset = _integer(call, "offset", 0, 0, MAX_OFFSET)
        with Session(self.engine) as s:
            rows = s.exec(
                select(Dataset.id)
                .where(*_visible(call))
                .order_by(Dataset.id)
                .offset(offset)
                .limit(limit)
            ).all()
        return list(rows)

    def package_search(self, call: Call) -> dict[str, Any]:
        rows = _integer(call, "rows", DEFAULT_ROWS, 0, MAX_ROWS)
        start = _integer(call, "start", 0, 0, MAX_OFFSET)
        q = (_text(call, "q") or "").strip()
        terms = _visible(call)
        if q and q not in ("*:*", "*"):
            terms.append(col(Dataset.search_text).like(_like(q), escape="\\"))
        fq = _text(call, "fq")
        if fq:
            terms.extend(_fq_terms(fq))
        order = _sort(_text(call, "sort"))
        with Session(self.engine) as s:
            total = s.exec(select(func.count()).select_from(Dataset).where(*terms)).one()
            found = s.exec(select(Dataset).where(*terms).order_by(*order).offset(start).limit(rows))
            results = [package(d, call.public_url) for d in found.all()]
        return {"count": total, "results": results, "sort": _text(call, "sort") or "", "facets": {}}

    def _dataset(self, call: Call, dataset_id: str) -> Dataset:
        with Session(self.engine) as s:
            try:
                return get_dataset(
                    s, dataset_id=dataset_id, include_closed=sees_closed(call.principal)
                )
            except Problem:  # its detail echoes the id in full; cut it as the others do
                raise not_found(f"数据集 {dataset_id[:64]} 不存在") from None

    def package_show(self, call: Call) -> dict[str, Any]:
        d = self._dataset(call, _required(call, "id"))
        shown = package(d, call.public_url)
        if d.kind != "service":
            with Session(self.engine) as s:
                fields = dataset_fields(s, dataset=d)
            shown["resources"][0]["fields"] = [_field(f) for f in fields]
        return shown

    def resource_show(self, call: Call) -> dict[str, Any]:
        return self.package_show(call)["resources"][0]

    def _publishers(self, call: Call) -> list[tuple[str, int]]:
        with Session(self.engine) as s:
            rows = s.exec(
                select(Dataset.publisher, func.count())
                .where(*_visible(call), Dataset.publisher != "")
                .group_by(Dataset.publisher)
                .order_by(Dataset.publisher)
            ).all()
        return [(name, count) for name, count in rows]

    def organization_list(self, call: Call) -> list[Any]:
        publishers = self._publishers(call)
        if _flag(call, "all_fields", False):
            return [organization(name, count) for name, count in publishers]
        return [name for name, _ in publishers]

    def organization_show(self, call: Call) -> dict[str, Any]:
        name = _required(call, "id")
        for publisher, count in self._publishers(call):
            if publisher == name:
                return organization(name, count)
        raise not_found(f"机构 {name[:64]} 不存在")

    def group_list(self, call: Call) -> list[Any]:
        with Session(self.engine) as s:
            datasets = s.exec(select(Dataset.theme, Dataset.zone).where(*_visible(call))).all()
        counts: dict[str, int] = {}
        for theme, zone in datasets:
            for g in {theme, zone} - {""}:
                counts[g] = counts.get(g, 0) + 1
        if _flag(call, "all_fields", False):
            return [{**_group(g), "package_count": counts[g]} for g in sorted(counts)]
        return sorted(counts)

    def tag_list(self, call: Call) -> list[str]:
        query = (_text(call, "query") or "").lower()
        with Session(self.engine) as s:
            keywords = s.exec(select(Dataset.keywords).where(*_visible(call))).all()
        tags = {k for ks in keywords for k in ks if query in k.lower()}
        return sorted(tags)

    # -- the datastore: through the door ------------------------------------------------

    def datastore_search(self, call: Call) -> dict[str, Any]:
        resource_id = _required(call, "resource_id")
        # What a refused call's event names, as /records's path does (the Access notes
        # the same once it has a plan).
        note_into(call.notes, resource=f"datasets/{resource_id[:64]}")
        hosted = self.enforcer.catalog.get(resource_id)
        if hosted is not None and not hasattr(hosted, "table"):  # an interface service
            if hosted.open_type == OpenType.closed.value and not sees_closed(call.principal):
                raise not_found(f"数据集 {resource_id[:64]} 不存在")
            raise invalid(
                "resource_id",
                f"{resource_id} 是接口服务，没有数据存储；请以 POST /api/v1/services/"
                f"{resource_id}/call 调用",
            )
        # The door decides first (404 for what the caller may not know, 403 without a
        # grant), so a refused caller learns nothing from parameter errors.
        access = self.enforcer.enforce(call.principal, resource_id, "records", notes=call.notes)
        limit = _integer(call, "limit", DEFAULT_LIMIT, 0, MAX_LIMIT)
        offset = _integer(call, "offset", 0, 0, MAX_OFFSET)
        total = _flag(call, "include_total", True)
        params = [*_filters(call), *_fields(call), *_order(call)]
        q = call.params.get("q")
        if isinstance(q, str) and q.lstrip().startswith("{"):  # a dict sent as text (GET)
            q = _json(call, "q")
        search = None
        if isinstance(q, dict):  # CKAN: {field: text}, each a substring of that field
            params.extend((f"{k}__contains", _scalar("q", v)) for k, v in q.items())
        elif q not in (None, ""):
            search = _text(call, "q")
        window = access.fetch_window(
            params, offset=offset, limit=limit, search=search, total=total, format="json"
        )
        by_name = window.hosted.by_name
        fields = [
            {"id": n, "type": TYPES[by_name[n].type] if t == "clear" else "text", "transform": t}
            for n, t in zip(window.names, window.transforms, strict=True)
        ]
        records = [dict(zip(window.names, row, strict=True)) for row in window.rows]
        base = f"/api/3/action/datastore_search?resource_id={resource_id}"
        result: dict[str, Any] = {
            "resource_id": resource_id,
            "fields": fields,
            "records": records,
            "limit": limit,
            "offset": offset,
            "_links": {
                "start": base,
                "next": f"{base}&offset={offset + limit}&limit={limit}",
            },
        }
        if window.total is not None:
            result["total"] = window.total
            result["total_was_estimated"] = False
        if window.trimmed:
            result["quota_trimmed"] = True
        return result


def _field(f: DatasetField) -> dict[str, Any]:
    return {
        "id": f.name,
        "type": TYPES.get(f.type, "text"),
        "info": {"label": f.title, "notes": f.description},
        "level": f.level,
        "pii": f.pii,
    }


def _scalar(parameter: str, value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float | str):
        return str(value)
    raise invalid(parameter, f"参数 {parameter} 的取值必须是字符串、数字或布尔值")


def _json(call: Call, name: str) -> Any:
    value = call.params.get(name)
    if isinstance(value, str):
        try:
            return orjson.loads(value)
        except orjson.JSONDecodeError:
            raise invalid(name, f"参数 {name} 不是有效的 JSON") from None
    return value


def _filters(call: Call) -> list[tuple[str, str]]:
    """CKAN's `filters` ({field: value or [values]}) as the records API's filters, which
    check each field against the caller's plan (clear fields only)."""
    filters = _json(call, "filters")
    if filters is None:
        return []
    if not isinstance(filters, dict):
        raise invalid("filters", '参数 filters 必须是 JSON 对象，例如 {"district": "市南区"}')
    params: list[tuple[str, str]] = []
    for name, value in filters.items():
        if not isinstance(name, str) or "__" in name or name in ("fields", "order_by"):
            raise invalid("filters", f"filters 中的字段名无效：{str(name)[:40]}")
        if value is None:
            params.append((f"{name}__isnull", "true"))
        elif isinstance(value, list):
            if not value:
                raise invalid("filters", f"filters 中字段 {name} 的取值列表为空")
            params.append((f"{name}__in", ",".join(_scalar("filters", v) for v in value)))
        else:
            params.append((name, _scalar("filters", value)))
    return params


def _fields(call: Call) -> list[tuple[str, str]]:
    fields = call.params.get("fields")
    if fields is None or fields == "":
        return []
    if isinstance(fields, str):
        names: Sequence[Any] = fields.split(",")
    elif isinstance(fields, list):
        names = fields
    else:
        raise invalid("fields", "参数 fields 必须是字段名列表或以逗号分隔的字符串")
    if not all(isinstance(n, str) for n in names):
        raise invalid("fields", "参数 fields 必须是字段名列表或以逗号分隔的字符串")
    return [("fields", ",".join(n.strip() for n in names))]


def _order(call: Call) -> list[tuple[str, str]]:
    """`sort`: `a, b desc` (CKAN's SQL-like form) as `order_by=a,-b`."""
    raw = _text(call, "sort")
    if not raw:
        return []
    order = []
    for item in raw.split(","):
        words = item.split()
        if not words:
            continue
        direction = words[1].lower() if len(words) > 1 else "asc"
        if len(words) > 2 or direction not in ("asc", "desc"):
            raise invalid("sort", "sort 的格式为“字段 [asc|desc]”，多个以逗号分隔")
        name = words[0].strip('"')
        order.append(f"-{name}" if direction == "desc" else name)
    return [("order_by", ",".join(order))] if order else []
