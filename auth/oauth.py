"""The OAuth 2.0 authorization server: Authlib's framework-agnostic core behind our own
request adapter.

Authlib ships server integrations for Flask and Django only. Its core
(`authlib.oauth2.AuthorizationServer`) needs four things from a framework: a request
object, a response, client lookup and token storage. The views read the body first, build
a `PlainRequest`, and run this synchronous core in a worker thread.

Grants: client_credentials; authorization_code with PKCE S256 only (exact redirect URI,
single-use codes that live 60 s, redeemed by one conditional UPDATE; a second redemption
revokes every token issued from the code); refresh_token with rotation, where reusing a spent token
revokes its whole family (RFC 9700). No implicit, no password grant. Client
authentication: client_secret_basic, client_secret_post, private_key_jwt (RFC 7523, `jti`
replay protection; RS256, PS256, ES256, EdDSA/Ed25519), and `none` for public clients
(authorization_code and refresh_token only, never with a secret). Scopes: auth/scopes.py.
docs/contract-oauth.md is the contract.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import orjson
import sqlalchemy as sa
from authlib.oauth2 import AuthorizationServer
from authlib.oauth2.rfc6749 import (
    ClientMixin,
    OAuth2Payload,
    OAuth2Request,
    TokenMixin,
    grants,
)
from authlib.oauth2.rfc6749.errors import InvalidClientError, InvalidRequestError
from authlib.oauth2.rfc6750 import BearerTokenGenerator
from authlib.oauth2.rfc7009 import RevocationEndpoint
from authlib.oauth2.rfc7523 import JWTBearerClientAssertion
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oauth2.rfc7662 import IntrospectionEndpoint
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from auth.models import App, AuthorizationCode, RefreshToken, UsedAssertion, User
from auth.models import Revocation as RevocationRow
from auth.outbound import Limits, OutboundPolicy, OutboundRefused, fetch
from auth.revocations import Revocations
from auth.scopes import APP_SCOPE, DatasetLookup, ScopeTarget, app_scope, person_scope
from auth.secrets import digest, matches, new_token
from auth.tokens import InvalidToken, TokenClaims, TokenIssuer, TokenVerifier
from kernel.clock import utcnow

log = logging.getLogger("opengate.auth")
# Authlib logs issued tokens at DEBUG ("Issue token {...}"). Whatever level the operator
# sets for the application, Authlib's own records stay at INFO and above.
logging.getLogger("authlib").setLevel(logging.INFO)

CODE_LIFETIME = 60
REFRESH_LIFETIME = 30 * 24 * 3600
# A public client (a mobile app) cannot keep a secret: its refresh tokens live one day.
PUBLIC_REFRESH_LIFETIME = 24 * 3600
# What a private_key_jwt assertion may be signed with, each tested with Authlib's own
# client (tests/auth/test_standard_oauth.py). Listed explicitly: joserfc accepts only its
# "recommended" algorithms by default, and PS256 (FAPI) and EdDSA are not among them.
ALLOWED_ASSERTION_ALGS = ["RS256", "PS256", "ES256", "EdDSA", "Ed25519"]


def aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


# --- the request adapter ----------------------------------------------------------------


class FormPayload(OAuth2Payload):
    def __init__(self, pairs: list[tuple[str, str]]) -> None:
        self._data: dict[str, str] = {}
        self._datalist: dict[str, list[str]] = {}
        for key, value in pairs:
            self._data.setdefault(key, value)
            self._datalist.setdefault(key, []).append(value)

    @property
    def data(self) -> dict[str, str]:
        return self._data

    @property
    def datalist(self) -> dict[str, list[str]]:  # type: ignore[override]
        return self._datalist


class PlainRequest(OAuth2Request):
    """An HTTP request already read off the wire, in the shape Authlib's core expects."""

    def __init__(
        self,
        method: str,
        uri: str,
        headers: dict[str, str],
        *,
        query: list[tuple[str, str]],
        form: list[tuple[str, str]],
    ) -> None:
        super().__init__(method, uri, headers=headers)
        self._args = dict(query)
        self._form = dict(form)
        self.payload = FormPayload(form if method == "POST" else query)

    @property
    def args(self) -> dict[str, str]:
        return self._args

    @property
    def form(self) -> dict[str, str]:
        return self._form


# --- clients and tokens as Authlib sees them ---------------------------------------------


class OAuthClient(ClientMixin):
    def __init__(self, app: App) -> None:
        self.app = app

    def get_client_id(self) -> str:
        return self.app.client_id

    def get_default_redirect_uri(self) -> str | None:
        uris = self.app.redirect_uris
        return uris[0] if len(uris) == 1 else None

    def get_allowed_scope(self, scope: str | None) -> str:
        # The grants checked the requested scope already (validate_requested_scope): what
        # is left is to fill in the default (RFC 6749 §3.3) and drop repeats.
        if not scope:
            return APP_SCOPE
        return " ".join(dict.fromkeys(scope.split()))

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return redirect_uri in self.app.redirect_uris  # exact match, RFC 9700 §4.1.3

    def check_client_secret(self, client_secret: str) -> bool:
        return not self.app.is_public and matches(client_secret, self.app.client_secret_hash)

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return method in self.app.token_endpoint_auth_methods

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code"

    def check_grant_type(self, grant_type: str) -> bool:
        if self.app.is_public:  # nobody to authenticate: no token of the app's own
            return grant_type in ("authorization_code", "refresh_token")
        return grant_type in ("client_credentials", "authorization_code", "refresh_token")


@dataclass
class PersonGrant:
    """The resource owner of an authorization-code or refresh grant: a person and the
    consent they gave."""

    user: User
    consent_id: int | None
    family_id: str | None = None

    def get_user_id(self) -> int | None:
        return self.user.id


class AccessTokenRecord(TokenMixin):
    def __init__(self, claims: TokenClaims, revoked: bool) -> None:
        self.claims = claims
        self.revoked = revoked

    def check_client(self, client: OAuthClient) -> bool:
        return self.claims.client_id == client.get_client_id()

    def get_scope(self) -> str:
        return self.claims.scope

    def get_expires_in(self) -> int:
        return self.claims.expires_at - self.claims.issued_at

    def is_expired(self) -> bool:
        return self.claims.expires_at <= time.time()

    def is_revoked(self) -> bool:
        return self.revoked


class RefreshTokenRecord(TokenMixin):
    def __init__(self, row: RefreshToken) -> None:
        self.row = row

    def check_client(self, client: OAuthClient) -> bool:
        return self.row.client_id == client.get_client_id()

    def get_scope(self) -> str:
        return self.row.scope

    def get_expires_in(self) -> int:
        return int((aware(self.row.expires_at) - aware(self.row.created_at)).total_seconds())

    def is_expired(self) -> bool:
        return aware(self.row.expires_at) <= utcnow()

    def is_revoked(self) -> bool:
        return self.row.used_at is not None or self.row.revoked_at is not None


# --- grants ------------------------------------------------------------------------------

CLIENT_AUTH = ["client_secret_basic", "client_secret_post", "private_key_jwt"]
# Grants a public client may use; `none` is tried last, after every real method.
WITH_PUBLIC = [*CLIENT_AUTH, "none"]


class ClientCredentialsGrant(grants.ClientCredentialsGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = CLIENT_AUTH
    server: OAuthServer

    def validate_requested_scope(self) -> None:
        app_scope(self.request.payload.scope, self.server.scope_lookup)


class S256Only(CodeChallenge):
    """PKCE is required of every client, and only with S256 (no `plain`)."""

    SUPPORTED_CODE_CHALLENGE_METHOD = ["S256"]  # noqa: RUF012 (Authlib reads a list)
    DEFAULT_CODE_CHALLENGE_METHOD = "S256"

    def validate_code_challenge(self, grant: Any, redirect_uri: str) -> None:
        data = grant.request.payload.data
        if not data.get("code_challenge"):
            raise InvalidRequestError("Missing 'code_challenge' (PKCE S256 is required)")
        if data.get("code_challenge_method") != "S256":
            raise InvalidRequestError("'code_challenge_method' must be S256")
        super().validate_code_challenge(grant, redirect_uri)

    def validate_code_verifier(self, grant: Any, result: Any) -> None:
        if not grant.request.form.get("code_verifier"):
            raise InvalidRequestError("Missing 'code_verifier'")
        super().validate_code_verifier(grant, result)

    def get_authorization_code_challenge(self, authorization_code: AuthorizationCode) -> str:
        return authorization_code.code_challenge

    def get_authorization_code_challenge_method(self, authorization_code: AuthorizationCode) -> str:
        return authorization_code.code_challenge_method


class AuthorizationCodeGrant(grants.AuthorizationCodeGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = WITH_PUBLIC
    server: OAuthServer

    def validate_requested_scope(self) -> None:
        person_scope(self.request.payload.scope, self.server.scope_lookup)

    def generate_authorization_code(self) -> str:
        return new_token(32)

    def save_authorization_code(self, code: str, request: PlainRequest) -> None:
        person: PersonGrant = request.user
        data = request.payload.data
        with Session(self.server.engine) as session:
            session.add(
                AuthorizationCode(
                    code_hash=digest(code),
                    client_id=request.client.get_client_id(),
                    user_id=person.user.id,  # type: ignore[arg-type]
                    consent_id=person.consent_id,  # type: ignore[arg-type]
                    redirect_uri=data.get("redirect_uri", ""),
                    scope=request.scope or "",
                    code_challenge=data["code_challenge"],
                    code_challenge_method=data["code_challenge_method"],
                    expires_at=utcnow() + timedelta(seconds=CODE_LIFETIME),
                )
            )
            session.commit()

    def query_authorization_code(self, code: str, client: OAuthClient) -> Any:
        with Session(self.server.engine) as session:
            row = session.get(AuthorizationCode, digest(code))
        if row is None or row.client_id != client.get_client_id():
            return None
        if row.used_at is not None:
            self.server.code_reused(row)
            return None
        if aware(row.expires_at) <= utcnow():
            return None
        return CodeRecord(row)

    def delete_authorization_code(self, authorization_code: Any) -> None:
        # Spent already, atomically, in authenticate_user (before any token was made).
        return None

    def authenticate_user(self, authorization_code: Any) -> PersonGrant | None:
        """Redeem the code — one conditional UPDATE, so of any number of concurrent
        redemptions exactly one wins — and start the token family it is recorded with.
        Runs after every check of the request (client, redirect URI, PKCE)."""
        row: AuthorizationCode = authorization_code.row
        family = new_token(12)
        table = AuthorizationCode.__table__
        with self.server.engine.begin() as conn:
            won = conn.execute(
                sa.update(table)
                .where(table.c.code_hash == row.code_hash, table.c.used_at.is_(None))
                .values(used_at=utcnow(), family_id=family)
            ).rowcount
        if won != 1:
            with Session(self.server.engine) as session:
                spent = session.get(AuthorizationCode, row.code_hash)
            if spent is not None:
                self.server.code_reused(spent)
            return None
        with Session(self.server.engine) as session:
            user = session.get(User, row.user_id)
        if user is None or not user.is_active:
            return None
        # The token family starts here; every token of this grant carries its id.
        return PersonGrant(user, row.consent_id, family)


class CodeRecord:
    """An authorization code row in the shape Authlib and the PKCE extension read."""

    def __init__(self, row: AuthorizationCode) -> None:
        self.row = row
        self.code_challenge = row.code_challenge
        self.code_challenge_method = row.code_challenge_method

    def get_redirect_uri(self) -> str:
        return self.row.redirect_uri

    def get_scope(self) -> str:
        return self.row.scope


class RefreshTokenGrant(grants.RefreshTokenGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = WITH_PUBLIC
    INCLUDE_NEW_REFRESH_TOKEN = True
    server: OAuthServer

    def authenticate_refresh_token(self, refresh_token: str) -> RefreshTokenRecord | None:
        with Session(self.server.engine) as session:
            row = session.get(RefreshToken, digest(refresh_token))
        if row is None:
            return None
        if row.used_at is not None or row.revoked_at is not None:
            # A spent token came back: someone holds a copy. End the whole family.
            log.warning("refresh token reuse detected; revoking family %s", row.family_id)
            self.server.revoke_family(row.family_id)
            return None
        if aware(row.expires_at) <= utcnow():
            return None
        if self.server.family_revoked(row.family_id):
            return None
        return RefreshTokenRecord(row)

    def authenticate_user(self, refresh_token: RefreshTokenRecord) -> PersonGrant | None:
        with Session(self.server.engine) as session:
            user = session.get(User, refresh_token.row.user_id)
        if user is None or not user.is_active:
            return None
        row = refresh_token.row
        return PersonGrant(user, row.consent_id, row.family_id)

    def revoke_old_credential(self, refresh_token: RefreshTokenRecord) -> None:
        with Session(self.server.engine) as session:
            row = session.get(RefreshToken, refresh_token.row.token_hash)
            if row is not None:
                row.used_at = utcnow()
                session.add(row)
                session.commit()


class PrivateKeyJWT(JWTBearerClientAssertion):
    """`private_key_jwt` client authentication (RFC 7523 §2.2) with replay protection."""

    CLIENT_AUTH_METHOD = "private_key_jwt"

    def __init__(self, server: OAuthServer) -> None:
        super().__init__(validate_jti=True, leeway=30)
        self.server = server

    def get_audiences(self) -> list[str]:
        # The issuer, or the URL of the endpoint the assertion is sent to: Authlib's client,
        # for one, names the endpoint it posts to unless told otherwise.
        issuer = self.server.issuer
        return [
            issuer + "/oauth/token",
            issuer + "/oauth/revoke",
            issuer + "/oauth/introspect",
            issuer,
        ]

    def process_assertion_claims(self, assertion: str, resolve_key: Any) -> dict:
        """Authlib's, with the algorithms named (it would take joserfc's default list)."""
        try:
            token = jwt.decode(assertion, resolve_key, algorithms=ALLOWED_ASSERTION_ALGS)
        except JoseError as exc:
            raise InvalidClientError(description=exc.description) from None
        self.verify_claims(token.claims)
        return token.claims

    def validate_jti(self, claims: dict, jti: str) -> bool:
        expires = datetime.fromtimestamp(int(claims.get("exp", time.time())) + 60, UTC)
        try:
            with Session(self.server.engine) as session:
                session.add(UsedAssertion(client_id=claims["sub"], jti=jti, expires_at=expires))
                session.commit()
        except IntegrityError:
            log.warning("private_key_jwt assertion replayed by client %s", claims.get("sub"))
            return False
        return True

    def resolve_client_public_key(self, client: OAuthClient) -> KeySet:
        app = client.app
        if app.jwks:
            return KeySet.import_key_set(app.jwks)
        if app.jwks_uri:
            return self.server.remote_jwks(app.jwks_uri)
        return KeySet([])


def authenticate_public(query_client: Any, request: PlainRequest) -> OAuthClient | None:
    """`none` (RFC 6749 §2.1, a public client): the client_id alone — and only for a
    client registered as public, which never sends a secret or an assertion."""
    client_id = request.payload.client_id
    if not client_id:
        return None
    client = query_client(client_id)
    if client is None:
        raise InvalidClientError(description="The client does not exist on this server.")
    if not client.app.is_public:
        return None  # a confidential client must authenticate; Authlib refuses it
    sent_secret = (
        request.payload.data.get("client_secret")
        or request.payload.data.get("client_assertion")
        or request.headers.get("authorization", "")[:6].lower() == "basic "
    )
    if sent_secret:
        raise InvalidClientError(
            description="a public client has no secret: send client_id only (and PKCE)"
        )
    return client


class JwksUnavailableError(InvalidClientError):
    """The client's `jwks_uri` could not give its keys (refused address, timeout, too big,
    not a public JWK Set): the client is not authenticated, 401 `invalid_client`.
    RFC 6749 §5.2 allows only ASCII in `error_description`, so it stays English."""

    status_code = 401

    def __init__(self) -> None:
        super().__init__(description="the client's keys could not be fetched from its jwks_uri")


# --- token and introspection/revocation endpoints --------------------------------------


class TokenGenerator(BearerTokenGenerator):
    def __init__(self, server: OAuthServer) -> None:
        super().__init__(self._access_token, self._refresh_token, self._expires_in)
        self.server = server

    def _expires_in(self, client: OAuthClient, grant_type: str) -> int:
        return self.server.issuer_service.default_ttl

    def _refresh_token(self, client: OAuthClient, grant_type: str, user: Any, scope: str) -> str:
        return new_token(48)

    def _access_token(self, client: OAuthClient, grant_type: str, user: Any, scope: str) -> str:
        # `sep`: the app's secret epoch; a rotation (or disabling the app) ends the token.
        extra: dict[str, Any] = {"sep": client.app.secret_epoch}
        subject = client.get_client_id()
        if isinstance(user, PersonGrant):
            subject = user.user.username
            extra.update(uid=user.user.id, consent=user.consent_id, fam=user.family_id)
        token, _ = self.server.issuer_service.issue(
            subject=subject, client_id=client.get_client_id(), scope=scope, extra=extra
        )
        return token


class TokenLookup:
    """Finds what a token string is: our JWT access token or a stored refresh token."""

    server: OAuthServer

    def query_token(self, token_string: str, token_type_hint: str | None) -> Any:
        if token_type_hint != "refresh_token" and token_string.count(".") == 2:  # noqa: S105
            try:
                claims = self.server.verifier.verify(token_string)
            except InvalidToken:
                return None
            revoked = self.server.revocations.refusal_now(claims) is not None
            return AccessTokenRecord(claims, revoked)
        with Session(self.server.engine) as session:
            row = session.get(RefreshToken, digest(token_string))
        return RefreshTokenRecord(row) if row is not None else None


class Revocation(TokenLookup, RevocationEndpoint):
    CLIENT_AUTH_METHODS = WITH_PUBLIC  # RFC 7009 §2.1: a public client revokes its own

    def revoke_token(self, token: Any, request: PlainRequest) -> None:
        if isinstance(token, AccessTokenRecord):
            self.server.revocations.revoke(f"jti:{token.claims.token_id}", token.claims.expires_at)
        elif isinstance(token, RefreshTokenRecord):
            self.server.revoke_family(token.row.family_id)


class Introspection(TokenLookup, IntrospectionEndpoint):
    CLIENT_AUTH_METHODS = CLIENT_AUTH

    def check_permission(self, token: Any, client: OAuthClient, request: PlainRequest) -> bool:
        return token.check_client(client)  # an app may introspect its own tokens only

    def introspect_token(self, token: Any) -> dict[str, Any]:
        if isinstance(token, AccessTokenRecord):
            c = token.claims.raw
            return {
                "active": True,
                "token_type": "Bearer",
                "client_id": c.get("client_id"),
                "scope": c.get("scope"),
                "sub": c.get("sub"),
                "aud": c.get("aud"),
                "iss": c.get("iss"),
                "exp": c.get("exp"),
                "iat": c.get("iat"),
                "jti": c.get("jti"),
            }
        row = token.row
        return {
            "active": True,
            "token_type": "refresh_token",
            "client_id": row.client_id,
            "scope": row.scope,
            "exp": int(aware(row.expires_at).timestamp()),
        }


# --- the server --------------------------------------------------------------------------


class OAuthServer(AuthorizationServer):
    def __init__(
        self,
        *,
        engine: Engine,
        issuer_service: TokenIssuer,
        verifier: TokenVerifier,
        revocations: Revocations,
        scope_lookup: DatasetLookup | None = None,
        outbound: OutboundPolicy | None = None,
        outbound_limits: Limits | None = None,
    ) -> None:
        super().__init__(scopes_supported=None)
        # The datasets a scope may name (None: unknown or closed); the catalog's.
        self.scope_lookup: DatasetLookup = scope_lookup or _no_datasets
        self.outbound = outbound or OutboundPolicy([])  # no allowlist: no remote keys
        self.outbound_limits = outbound_limits or Limits()
        self.engine = engine
        self.issuer = issuer_service.issuer
        self.issuer_service = issuer_service
        self.verifier = verifier
        self.revocations = revocations
        self._remote_jwks: dict[str, tuple[float, KeySet]] = {}
        if urlsplit(self.issuer).scheme == "http":
            # Development on plain http (127.0.0.1); production issuers are https.
            os.environ.setdefault("AUTHLIB_INSECURE_TRANSPORT", "1")
        self.register_token_generator("default", TokenGenerator(self))
        self.register_client_auth_method("private_key_jwt", PrivateKeyJWT(self))
        self.register_client_auth_method("none", authenticate_public)
        self.register_grant(ClientCredentialsGrant)
        self.register_grant(AuthorizationCodeGrant, [S256Only(required=True)])
        self.register_grant(RefreshTokenGrant)
        revocation, introspection = Revocation(self), Introspection(self)
        revocation.server = introspection.server = self
        self.register_endpoint(revocation)
        self.register_endpoint(introspection)

    def query_client(self, client_id: str) -> OAuthClient | None:
        with Session(self.engine) as session:
            app = session.get(App, client_id)
        if app is None or not app.is_active:
            return None
        return OAuthClient(app)

    def save_token(self, token: dict[str, Any], request: PlainRequest) -> None:
        refresh = token.get("refresh_token")
        if not refresh:
            return
        person: PersonGrant = request.user
        family = person.family_id or new_token(12)
        public = request.client.app.is_public
        lifetime = PUBLIC_REFRESH_LIFETIME if public else REFRESH_LIFETIME
        with Session(self.engine) as session:
            session.add(
                RefreshToken(
                    token_hash=digest(refresh),
                    family_id=family,
                    client_id=request.client.get_client_id(),
                    user_id=person.user.id,  # type: ignore[arg-type]
                    consent_id=person.consent_id,
                    scope=token.get("scope", ""),
                    expires_at=utcnow() + timedelta(seconds=lifetime),
                )
            )
            session.commit()
        if self.family_revoked(family):
            # A concurrent second redemption of the code revoked the family while this
            # token was being made: the new refresh token is born revoked.
            self.revoke_family(family)

    def family_revoked(self, family_id: str) -> bool:
        """Read from the table itself (not the mirror): this decides a race."""
        table = RevocationRow.__table__
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(table.c.expires_at).where(table.c.key == f"family:{family_id}")
            ).first()
        return row is not None and aware(row[0]) > utcnow()

    def code_reused(self, row: AuthorizationCode) -> None:
        """RFC 6749 §4.1.2: a code used twice is refused, and every token issued from it
        is revoked (its access tokens, and the refresh tokens of its family)."""
        log.warning("authorization code reused by client %s; revoking its tokens", row.client_id)
        if row.family_id:
            self.revoke_family(row.family_id, until=time.time() + REFRESH_LIFETIME)

    def revoke_family(self, family_id: str, *, until: float | None = None) -> None:
        """Every refresh token of the family, and the access tokens issued under it."""
        self.revocations.revoke(
            f"family:{family_id}", until or time.time() + self.issuer_service.default_ttl + 60
        )
        with Session(self.engine) as session:
            rows = session.exec(select(RefreshToken).where(RefreshToken.family_id == family_id))
            for row in rows:
                row.revoked_at = row.revoked_at or utcnow()
                session.add(row)
            session.commit()

    def remote_jwks(self, uri: str) -> KeySet:
        """The public keys at a client's `jwks_uri` (auth.outbound: allowlist, address
        checks, deadlines, size cap), cached 5 minutes. Any failure is JwksUnavailableError."""
        cached = self._remote_jwks.get(uri)
        if cached is not None and time.monotonic() - cached[0] < 300:
            return cached[1]
        try:
            body = fetch(uri, self.outbound, self.outbound_limits)
            keys = KeySet.import_key_set(orjson.loads(body))
            if any(k.is_private for k in keys.keys):
                raise ValueError("private key")
        except OutboundRefused as exc:
            log.warning("jwks_uri refused or failed: %s", exc.reason)
            raise JwksUnavailableError() from None
        except Exception as exc:  # not JSON, not a JWK Set: the client's problem, never a 500
            log.warning("jwks_uri answered no public JWK Set (%s)", type(exc).__name__)
            raise JwksUnavailableError() from None
        self._remote_jwks[uri] = (time.monotonic(), keys)
        return keys

    def create_oauth2_request(self, request: PlainRequest) -> PlainRequest:
        return request

    def create_json_request(self, request: PlainRequest) -> PlainRequest:
        return request

    def handle_response(self, status: int, body: Any, headers: Any) -> tuple[int, Any, Any]:
        return status, body, headers

    def send_signal(self, name: str, *args: Any, **kwargs: Any) -> None:
        return None

    def metadata(self) -> dict[str, Any]:
        """RFC 8414 authorization server metadata; `AuthorizationServerMetadata.validate()`
        of Authlib passes on it (tests/auth/test_standard_oauth.py)."""
        base = self.issuer
        return {
            "issuer": base,
            "authorization_endpoint": f"{base}/oauth/authorize",
            "token_endpoint": f"{base}/oauth/token",
            "introspection_endpoint": f"{base}/oauth/introspect",
            "revocation_endpoint": f"{base}/oauth/revoke",
            "jwks_uri": f"{base}/.well-known/jwks.json",
            "response_types_supported": ["code"],
            "grant_types_supported": ["client_credentials", "authorization_code", "refresh_token"],
            "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_methods_supported": WITH_PUBLIC,
            "token_endpoint_auth_signing_alg_values_supported": ALLOWED_ASSERTION_ALGS,
            "introspection_endpoint_auth_methods_supported": CLIENT_AUTH,
            "introspection_endpoint_auth_signing_alg_values_supported": ALLOWED_ASSERTION_ALGS,
            "revocation_endpoint_auth_methods_supported": WITH_PUBLIC,
            "revocation_endpoint_auth_signing_alg_values_supported": ALLOWED_ASSERTION_ALGS,
            # Dataset scopes (`dataset:<id>[:<mode>|:self]`) are one per dataset; RFC 8414
            # lets a server leave out scopes it supports (docs/contract-oauth.md).
            "scopes_supported": [APP_SCOPE],
            "access_token_signing_alg_values_supported": ["ES256"],
            "service_documentation": f"{base}/docs",
        }


def _no_datasets(dataset_id: str) -> ScopeTarget | None:
    return None
