"""The gateway's identity services, built once per process from the settings."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.engine import Engine
from starlette.requests import Request

from auth.keys import KeyRing
from auth.oauth import OAuthServer
from auth.outbound import Limits, OutboundPolicy
from auth.principal import Authenticator
from auth.revocations import Revocations
from auth.secrets import load_or_create_key
from auth.tokens import TokenIssuer, TokenVerifier
from auth.users import LoginThrottle
from gateway.settings import Settings


@dataclass(frozen=True)
class Security:
    keys: KeyRing
    issuer: TokenIssuer
    verifier: TokenVerifier
    revocations: Revocations
    authenticator: Authenticator
    oauth: OAuthServer
    throttle: LoginThrottle
    identity_key: bytes

    @classmethod
    def build(cls, settings: Settings, engine: Engine) -> Security:
        keys = KeyRing(settings.data_dir / "keys")
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
            throttle=LoginThrottle(),
            identity_key=load_or_create_key(settings.data_dir / "identity.key"),
        )


def client_ip(request: Request) -> str:
    """The caller's address as the rate-limit middleware worked it out (trusted proxies
    only), else the socket peer."""
    known = request.scope.get("state", {}).get("client_ip")
    if known:
        return known
    return request.client.host if request.client else "unknown"
