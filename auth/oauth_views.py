"""OAuth routes: /oauth/token, /oauth/introspect, /oauth/revoke, /oauth/authorize and the
/.well-known documents.

Each endpoint reads the request body on the event loop, then runs Authlib's synchronous
core in a worker thread, so a database or key operation never blocks other requests.
OAuth errors keep the RFC 6749 shape (`error`, `error_description`) that every client
library reads, with the gateway's problem members (`code`, `request_id`, …) beside them.

Routes at module level (no `from __future__ import annotations`: FastAPI reads the
dependency aliases); what they need is `app.state.oauth_services`.
"""

from base64 import b64decode
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import parse_qsl, unquote, urlencode

import orjson
from authlib.oauth2 import OAuth2Error
from fastapi import APIRouter, Depends, Request
from sqlalchemy.engine import Engine
from sqlmodel import Session
from starlette.concurrency import run_in_threadpool
from starlette.responses import HTMLResponse, Response

from audit.events import audited, note
from auth import users as user_service
from auth.consent_page import INVALID_REQUEST, NO_FRAMING, ConsentPages, ConsentView
from auth.consents import record_approval
from auth.keys import KeyRing
from auth.models import User
from auth.oauth import OAuthServer, PersonGrant, PlainRequest
from auth.oidc import ProofError
from auth.schemas import (
    FORM_BODY,
    HTML_ERROR,
    OAUTH_ERRORS,
    Introspection,
    JWKSet,
    Revoked,
    ServerMetadata,
    TokenAnswer,
)
from auth.scopes import PersonRequest, ScopeError, person_scope
from auth.strict_limits import strict_limit
from kernel.problem_schema import problem_responses
from kernel.problems import Problem
from kernel.responses import JSONResponse

NOT_VERIFIED = "该账号尚未实名核验，无法进行个人授权；请持本人有效身份证件由平台管理员核验"
OAUTH_ERROR_CODES = {401: "unauthorized", 403: "forbidden"}
MAX_BODY = 16 * 1024
CONSENT_FIELDS = ("username", "password", "decision", "csrf_token")


def _plain(request: Request, method: str, form: list[tuple[str, str]]) -> PlainRequest:
    # Starlette's Headers look names up case-insensitively, as Authlib expects.
    return PlainRequest(
        method,
        str(request.url),
        request.headers,  # type: ignore[arg-type]
        query=list(request.query_params.multi_items()),
        form=form,
    )


def _response(request: Request, status: int, body: Any, headers: Any) -> Response:
    headers = dict(headers or [])
    if isinstance(body, dict):
        if "error" in body:
            # RFC 6749 members for OAuth clients, problem members for everyone else.
            code = OAUTH_ERROR_CODES.get(status, "invalid_parameter")
            body = {
                **body,
                "type": f"/problems/{code}",
                "title": "OAuth 请求被拒绝",
                "status": status,
                # A Chinese `detail` where the error has one (auth/scopes.py), else the
                # RFC's ASCII description.
                "detail": body.get("detail") or body.get("error_description") or body["error"],
                "code": code,
                "request_id": request.scope.get("state", {}).get("request_id"),
            }
        headers["Cache-Control"] = "no-store"
        return Response(
            orjson.dumps(body), status_code=status, headers=headers, media_type="application/json"
        )
    return Response(body or b"", status_code=status, headers=headers)


async def _form(request: Request) -> list[tuple[str, str]]:
    """The url-encoded body (RFC 6749 §3.2: the only body the OAuth endpoints take)."""
    body = await request.body()
    if len(body) > MAX_BODY:
        raise Problem(413, "payload_too_large", "请求体过大")
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if body and media != "application/x-www-form-urlencoded":
        raise Problem(415, "invalid_parameter", "请求体须为 application/x-www-form-urlencoded")
    try:
        return parse_qsl(body.decode("utf-8"), keep_blank_values=True, max_num_fields=64)
    except (UnicodeDecodeError, ValueError):
        raise Problem(400, "invalid_parameter", "请求体无法解析") from None


def _note_client(request: Request, form: list[tuple[str, str]]) -> None:
    """The client a token request claims to be (checked or not, the audit log names it)
    and its grant type — never a secret, code, assertion or token."""
    fields = dict(form)
    client_id = fields.get("client_id")
    authorization = request.headers.get("authorization", "")
    if not client_id and authorization[:6].lower() == "basic ":
        try:
            client_id = unquote(b64decode(authorization[6:]).decode().split(":", 1)[0])
        except (ValueError, UnicodeDecodeError):
            client_id = None
    if not client_id and "client_assertion" in fields:
        client_id = "(private_key_jwt)"
    note(
        request,
        actor=f"client:{client_id[:64]}" if client_id else None,
        client_id=client_id[:64] if client_id else None,
        detail={"grant_type": fields.get("grant_type", "")[:64]},
    )


@dataclass(frozen=True)
class OAuthServices:
    """What the app factory puts on `app.state.oauth_services` for these routes.

    `start_identity(user_id, return_to)`: the identity provider's authorization URL for an
    account to prove who it is and come back to `return_to` (None: no provider).
    `form_token(request)`: the consent form's hidden `csrf_token` (contract §10);
    `form_refusal(request, submitted)`: why a POSTed token is refused, or None. Both come
    from the web layer, which owns the CSRF key and the browser's nonce cookie; so do
    `pages`, which draw the consent page and its messages (called from a worker thread)."""

    server: OAuthServer
    keys: KeyRing
    engine: Engine
    client_ip: Callable[[Request], str]
    form_token: Callable[[Request], str]
    form_refusal: Callable[[Request, str | None], str | None]
    pages: ConsentPages
    start_identity: Callable[[int, str], str] | None = None

    @property
    def can_verify(self) -> bool:
        return self.start_identity is not None


async def oauth_services(request: Request) -> OAuthServices:
    # async: read in the event loop, no trip through the (on SQLite, one-thread) pool
    return request.app.state.oauth_services


Services = Annotated[OAuthServices, Depends(oauth_services)]

router = APIRouter(tags=["oauth"])


@router.post(
    "/oauth/token",
    summary="令牌端点（RFC 6749）",
    response_model=TokenAnswer,
    openapi_extra=FORM_BODY,
    responses=OAUTH_ERRORS,
)
@audited("token.issue")
@strict_limit("token")
async def token(request: Request, services: Services) -> Response:
    form = await _form(request)
    _note_client(request, form)
    plain = _plain(request, "POST", form)
    result = await run_in_threadpool(services.server.create_token_response, plain)
    return _response(request, *result)


@router.post(
    "/oauth/introspect",
    summary="令牌内省（RFC 7662）",
    response_model=Introspection,
    openapi_extra=FORM_BODY,
    responses=OAUTH_ERRORS,
)
async def introspect(request: Request, services: Services) -> Response:
    plain = _plain(request, "POST", await _form(request))
    result = await run_in_threadpool(
        services.server.create_endpoint_response, "introspection", plain
    )
    return _response(request, *result)


@router.post(
    "/oauth/revoke",
    summary="令牌撤销（RFC 7009）",
    response_model=Revoked,
    openapi_extra=FORM_BODY,
    responses=OAUTH_ERRORS,
)
@audited("token.revoke")
async def revoke(request: Request, services: Services) -> Response:
    form = await _form(request)
    _note_client(request, form)
    plain = _plain(request, "POST", form)
    result = await run_in_threadpool(services.server.create_endpoint_response, "revocation", plain)
    return _response(request, *result)


def refusal(user: User, decision: str | None, asked: PersonRequest, can_verify: bool) -> str | None:
    """Why this account cannot take this decision on the consent page, or None."""
    if user.role != "developer":
        return "该账号不能进行个人授权"
    if decision == "verify":
        if user.identity_hmac is not None:
            return "该账号已完成实名核验，请直接点击“同意授权”"
        return None if can_verify else NOT_VERIFIED
    if user.identity_hmac is None and asked.personal is not None:
        return NOT_VERIFIED + ("；可点击“通过统一身份认证核验身份”" if can_verify else "")
    return None


def consent_request(
    server: OAuthServer, engine: Engine, plain: PlainRequest
) -> tuple[Any, PersonRequest, dict[str, Any]]:
    """Validate an authorization request; what the consent page shows. The scope is
    checked by the grant (`invalid_scope` for anything auth/scopes.py does not know)."""
    grant = server.get_consent_grant(plain)
    asked = person_scope(plain.payload.scope, server.scope_lookup)
    purpose = plain.payload.data.get("purpose", "").strip()
    # A purpose is asked for where personal data is: a person's own rows (`:self`).
    if asked.needs_purpose and not 2 <= len(purpose) <= 200:
        raise ValueError("缺少使用目的（purpose，2–200 字）：申请读取本人数据须说明用途")
    if len(purpose) > 200:
        raise ValueError("使用目的 purpose 不能超过 200 字")
    try:
        days = int(plain.payload.data.get("duration_days", "30"))
    except ValueError:
        days = 0
    if not 1 <= days <= 365:
        raise ValueError("授权期限 duration_days 须为 1–365 天")
    target = server.scope_lookup(asked.personal) if asked.personal else None
    with Session(engine) as session:
        owner = session.get(User, grant.client.app.owner_id)
    return (
        grant,
        asked,
        {
            "app_name": grant.client.app.name,
            "organization": owner.organization if owner is not None else "",
            "datasets": list(asked.titles.items()),
            "personal": asked.personal,
            # A person's own rows come in clear: the app sees every field of them.
            "fields": list(target.fields) if target is not None else [],
            "purpose": purpose,
            "duration_days": days,
        },
    )


def note_decision(request: Request, asked: PersonRequest, shown: dict[str, Any]) -> None:
    """What the person was asked, for the consent.decide event."""
    dataset = asked.personal or next(iter(asked.titles))
    note(
        request,
        resource=f"datasets/{dataset}",
        purpose=shown["purpose"] or None,
        detail={
            "scope": asked.scope,
            "datasets": list(asked.titles),
            "personal_dataset": asked.personal,
            "duration_days": shown["duration_days"],
        },
    )


def _hidden(
    request: Request, services: OAuthServices, params: list[tuple[str, str]]
) -> list[tuple[str, str]]:
    """The consent form's hidden fields: the authorization request, posted back, and the
    form's csrf_token."""
    return [*params, ("csrf_token", services.form_token(request))]


def _consent_page(
    request: Request,
    services: OAuthServices,
    params: list[tuple[str, str]],
    shown: dict[str, Any],
    *,
    status: int = 200,
    error: str | None = None,
) -> HTMLResponse:
    view = ConsentView(
        hidden=_hidden(request, services, params),
        error=error,
        can_verify=services.can_verify,
        **shown,
    )
    page = services.pages.consent(request, view)
    return HTMLResponse(page, status_code=status, headers=NO_FRAMING)


def _message_page(
    request: Request, services: OAuthServices, status: int, title: str, message: str
) -> HTMLResponse:
    page = services.pages.message(request, title, message)
    return HTMLResponse(page, status_code=status, headers=NO_FRAMING)


@router.get(
    "/oauth/authorize",
    response_class=HTMLResponse,
    summary="Consent page (个人授权)",
    responses={400: HTML_ERROR, **problem_responses(401, 429, 503)},
)
async def authorize_page(request: Request, services: Services) -> Response:
    plain = _plain(request, "GET", [])
    params = [(k, v) for k, v in request.query_params.multi_items() if k not in CONSENT_FIELDS]

    def show() -> Response:
        try:
            _grant, _asked, shown = consent_request(services.server, services.engine, plain)
        except (OAuth2Error, ValueError) as exc:
            return _message_page(request, services, 400, INVALID_REQUEST, _describe(exc))
        return _consent_page(request, services, params, shown)

    # In a worker thread: the request's validation and the page's session lookup use the
    # database.
    return await run_in_threadpool(show)


@router.post("/oauth/authorize", include_in_schema=False)
@audited("consent.decide")
@strict_limit("login")  # the consent page signs the person in
async def authorize_decision(request: Request, services: Services) -> Response:
    submitted = await _form(request)
    params = [(k, v) for k, v in submitted if k not in CONSENT_FIELDS]
    values = dict(submitted)
    # Before anything else (no sign-in attempt, no consent): a form posted from another
    # site, or without this browser's token, changes nothing.
    forged = services.form_refusal(request, values.get("csrf_token"))
    if forged is not None:
        note(request, outcome="denied", detail={"refused": "csrf"})
        return await run_in_threadpool(_message_page, request, services, 403, "请求被拒绝", forged)
    plain = _plain(request, "POST", params)
    plain._args = dict(params)  # the consent page posts the query back as the form
    decision = values.get("decision")
    claimed = (values.get("client_id") or "")[:64]
    # The evidence (contract-audit §8.2): who decided, for which app, on what, and how.
    note(request, client_id=claimed or None, detail={"decision": decision or "deny"})

    def sign_in(session: Session) -> User:
        return user_service.authenticate(
            session,
            username=values.get("username", ""),
            password=values.get("password", ""),
            ip=services.client_ip(request),
        )

    def decide() -> Response:
        try:
            grant, asked, shown = consent_request(services.server, services.engine, plain)
        except (OAuth2Error, ValueError) as exc:
            note(request, detail={"error": "invalid_request", "reason": _describe(exc)[:200]})
            return _message_page(request, services, 400, INVALID_REQUEST, _describe(exc))
        note_decision(request, asked, shown)
        if decision not in ("approve", "verify"):
            # Refusing needs no proof of who one is; when the form names the person
            # (it asks for the account on both buttons), the event does too.
            note(request, outcome="denied", detail={"decision": "deny"})
            if values.get("username") and values.get("password"):
                with Session(services.engine) as session:
                    try:
                        note(request, actor=f"user:{sign_in(session).username}")
                    except Problem:
                        note(request, detail={"signed_in": False})
            return _response(
                request,
                *services.server.create_authorization_response(plain, grant_user=None, grant=grant),
            )
        with Session(services.engine) as session:
            try:
                user = sign_in(session)
            except Problem as problem:
                # who tried, even when refused (as user.login names it)
                note(request, actor=f"user:{values.get('username', '')[:64]}")
                return _consent_page(
                    request, services, params, shown, status=problem.status, error=problem.detail
                )
            note(request, actor=f"user:{user.username}")
            reason = refusal(user, decision, asked, services.can_verify)
            if reason is None and decision == "verify":
                # Prove who you are at the identity provider, then come back here.
                back = "/oauth/authorize?" + urlencode(params)
                user_id = user.id
                # End this transaction first: on SQLite a POST's transaction holds the
                # write lock, and starting the proof writes from a session of its own.
                session.commit()
                try:
                    url = services.start_identity(user_id, back)  # type: ignore[arg-type,misc]
                except ProofError as exc:
                    reason = exc.message
                else:
                    return Response(status_code=303, headers={"Location": url, **NO_FRAMING})
            if reason is not None:
                note(request, outcome="denied", detail={"refused": reason})
                return _consent_page(request, services, params, shown, status=403, error=reason)
            # One live consent per app × dataset: approving again extends it.
            consent = record_approval(
                session,
                user_id=user.id,  # type: ignore[arg-type]
                client_id=grant.client.get_client_id(),
                # "" when only open data was asked for: the consent covers no own rows.
                dataset_id=asked.personal or "",
                purpose=shown["purpose"],
                scope=asked.scope,
                duration_days=shown["duration_days"],
            )
            note(request, detail={"consent_id": consent.id})
            person = PersonGrant(session.get(User, user.id), consent.id)  # type: ignore[arg-type]
        return _response(
            request,
            *services.server.create_authorization_response(plain, grant_user=person, grant=grant),
        )

    return await run_in_threadpool(decide)


@router.get(
    "/.well-known/oauth-authorization-server",
    summary="授权服务器元数据（RFC 8414）",
    response_model=ServerMetadata,
    responses=problem_responses(401),
)
def metadata(services: Services) -> JSONResponse:
    return JSONResponse(services.server.metadata())


@router.get(
    "/.well-known/jwks.json",
    summary="令牌签名公钥（JWKS）",
    response_model=JWKSet,
    responses=problem_responses(401, 503),
)
def jwks(services: Services) -> JSONResponse:
    return JSONResponse(services.keys.jwks(), headers={"Cache-Control": "public, max-age=300"})


# What a person reads when an app sent them here with a request that cannot be shown; the
# RFC's error code follows for the app's developer.
OAUTH_ERROR_TEXTS = {
    "invalid_request": "授权请求缺少必要参数或参数有误",
    "invalid_client": "发起请求的应用不存在或已停用",
    "unauthorized_client": "该应用无权发起此类授权请求",
    "unsupported_response_type": "不支持的授权方式（response_type 须为 code）",
    "invalid_scope": "申请的数据范围无效",
    "access_denied": "授权已被拒绝",
    "invalid_grant": "授权码无效或已过期",
}
OAUTH_HINTS = (
    ("redirect_uri", "回调地址 redirect_uri 与应用登记的不一致"),
    ("code_challenge", "须使用 PKCE（code_challenge_method=S256）"),
    ("client_id", "缺少或无法识别 client_id"),
)


def _describe(exc: Exception) -> str:
    if isinstance(exc, ScopeError):
        return f"申请的数据范围无效：{exc.detail}（错误代码：invalid_scope）"
    if isinstance(exc, OAuth2Error):
        text = OAUTH_ERROR_TEXTS.get(exc.error, "授权请求无效")
        description = (exc.description or "").lower()
        hint = next((h for key, h in OAUTH_HINTS if key in description), None)
        return f"{text}{'：' + hint if hint else ''}（错误代码：{exc.error}）"
    return str(exc)
