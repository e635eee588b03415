"""The catalog as the administrator sees it (`/admin/datasets…`): every dataset, closed
ones included, with its open type and level, each field's level and pii kind, and the
import history (every version, its rows, its source digest)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from sqlmodel import col, select
from starlette.responses import HTMLResponse, Response

from catalog.models import Dataset, DatasetField, DatasetVersion
from catalog.request_state import SessionDep
from policies.transform_rules import default_transform
from portal.admin_pages import admin_page, need_admin
from portal.field_preview import LEVEL_LABELS, PII_LABELS

router = APIRouter(include_in_schema=False)

OPEN_TYPES = {"unconditional": "无条件开放", "conditional": "有条件开放", "closed": "不予开放"}


@router.get("/admin/datasets", response_class=HTMLResponse)
def datasets_page(request: Request, db: SessionDep) -> Response:
    need_admin(request)
    rows = list(db.exec(select(Dataset).order_by(col(Dataset.open_type), col(Dataset.title))))
    context = {"rows": rows, "open_types": OPEN_TYPES, "levels": LEVEL_LABELS}
    return admin_page(request, "admin/datasets.html", context, tab="datasets")


@router.get("/admin/datasets/{dataset_id}", response_class=HTMLResponse)
def dataset_page(dataset_id: str, request: Request, db: SessionDep) -> Response:
    need_admin(request)
    row = db.get(Dataset, dataset_id[:64])
    if row is None:
        context = {
            "detail": f"数据集 {dataset_id[:64]} 不存在",
            "parameter": None,
            "back": "/admin/datasets",
        }
        return admin_page(request, "admin/refused.html", context, status_code=404, tab="datasets")
    versions = list(
        db.exec(
            select(DatasetVersion)
            .where(DatasetVersion.dataset_id == row.id)
            .order_by(col(DatasetVersion.version).desc())
        )
    )
    fields = list(
        db.exec(
            select(DatasetField)
            .where(DatasetField.dataset_id == row.id, DatasetField.version == row.current_version)
            .order_by(col(DatasetField.position))
        )
    )
    context = {
        "row": row,
        "versions": versions,
        "fields": [
            {
                "f": f,
                "default": default_transform(f.level, f.pii),
                "level_label": LEVEL_LABELS.get(f.level, str(f.level)),
                "pii_label": PII_LABELS.get(f.pii, f.pii),
            }
            for f in fields
        ],
        "open_types": OPEN_TYPES,
        "levels": LEVEL_LABELS,
        "imported": _version(request.query_params.get("imported")),
    }
    return admin_page(request, "admin/dataset.html", context, tab="datasets")


def _version(raw: str | None) -> int | None:
    """The version just imported (after an upload), as a number or nothing."""
    return int(raw) if raw and raw.isdigit() and len(raw) <= 6 else None
