"""The auditor console, reviewing the log (`/audit/verify`, `/audit/charts`,
`/audit/export…`): the chain check run from the browser with the signed checkpoints and
the public key's fingerprint, the charts of `/api/v1/audit/stats`, and a time range as the
signed bundle (the API's export) or as CSV. Each page is an audit event with the API's
action (`audit.checkpoints`, `audit.verify`, `audit.stats`, `audit.export`)."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from fastapi import APIRouter, Request
from sqlalchemy.engine import Engine
from starlette.responses import Response, StreamingResponse

from audit.bundle import ChainGapError, Progress, bundle_lines, plan
from audit.canonical import now_ts
from audit.checkpoints import all_checkpoints
from audit.events import audited, note
from audit.signing import key_id, public_pem
from audit.stats import default_since
from audit.verify import verify
from catalog.request_state import EngineDep
from portal.audit_access import NO_STORE, AuditorAccount, audit_page, problem_page
from portal.audit_charts import KIND_TITLES, chart_data
from portal.audit_csv import csv_lines
from portal.audit_filters import BadFilter, Filters, read_filters

router = APIRouter(include_in_schema=False)

SHOWN_CHECKPOINTS = 50
MAX_CHART_DAYS = 366


def fingerprint(public_key: Ed25519PublicKey) -> str:
    """SHA-256 of the raw 32-byte key, in groups of four hex digits (its first 16 digits
    are the `key_id` every checkpoint names)."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    digest = hashlib.sha256(raw).hexdigest()
    return " ".join(digest[i : i + 4] for i in range(0, 64, 4))


@router.get("/audit/verify")
@audited("audit.checkpoints")
def verify_page(request: Request, _: AuditorAccount, engine: EngineDep) -> Response:
    signer = request.app.state.audit_signer
    report = None
    if request.query_params.get("run") == "1":
        # The page that runs the check is the API's `audit.verify` event.
        note(request, action="audit.verify")
        report = verify(engine, signer.verify_keys).as_dict()
        note(request, detail={"ok": report["ok"], "first_bad_seq": report["first_bad_seq"]})
    checkpoints = all_checkpoints(engine)
    return audit_page(
        request,
        "audit/verify.html",
        {
            "report": report,
            "checkpoints": list(reversed(checkpoints))[:SHOWN_CHECKPOINTS],
            "checkpoint_count": len(checkpoints),
            "key_id": signer.key_id,
            "fingerprint": fingerprint(signer.public_key),
            "public_pem": public_pem(signer.public_key),
            "retired": sorted(key_id(k) for k in signer.previous.values()),
        },
        tab="verify",
    )


def _range(request: Request, *, tab: str) -> tuple[Filters, str, str] | Response:
    """since/until of a review page (default: the last 30 days), or its refusal page."""
    try:
        filters = read_filters(request.query_params)
    except BadFilter as bad:
        return problem_page(request, 400, str(bad), tab=tab)
    until = filters.query.until or now_ts()
    since = filters.query.since or default_since(until)
    return filters, since, until


@router.get("/audit/charts")
@audited("audit.stats")
def charts_page(request: Request, _: AuditorAccount, engine: EngineDep) -> Response:
    found = _range(request, tab="charts")
    if isinstance(found, Response):
        return found
    _filters, since, until = found
    first = datetime.strptime(since[:10], "%Y-%m-%d")
    if datetime.strptime(until[:10], "%Y-%m-%d") - first > timedelta(days=MAX_CHART_DAYS):
        return problem_page(request, 400, "图表的时间范围最长 366 天，请缩小起止时间", tab="charts")
    note(request, detail={"since": since, "until": until})
    data = chart_data(engine, since=since, until=until)
    return audit_page(
        request,
        "audit/charts.html",
        {"data": data, "since": since[:10], "until": until[:10], "kinds": KIND_TITLES},
        tab="charts",
    )


@router.get("/audit/export")
@audited("audit.view")
def export_page(request: Request, _: AuditorAccount) -> Response:
    today = datetime.now(UTC).date()
    return audit_page(
        request,
        "audit/export.html",
        {"since": (today - timedelta(days=29)).isoformat(), "until": today.isoformat()},
        tab="export",
    )


def _export(request: Request, engine: Engine, kind: str) -> Response:
    """A time range streamed as the signed bundle or as CSV; the completion event of the
    stream carries its row count, as the API's export does."""
    try:
        filters = read_filters(request.query_params)
        start, end = filters.query.since, filters.query.until
        span = plan(engine, since=start, until=end)
    except BadFilter as bad:
        return problem_page(request, 400, str(bad), tab="export")
    except ChainGapError:
        return problem_page(request, 409, "审计链在导出范围之前不完整，请先运行校验", tab="export")
    progress = Progress()
    note(request, stream=progress, detail={"since": start, "until": end, "format": kind})
    if kind == "bundle":
        lines = bundle_lines(engine, request.app.state.audit_signer, span, progress)
        media, name = "application/jsonl; charset=utf-8", "audit-export.jsonl"
    else:
        lines = csv_lines(engine, span, progress, since=start, until=end)
        media, name = "text/csv; charset=utf-8", "audit-events.csv"
    headers = {"Content-Disposition": f'attachment; filename="{name}"', **NO_STORE}
    return StreamingResponse(lines, media_type=media, headers=headers)


@router.get("/audit/export/bundle")
@audited("audit.export")
def export_bundle(request: Request, _: AuditorAccount, engine: EngineDep) -> Response:
    """The API's signed bundle (docs/contract-audit.md §8.5)."""
    return _export(request, engine, "bundle")


@router.get("/audit/export/csv")
@audited("audit.export")
def export_csv(request: Request, _: AuditorAccount, engine: EngineDep) -> Response:
    """For spreadsheet review (portal/audit_csv.py); the bundle is the evidence."""
    return _export(request, engine, "csv")
