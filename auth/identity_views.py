"""Identity proofing over HTTP: `POST /auth/identity/start` and `GET /auth/identity/callback`.

A signed-in developer account (a person) asks to be verified; the gateway answers with the
identity provider's authorization URL; the person signs in there; the provider sends the
browser back to the callback, which links the verified identity to that account and shows a
Chinese page — or, when the sign-in began on the consent page, returns the person there.
Every callback writes one `user.identity_link` event naming the identity by its HMAC and the
proof (`oidc:<issuer>`), refused ones included.

Routes at module level (no `from __future__ import annotations`: FastAPI reads the
dependency aliases); the engine from `catalog.request_state`, the provider, revocations and
identity key from `app.state.identity_services`.
"""

from dataclasses import dataclass
from typing import Annotated
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, Request
from sqlalchemy.engine import Engine
from sqlmodel import Session
from starlette.concurrency import run_in_threadpool
from starlette.responses import HTMLResponse, RedirectResponse, Response

from audit.events import audited, note
from auth.consent_page import NO_FRAMING, ConsentPages
from auth.identity import IdentityRefused, identity_of, link_identity
from auth.models import Role, User
from auth.oidc import LOGIN_LIFETIME, IdentityProvider, ProofError
from auth.principal import Principal, require_role
from auth.revocations import Revocations
from auth.schemas import IdentityStart
from catalog.request_state import EngineDep
from kernel.problem_schema import problem_responses
from kernel.problems import Problem
from kernel.responses import JSONResponse, answer

NOT_CONFIGURED = "本平台未接入统一身份认证；请持本人有效身份证件由平台管理员现场核验"


def safe_return_to(target: str | None) -> str | None:
    """Only back to our own consent page (a path, never another host)."""
    if not target:
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or parts.path != "/oauth/authorize" or "\\" in target:
        return None
    return target


@dataclass(frozen=True)
class IdentityServices:
    """What the app factory puts on `app.state.identity_services` for these routes;
    `pages` draw the result page (the web layer's, as on the consent page)."""

    provider: IdentityProvider | None
    revocations: Revocations
    identity_key: bytes
    pages: ConsentPages


async def identity_services(request: Request) -> IdentityServices:
    return request.app.state.identity_services


Services = Annotated[IdentityServices, Depends(identity_services)]
Person = Annotated[Principal, Depends(require_role(Role.developer))]

router = APIRouter(tags=["identity"])


def configured(services: IdentityServices) -> IdentityProvider:
    if services.provider is None:
        raise Problem(404, "not_found", NOT_CONFIGURED)
    return services.provider


@router.post(
    "/auth/identity/start",
    summary="在可信身份提供方发起实名核验",
    response_model=IdentityStart,
    responses=problem_responses(401, 403, 404, 429, 503),
)
@audited("user.identity_start")
async def start(request: Request, principal: Person, services: Services) -> JSONResponse:
    idp = configured(services)
    note(request, resource=f"users/{principal.user_id}")
    try:
        url = await run_in_threadpool(idp.begin, user_id=principal.user_id)
    except ProofError as exc:
        note(request, detail={"refused": exc.reason})
        raise Problem(exc.status, "unavailable", exc.message) from None
    started = {"authorization_url": url, "expires_in": int(LOGIN_LIFETIME.total_seconds())}
    return answer(IdentityStart, started, headers={"Cache-Control": "no-store"})


@router.get(
    "/auth/identity/callback",
    response_class=HTMLResponse,
    summary="身份提供方回调：绑定已核验的身份",
    responses={
        **{
            status: {"description": "a page saying why", "content": {"text/html": {}}}
            for status in (303, 400, 403, 409)
        },
        **problem_responses(404, 429, 503),
    },
)
@audited("user.identity_link")
async def callback(request: Request, engine: EngineDep, services: Services) -> Response:
    idp = configured(services)
    params = request.query_params
    return await run_in_threadpool(
        complete, request, engine, services, idp, params.get("state", ""), params.get("code")
    )


def complete(
    request: Request,
    engine: Engine,
    services: IdentityServices,
    idp: IdentityProvider,
    state: str,
    code: str | None,
) -> Response:
    proof = idp.config.proof
    try:
        pending, nonce, verifier = idp.consume(state[:200])
        note(request, resource=f"users/{pending.user_id}")
        if code is None:
            # The person cancelled at the provider, or it refused (`error=`).
            raise ProofError("provider_refused", "已在统一身份认证页面取消或被拒绝，未作更改")
        verified = idp.finish(code=code[:2000], nonce=nonce, verifier=verifier)
        identity = identity_of(services.identity_key, verified.id_number)
    except ProofError as exc:
        note(request, detail={"proof": proof, "refused": exc.reason})
        return page(request, services, exc.status, "实名核验未完成", exc.message)
    except Problem as problem:  # an identity number failing its check
        note(request, detail={"proof": proof, "refused": "invalid_id_number"})
        return page(request, services, 400, "实名核验未完成", problem.detail)
    # Its own session, closed before the answer leaves (the audit event waits for the lock).
    with Session(engine) as session:
        user = session.get(User, pending.user_id)
        if user is None or not user.is_active or user.role != Role.developer:
            note(request, detail={"identity": identity, "proof": proof, "refused": "account"})
            return page(
                request, services, 403, "实名核验未完成", "该账号不存在、已停用或不能绑定个人身份"
            )
        note(request, actor=f"user:{user.username}")
        try:
            outcome = link_identity(
                session,
                user=user,
                identity=identity,
                proof=proof,
                revocations=services.revocations,
            )
        except IdentityRefused as refused:
            note(request, detail=refused.audit_detail)
            return page(request, services, 409, "实名核验未完成", refused.detail)
    note(request, detail=outcome.audit_detail())
    back = safe_return_to(pending.return_to)
    if back is not None:
        return RedirectResponse(back, status_code=303, headers=NO_FRAMING)
    return page(
        request, services, 200, "实名核验完成", "您的账号已通过统一身份认证完成实名核验。", ok=True
    )


def page(
    request: Request,
    services: IdentityServices,
    status: int,
    title: str,
    message: str,
    *,
    ok: bool = False,
) -> HTMLResponse:
    """The proofing's result (`complete` runs in a worker thread, as the page needs)."""
    return HTMLResponse(
        services.pages.message(request, title, message, ok=ok),
        status_code=status,
        headers={**NO_FRAMING, "Cache-Control": "no-store"},
    )
