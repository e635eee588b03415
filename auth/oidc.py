"""The installation's OpenID Connect identity provider (统一身份认证): the gateway as a
relying party, authorization-code flow with PKCE S256, `state` and `nonce`.

`begin` stores a pending sign-in (hashed state, nonce, PKCE verifier, the account it is for)
and returns the provider's authorization URL. `finish` consumes that pending sign-in once
(one conditional UPDATE), redeems the code at the provider's token endpoint (Authlib's
client, client_secret_basic), and accepts the ID token only when: its issuer is the one the
installation trusts; its signature verifies with a key from the provider's JWKS (discovered
from the issuer); `aud` names our client (`azp` too when there are several); it is not
expired nor issued in the future; its `nonce` is the one we sent; it was never accepted
before (`jti` and `nonce`, per issuer); and it carries a verified identity-number claim that
passes the GB 11643 check. Every refusal names its reason for the audit log and a Chinese
sentence for the person; nothing is changed by a refused sign-in.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
import warnings
from base64 import urlsafe_b64decode
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx
import sqlalchemy as sa
from authlib.integrations.base_client import OAuthError
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from auth.models import IdentityLogin, IdentityTokenSeen
from auth.secrets import digest, new_token
from catalog.identifiers import is_valid_id_number
from kernel.clock import utcnow

log = logging.getLogger("opengate.auth")

LOGIN_LIFETIME = timedelta(minutes=10)
METADATA_TTL = 300.0  # seconds a discovery document or JWKS is reused
MAX_DOCUMENT = 256 * 1024  # bytes: discovery and JWKS documents are small
TIMEOUT = httpx.Timeout(5.0)
LEEWAY = 30  # seconds of clock difference tolerated on exp / iat
MAX_AGE = 600  # an ID token older than this is not accepted
ALGORITHMS = ["RS256", "PS256", "ES256", "EdDSA"]


@dataclass(frozen=True)
class ProviderConfig:
    issuer: str
    client_id: str
    client_secret: str
    redirect_uri: str
    claim: str = "id_number"
    verified_claim: str = "id_number_verified"  # empty: the provider releases verified only
    scope: str = "openid"

    @property
    def proof(self) -> str:
        return f"oidc:{self.issuer}"


class ProofError(Exception):
    """A refused identity sign-in: `reason` for the audit log, `message` for the person."""

    def __init__(self, reason: str, message: str, *, status: int = 400) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.status = status


@dataclass(frozen=True)
class VerifiedIdentity:
    id_number: str
    subject: str  # the provider's `sub`


@dataclass(frozen=True)
class PendingLogin:
    user_id: int
    return_to: str | None


def check_issuer_url(issuer: str) -> str:
    """https, or http on loopback only (development and tests)."""
    parts = urlsplit(issuer)
    loopback = parts.hostname in ("127.0.0.1", "localhost", "::1")
    if parts.scheme != "https" and not (parts.scheme == "http" and loopback):
        raise ValueError("OPENGATE_IDENTITY_ISSUER must be an https URL")
    if parts.username or parts.password or parts.query or parts.fragment:
        raise ValueError("OPENGATE_IDENTITY_ISSUER must be a plain URL")
    return issuer.rstrip("/")


class IdentityProvider:
    def __init__(self, config: ProviderConfig, engine: Engine) -> None:
        self.config = config
        self.issuer = check_issuer_url(config.issuer)
        self.engine = engine
        self._issuer_key = hashlib.sha256(self.issuer.encode()).hexdigest()
        self._documents: dict[str, tuple[float, Any]] = {}

    # --- discovery and keys ---------------------------------------------------------------

    def _get_json(self, url: str) -> Any:
        try:
            with (
                httpx.Client(timeout=TIMEOUT, follow_redirects=False) as client,
                client.stream("GET", url) as response,
            ):
                if response.status_code != 200:
                    raise ProofError(
                        "provider_error", "统一身份认证服务应答异常，请稍后再试", status=502
                    )
                body = bytearray()
                for chunk in response.iter_bytes():
                    body += chunk
                    if len(body) > MAX_DOCUMENT:
                        raise ProofError(
                            "provider_error", "统一身份认证服务应答异常，请稍后再试", status=502
                        )
            return json.loads(body)
        except (httpx.HTTPError, ValueError):
            raise ProofError(
                "provider_unreachable", "暂时无法连接统一身份认证服务，请稍后再试", status=502
            ) from None

    def _cached(self, url: str, *, fresh: bool = False) -> Any:
        hit = self._documents.get(url)
        if hit is not None and not fresh and time.monotonic() - hit[0] < METADATA_TTL:
            return hit[1]
        document = self._get_json(url)
        self._documents[url] = (time.monotonic(), document)
        return document

    def metadata(self) -> dict[str, Any]:
        meta = self._cached(f"{self.issuer}/.well-known/openid-configuration")
        if not isinstance(meta, dict) or meta.get("issuer", "").rstrip("/") != self.issuer:
            # OpenID Connect Discovery §4.3: the document must name the issuer we asked.
            raise ProofError("untrusted_issuer", "统一身份认证服务配置不符，已拒绝", status=502)
        for name in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
            if not isinstance(meta.get(name), str):
                raise ProofError("provider_error", "统一身份认证服务配置不完整", status=502)
        return meta

    def _keys(self, *, fresh: bool = False) -> KeySet:
        try:
            return KeySet.import_key_set(self._cached(self.metadata()["jwks_uri"], fresh=fresh))
        except (JoseError, ValueError, TypeError, KeyError):
            raise ProofError("provider_error", "统一身份认证服务的公钥无效", status=502) from None

    def _client(self) -> Any:
        with warnings.catch_warnings():
            # Authlib's httpx client nags about httpx2 on import; httpx is what we ship.
            warnings.simplefilter("ignore", DeprecationWarning)
            from authlib.integrations.httpx_client import OAuth2Client
        return OAuth2Client(
            self.config.client_id,
            self.config.client_secret,
            scope=self.config.scope,
            redirect_uri=self.config.redirect_uri,
            code_challenge_method="S256",
            token_endpoint_auth_method="client_secret_basic",  # noqa: S106 (a method name)
            timeout=TIMEOUT,
            follow_redirects=False,
        )

    # --- the flow --------------------------------------------------------------------------

    def begin(self, user_id: int, return_to: str | None = None) -> str:
        """Start a sign-in for `user_id`; the URL to send the person's browser to."""
        authorization_endpoint = self.metadata()["authorization_endpoint"]
        state, nonce, verifier = new_token(24), new_token(24), new_token(48)
        with Session(self.engine) as session:
            session.add(
                IdentityLogin(
                    state_hash=digest(state),
                    nonce=nonce,
                    code_verifier=verifier,
                    user_id=user_id,
                    return_to=return_to,
                    expires_at=utcnow() + LOGIN_LIFETIME,
                )
            )
            session.commit()
        with self._client() as client:
            url, _state = client.create_authorization_url(
                authorization_endpoint, state=state, nonce=nonce, code_verifier=verifier
            )
        return url

    def consume(self, state: str) -> tuple[PendingLogin, str, str]:
        """The pending sign-in of `state`, spent now (a second callback finds nothing);
        with its nonce and PKCE verifier."""
        table = IdentityLogin.__table__
        key = digest(state)
        now = utcnow()
        with self.engine.begin() as conn:
            spent = conn.execute(
                sa.update(table)
                .where(
                    table.c.state_hash == key,
                    table.c.used_at.is_(None),
                    table.c.expires_at > now,
                )
                .values(used_at=now)
            ).rowcount
            row = conn.execute(sa.select(table).where(table.c.state_hash == key)).first()
        if spent != 1 or row is None:
            raise ProofError("state_unknown", "身份核验请求无效或已过期，请重新发起")
        return PendingLogin(row.user_id, row.return_to), row.nonce, row.code_verifier

    def finish(self, *, code: str, nonce: str, verifier: str) -> VerifiedIdentity:
        """Redeem the code and verify the ID token (see the module docstring)."""
        token_endpoint = self.metadata()["token_endpoint"]
        try:
            with self._client() as client:
                token = client.fetch_token(
                    token_endpoint,
                    grant_type="authorization_code",
                    code=code,
                    code_verifier=verifier,
                )
        except OAuthError:
            raise ProofError("code_refused", "统一身份认证服务拒绝了本次核验，请重新发起") from None
        except (httpx.HTTPError, ValueError):
            raise ProofError(
                "provider_unreachable", "暂时无法连接统一身份认证服务，请稍后再试", status=502
            ) from None
        id_token = token.get("id_token")
        if not isinstance(id_token, str):
            raise ProofError("no_id_token", "统一身份认证服务未返回身份令牌")
        claims = self.verify_id_token(id_token, nonce=nonce)
        return VerifiedIdentity(claims[self.config.claim].strip().upper(), str(claims["sub"]))

    def verify_id_token(self, id_token: str, *, nonce: str) -> dict[str, Any]:
        unverified = _peek(id_token)
        if str(unverified.get("iss", "")).rstrip("/") != self.issuer:
            raise ProofError("untrusted_issuer", "身份令牌并非由本平台信任的身份认证服务签发")
        claims = self._verified_claims(id_token)
        now = time.time()
        if str(claims.get("iss", "")).rstrip("/") != self.issuer:
            raise ProofError("untrusted_issuer", "身份令牌并非由本平台信任的身份认证服务签发")
        audience = claims.get("aud")
        audiences = audience if isinstance(audience, list) else [audience]
        if self.config.client_id not in audiences or (
            len(audiences) > 1 and claims.get("azp") != self.config.client_id
        ):
            raise ProofError("wrong_audience", "身份令牌不是签发给本平台的")
        exp, iat = claims.get("exp"), claims.get("iat")
        if not isinstance(exp, int | float) or exp + LEEWAY <= now:
            raise ProofError("expired", "身份令牌已过期，请重新发起核验")
        if not isinstance(iat, int | float) or iat > now + LEEWAY or iat < now - MAX_AGE:
            raise ProofError("bad_iat", "身份令牌的签发时间无效")
        if not isinstance(claims.get("sub"), str) or not claims["sub"]:
            raise ProofError("no_subject", "身份令牌缺少用户标识")
        seen = self._seen_keys(claims)
        if self._already_seen(seen):
            raise ProofError("replayed", "该身份令牌已被使用过（疑似重放），已拒绝")
        token_nonce = claims.get("nonce")
        if not isinstance(token_nonce, str) or not hmac.compare_digest(token_nonce, nonce):
            raise ProofError("nonce_mismatch", "身份令牌与本次核验请求不符（nonce 不一致）")
        self._check_identity_claim(claims)
        self._remember(seen, expires=float(exp) + MAX_AGE)
        return claims

    def _verified_claims(self, id_token: str) -> dict[str, Any]:
        # A failure with the cached JWKS is retried once with a fresh one: the provider
        # may have rotated its key since.
        for fresh in (False, True):
            try:
                return dict(jwt.decode(id_token, self._keys(fresh=fresh), ALGORITHMS).claims)
            except (JoseError, ValueError) as exc:
                failure = type(exc).__name__
        log.warning("ID token from %s refused: %s", self.issuer, failure)
        raise ProofError("bad_signature", "身份令牌签名无效，已拒绝")

    def _check_identity_claim(self, claims: dict[str, Any]) -> None:
        value = claims.get(self.config.claim)
        if not isinstance(value, str) or not value.strip():
            raise ProofError("no_identity_claim", "身份令牌未包含公民身份号码")
        if self.config.verified_claim and claims.get(self.config.verified_claim) is not True:
            raise ProofError("not_verified", "统一身份认证服务未确认该身份号码已核验")
        if not is_valid_id_number(value.strip().upper()):
            raise ProofError("invalid_id_number", "身份令牌中的公民身份号码格式或校验位不正确")

    @staticmethod
    def _seen_keys(claims: dict[str, Any]) -> list[str]:
        keys = [f"nonce:{digest(str(claims.get('nonce', '')))}"]
        if isinstance(claims.get("jti"), str):
            keys.append(f"jti:{digest(claims['jti'])}")
        return keys

    def _already_seen(self, keys: list[str]) -> bool:
        table = IdentityTokenSeen.__table__
        with self.engine.connect() as conn:
            hit = conn.execute(
                sa.select(table.c.token_key).where(
                    table.c.issuer == self._issuer_key, table.c.token_key.in_(keys)
                )
            ).first()
        return hit is not None

    def _remember(self, keys: list[str], *, expires: float) -> None:
        until = datetime.fromtimestamp(expires, UTC)
        table = IdentityTokenSeen.__table__
        try:
            with self.engine.begin() as conn:
                conn.execute(sa.delete(table).where(table.c.expires_at < utcnow() - LOGIN_LIFETIME))
                for key in keys:
                    conn.execute(
                        sa.insert(table).values(
                            issuer=self._issuer_key, token_key=key, expires_at=until
                        )
                    )
        except IntegrityError:  # the same token, at the same moment, through another callback
            raise ProofError("replayed", "该身份令牌已被使用过（疑似重放），已拒绝") from None


def _peek(id_token: str) -> dict[str, Any]:
    """The payload before verification: only to tell an untrusted issuer from a forgery."""
    try:
        payload = id_token.split(".")[1]
        claims = json.loads(urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError):
        raise ProofError("malformed", "身份令牌格式错误") from None
    if not isinstance(claims, dict):
        raise ProofError("malformed", "身份令牌格式错误")
    return claims
