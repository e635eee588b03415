"""A publisher's package upload from the browser (`/admin/datasets/upload`): the .zip is
unpacked safely (portal/package_upload.py) into a temporary folder and handed to the same
`import_package` call as `opengate datasets import` (with `--replace` when the form asks
for a new version, which is how a dataset is re-classified); the event is the CLI's
`dataset.import`, its actor the signed-in administrator, `via: web`."""

from __future__ import annotations

import tempfile
from functools import partial
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData, UploadFile
from starlette.responses import HTMLResponse, Response

from audit.events import audited, note
from auth.secrets import identity_hmac
from catalog.importer import ImportResult, import_package
from catalog.package import PackageError
from portal.admin_pages import ROLE, admin_page, need_admin
from portal.forms import checked_upload, see_other
from portal.package_upload import UploadRefused, discard, unpack

PATH = "/admin/datasets/upload"
router = APIRouter(include_in_schema=False)
# The account and its role are checked before the body is read, the csrf_token after.
AdminUpload = Annotated[FormData, Depends(checked_upload(ROLE))]


def _form_page(request: Request, *, error: str | None = None, replace: bool = False) -> Response:
    settings = request.app.state.settings
    context: dict[str, Any] = {
        "error": error,
        "replace": replace,
        "max_bytes": settings.upload_max_bytes,
        "max_files": settings.upload_max_files,
        "max_unpacked": settings.upload_max_unpacked_bytes,
    }
    status = 400 if error else 200
    return admin_page(request, "admin/upload.html", context, status_code=status, tab="datasets")


@router.get(PATH, response_class=HTMLResponse)
def upload_page(request: Request) -> Response:
    need_admin(request)
    return _form_page(request)


def _import(request: Request, upload: UploadFile, replace: bool) -> ImportResult:
    """Unpack and import in a worker thread: the archive and the import are blocking."""
    state = request.app.state
    settings = state.settings
    folder = Path(tempfile.mkdtemp(prefix="opengate-upload-"))
    try:
        package = unpack(
            upload.file,
            folder,
            max_files=settings.upload_max_files,
            max_bytes=settings.upload_max_unpacked_bytes,
        )
        return import_package(
            state.engine,
            package,
            replace=replace,
            subject_hmac=partial(identity_hmac, state.security.identity_key),
        )
    finally:
        discard(folder)


@router.post(PATH, response_class=HTMLResponse)
@audited("dataset.import")
async def upload_package(request: Request, form: AdminUpload) -> Response:
    user = need_admin(request)
    replace = form.get("replace") == "1"
    note(request, actor=f"user:{user.username}", detail={"via": "web", "replace": replace})
    upload = form.get("package")
    if not isinstance(upload, UploadFile) or not upload.filename:
        return _form_page(request, error="请选择要上传的数据包（.zip 文件）", replace=replace)
    try:
        result = await run_in_threadpool(_import, request, upload, replace)
    except UploadRefused as exc:
        return _form_page(request, error=f"{exc}，未导入任何数据。", replace=replace)
    except PackageError as exc:
        return _form_page(request, error=f"数据包有误，未导入任何数据：{exc}", replace=replace)
    note(
        request,
        resource=f"datasets/{result.dataset_id}",
        row_count=result.row_count,
        detail={
            "version": result.version,
            **({"warnings": list(result.warnings)} if result.warnings else {}),
        },
    )
    counted = getattr(request.app.state, "count_import", None)  # /metrics, when composed
    if counted is not None:
        counted(result.dataset_id, result.row_count)
    return see_other(f"/admin/datasets/{result.dataset_id}?imported={result.version}")
