"""Developer apps (OAuth clients): registration, listing, secret rotation, disabling.

A public client (RFC 6749 §2.1: a mobile or browser app that cannot keep a secret) is an
app without a secret: its `client_secret_hash` is empty, which no secret's digest equals.
It authenticates with `none` — its client_id, with PKCE S256 — and uses authorization_code
and refresh_token only.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from sqlmodel import Session, select

from auth.models import PUBLIC_SECRET_HASH, App, User
from auth.outbound import OutboundPolicy, OutboundRefused
from auth.revocations import PrincipalState, Revocations
from auth.secrets import digest, new_token
from kernel.clock import utcnow
from kernel.problems import Problem


def _check_redirect_uris(uris: list[str]) -> list[str]:
    for uri in uris:
        parts = urlsplit(uri)
        local = parts.hostname in ("127.0.0.1", "localhost", "::1")
        if parts.scheme not in ("https", "http") or (parts.scheme == "http" and not local):
            raise Problem(
                400,
                "invalid_parameter",
                "回调地址须为 https（本机调试可用 http）",
                parameter="redirect_uris",
            )
        if parts.fragment:
            raise Problem(
                400, "invalid_parameter", "回调地址不能含 #片段", parameter="redirect_uris"
            )
    return uris


def _check_jwks(jwks: dict | None) -> dict | None:
    if jwks is None:
        return None
    from joserfc.jwk import KeySet

    try:
        keys = KeySet.import_key_set(jwks)
    except Exception:
        raise Problem(
            400, "invalid_parameter", "jwks 不是有效的 JWK Set", parameter="jwks"
        ) from None
    if any(k.is_private for k in keys.keys):
        raise Problem(400, "invalid_parameter", "jwks 只能包含公钥", parameter="jwks")
    return jwks


def _check_jwks_uri(uri: str | None, allowed_prefixes: list[str]) -> str | None:
    """The URI parsed and matched to an allowlist entry by scheme, host, port and path
    (auth.outbound); where its host resolves to is checked again at every fetch."""
    if uri is None:
        return None
    try:
        OutboundPolicy.lenient(allowed_prefixes).match(uri)
    except OutboundRefused:
        raise Problem(
            400,
            "invalid_parameter",
            "jwks_uri 不在允许的地址列表中（协议、主机、端口与路径须与允许项一致，"
            "且不能含用户信息）",
            parameter="jwks_uri",
        ) from None
    return uri


def create_app(
    session: Session,
    *,
    owner: User,
    name: str,
    redirect_uris: list[str] | None = None,
    jwks: dict | None = None,
    jwks_uri: str | None = None,
    jwks_uri_allowlist: list[str] | None = None,
    public: bool = False,
) -> tuple[App, str | None]:
    """A new app and its client secret (returned once, stored only as a digest); a public
    client gets none."""
    if owner.role != "developer":
        raise Problem(400, "invalid_parameter", "应用只能属于开发者账号", parameter="owner")
    name = name.strip()
    if not 1 <= len(name) <= 100:
        raise Problem(400, "invalid_parameter", "应用名称需为 1–100 个字符", parameter="name")
    if public and (jwks is not None or jwks_uri is not None):
        raise Problem(
            400,
            "invalid_parameter",
            "公开客户端没有密钥，不能登记 jwks/jwks_uri",
            parameter="public",
        )
    if public and not redirect_uris:
        raise Problem(
            400,
            "invalid_parameter",
            "公开客户端只能使用授权码流程，须登记至少一个回调地址",
            parameter="redirect_uris",
        )
    secret = None if public else new_token(32)
    app = App(
        client_id="og_" + new_token(12),
        name=name,
        owner_id=owner.id,  # type: ignore[arg-type]
        client_secret_hash=digest(secret) if secret else PUBLIC_SECRET_HASH,
        redirect_uris=_check_redirect_uris(redirect_uris or []),
        jwks=_check_jwks(jwks),
        jwks_uri=_check_jwks_uri(jwks_uri, jwks_uri_allowlist or []),
    )
    session.add(app)
    session.commit()
    session.refresh(app)
    return app, secret


def set_keys(
    session: Session,
    *,
    app: App,
    jwks: dict | None,
    jwks_uri: str | None,
    jwks_uri_allowlist: list[str] | None = None,
) -> App:
    """Register, replace or clear the public keys the app signs its `private_key_jwt`
    client assertions with (a JWK Set, or an allow-listed `jwks_uri`)."""
    if app.is_public and (jwks is not None or jwks_uri is not None):
        raise Problem(
            400, "invalid_parameter", "公开客户端没有密钥，不能登记 jwks/jwks_uri", parameter="jwks"
        )
    app.jwks = _check_jwks(jwks)
    app.jwks_uri = _check_jwks_uri(jwks_uri, jwks_uri_allowlist or [])
    session.add(app)
    session.commit()
    session.refresh(app)
    return app


def list_apps(session: Session, *, owner: User) -> list[App]:
    return list(session.exec(select(App).where(App.owner_id == owner.id).order_by(App.created_at)))


def own_app(session: Session, *, owner: User, client_id: str) -> App:
    app = session.get(App, client_id)
    if app is None or app.owner_id != owner.id:
        raise Problem(404, "not_found", f"应用 {client_id} 不存在")
    return app


def rotate_secret(session: Session, *, app: App, revocations: Revocations) -> str:
    """A new client secret; every token issued under the old one stops on the next
    request (tokens carry the secret epoch `sep`)."""
    if app.is_public:
        raise Problem(400, "invalid_parameter", f"应用 {app.client_id} 是公开客户端，没有密钥")
    secret = new_token(32)
    app.client_secret_hash = digest(secret)
    app.secret_rotated_at = utcnow()
    app.secret_epoch += 1
    _changed(session, app, revocations)
    return secret


def disable_app(session: Session, *, app: App, revocations: Revocations) -> App:
    """Disable the app: it gets no new token and its tokens stop on the next request."""
    app.is_active = False
    return _changed(session, app, revocations)


def enable_app(session: Session, *, app: App, revocations: Revocations) -> App:
    """Enable a disabled app again. Its secret still works; tokens issued before it was
    disabled stay ended (a new epoch, as when the secret is rotated)."""
    app.is_active = True
    app.secret_epoch += 1
    return _changed(session, app, revocations)


def _changed(session: Session, app: App, revocations: Revocations) -> App:
    app.state_changed_at = utcnow()
    session.add(app)
    session.commit()
    session.refresh(app)
    revocations.publish_state(
        f"client:{app.client_id}", PrincipalState(app.is_active, epoch=app.secret_epoch)
    )
    return app
