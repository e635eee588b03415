"""The auditor console, finding events (`/audit`, `/audit/events/{seq}`): the search with
every filter of the API and its timeline, one event with its hash and its place in the
chain, the download of its inclusion proof, and a checkpoint signed on request.

Every page reads through the audit package's own functions (the API's) and is itself an
audit event with the API's action (`audit.search`, `audit.read`, `audit.proof`) and
`detail.via = "web"`; the one form (sign a checkpoint now) carries the CSRF token.
"""

from __future__ import annotations

from typing import Any

import orjson
import sqlalchemy as sa
from fastapi import APIRouter, HTTPException, Request
from starlette.responses import Response

from audit.canonical import chain_hash
from audit.checkpoints import checkpoint_now, first_covering, latest
from audit.events import audited, note
from audit.proofs import inclusion_proof
from audit.search import get_event, search, timeline
from audit.signing import public_pem
from catalog.request_state import EngineDep
from portal.audit_access import AuditorAccount, audit_page, problem_page
from portal.audit_filters import LABELS, OUTCOMES, BadFilter, read_filters
from portal.forms import CheckedForm, see_other, text

router = APIRouter(include_in_schema=False)

MAX_SEQ = 2**62


def _timeline_rows(rows: list[tuple[str, str, int]]) -> list[dict[str, Any]]:
    """Per day: events by outcome, and the bar width against the busiest day."""
    days: dict[str, dict[str, int]] = {}
    for day, outcome, n in rows:
        days.setdefault(day, {})[outcome] = n
    peak = max((sum(v.values()) for v in days.values()), default=0)
    return [
        {"day": day, "total": sum(v.values()), "peak": peak, **{o: v.get(o, 0) for o in OUTCOMES}}
        for day, v in sorted(days.items())
    ]


@router.get("/audit")
@audited("audit.search")
def search_page(request: Request, _: AuditorAccount, engine: EngineDep) -> Response:
    try:
        filters = read_filters(request.query_params)
    except BadFilter as bad:
        return problem_page(request, 400, str(bad), tab="search")
    note(request, detail={k: v for k, v in filters.values.items() if v and k != "cursor"})
    events, next_cursor = search(engine, filters.query)
    days = _timeline_rows(timeline(engine, filters.query))
    return audit_page(
        request,
        "audit/search.html",
        {
            "filters": filters.values,
            "labels": LABELS,
            "outcomes": OUTCOMES,
            "events": events,
            "days": days,
            "matched": sum(d["total"] for d in days),
            "next_link": filters.link(cursor=next_cursor) if next_cursor else None,
            "first_link": filters.link(cursor=None) if filters.values["cursor"] else None,
            "filters_link": lambda day: filters.link(since=day, until=day, cursor=None),
        },
        tab="search",
    )


def _seq(value: str) -> int | None:
    return int(value) if value.isascii() and value.isdigit() and 0 < int(value) <= MAX_SEQ else None


def _neighbour_hash(engine: Any, seq: int) -> str | None:
    with engine.connect() as conn:
        return conn.execute(
            sa.text("SELECT hash FROM audit_events WHERE seq = :seq"), {"seq": seq}
        ).scalar()


def _next_prev_hash(engine: Any, seq: int) -> str | None:
    with engine.connect() as conn:
        return conn.execute(
            sa.text("SELECT prev_hash FROM audit_events WHERE seq = :seq"), {"seq": seq}
        ).scalar()


@router.get("/audit/events/{seq}")
@audited("audit.read")
def event_page(seq: str, request: Request, _: AuditorAccount, engine: EngineDep) -> Response:
    number = _seq(seq)
    found = get_event(engine, number) if number is not None else None
    if number is None or found is None:
        return problem_page(request, 404, f"审计事件 {seq[:30]} 不存在（或已归档）", tab="search")
    note(request, resource=f"audit/events/{number}")
    with engine.connect() as conn:
        covering = first_covering(conn, number)
        newest = latest(conn)
        head = int(conn.exec_driver_sql("SELECT seq FROM audit_head WHERE id = 1").scalar() or 0)
    previous_hash = _neighbour_hash(engine, number - 1) if number > 1 else None
    chain = {
        "head": head,
        "hash_ok": chain_hash(found["prev_hash"], found) == found["hash"],
        "links_back": number == 1 or previous_hash == found["prev_hash"],
        "previous_archived": number > 1 and previous_hash is None,
        "links_forward": _next_prev_hash(engine, number + 1) == found["hash"]
        if number < head
        else None,
    }
    return audit_page(
        request,
        "audit/event.html",
        {
            "event": found,
            "chain": chain,
            "covering": covering,
            "newest": newest,
            "saved": request.query_params.get("signed") == "1",
        },
        tab="search",
    )


@router.get("/audit/events/{seq}/proof")
@audited("audit.proof")
def proof_download(seq: str, request: Request, _: AuditorAccount, engine: EngineDep) -> Response:
    """The API's proof document (RFC 9162 audit path, the signed checkpoint, the public
    key) as a file, for `opengate audit verify-proof` on another machine."""
    number = _seq(seq)
    if number is None:
        return problem_page(request, 404, f"审计事件 {seq[:30]} 不存在", tab="search")
    note(request, resource=f"audit/events/{number}")
    try:
        document = inclusion_proof(engine, number)
    except HTTPException as refused:
        return problem_page(request, refused.status_code, str(refused.detail), tab="search")
    signer = request.app.state.audit_signer
    document = {**document, "public_key": public_pem(signer.public_key)}
    return Response(
        orjson.dumps(document, option=orjson.OPT_INDENT_2),
        media_type="application/json",
        headers={
            "Content-Disposition": f'attachment; filename="audit-proof-{number}.json"',
            "Cache-Control": "no-store",
        },
    )


@router.post("/audit/checkpoint")
@audited("audit.checkpoint")
def sign_now(request: Request, _: AuditorAccount, form: CheckedForm, engine: EngineDep) -> Response:
    """Sign the chain head now (kind `manual`, as `opengate audit checkpoint`), so an event
    written since the last periodic checkpoint gets its proof at once."""
    back = _seq(text(form, "seq", limit=20))
    signed = checkpoint_now(engine, request.app.state.audit_signer, kind="manual")
    if signed is not None:
        note(request, detail={"tree_size": signed.tree_size, "head": signed.head_hash})
    if back is None:
        return see_other("/audit/verify")
    return see_other(f"/audit/events/{back}?signed=1")
