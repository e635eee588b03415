"""The gateway's identity services, built once per process from the settings."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.engine import Engine
from starlette.requests import Request

from auth.keys import KeyRing
from auth.oauth import OAuthServer
from auth.oidc import IdentityProvider, ProviderConfig, check_issuer_url
from auth.outbound import Limits, OutboundPolicy
from auth.principal import Authenticator
from auth.revocations import Revocations
from auth.tokens import TokenIssuer, TokenVerifier
from gateway.keys import InstallationKeys
from gateway.settings import Settings


@dataclass(frozen=True)
class Security:
    keys: KeyRing
    issuer: TokenIssuer
    verifier: TokenVerifier
    revocations: Revocations
    authenticator: Authenticator
    oauth: OAuthServer
    identity_key: bytes
    identity_provider: IdentityProvider | None

    @classmethod
    def build(cls, settings: Settings, engine: Engine, installation: InstallationKeys) -> Security:
        keys = installation.tokens
        issuer = TokenIssuer(keys, settings.issuer, default_ttl=settings.access_token_ttl)
        verifier = TokenVerifier(keys, settings.issuer)
        revocations = Revocations(
            engine, redis_url=settings.redis_url, stale=settings.db_stale_seconds
        )
        return cls(
            keys=keys,
            issuer=issuer,
            verifier=verifier,
            revocations=revocations,
            authenticator=Authenticator(verifier, revocations),
            oauth=OAuthServer(
                engine=engine,
                issuer_service=issuer,
                verifier=verifier,
                revocations=revocations,
                outbound=OutboundPolicy(settings.jwks_uri_prefixes, settings.outbound_networks),
                outbound_limits=Limits(
                    connect_timeout=settings.outbound_connect_timeout,
                    read_timeout=settings.outbound_read_timeout,
                    total_timeout=settings.outbound_total_timeout,
                    max_bytes=settings.outbound_max_bytes,
                ),
            ),
            identity_key=installation.identity,
            identity_provider=identity_provider(settings, engine),
        )


def identity_provider(settings: Settings, engine: Engine) -> IdentityProvider | None:
    """The trusted OpenID Connect provider of identity proofing, when one is configured."""
    if not settings.identity_issuer:
        return None
    check_issuer_url(settings.identity_issuer)
    if not settings.identity_client_id or not settings.identity_client_secret:
        raise ValueError(
            "OPENGATE_IDENTITY_ISSUER is set: set OPENGATE_IDENTITY_CLIENT_ID and "
            "OPENGATE_IDENTITY_CLIENT_SECRET too"
        )
    config = ProviderConfig(
        issuer=settings.identity_issuer,
        client_id=settings.identity_client_id,
        client_secret=settings.identity_client_secret,
        redirect_uri=settings.issuer.rstrip("/") + "/auth/identity/callback",
        claim=settings.identity_claim,
        verified_claim=settings.identity_verified_claim,
        scope=settings.identity_scope,
    )
    return IdentityProvider(config, engine)


def client_ip(request: Request) -> str:
    """The caller's address as the rate-limit middleware worked it out (trusted proxies
    only), else the socket peer."""
    known = request.scope.get("state", {}).get("client_ip")
    if known:
        return known
    return request.client.host if request.client else "unknown"
