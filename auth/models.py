"""Identity tables: people (users), apps (OAuth clients), and the OAuth server's state.

Secrets are never stored: passwords as Argon2id hashes, client secrets, authorization
codes and refresh tokens as SHA-256 digests (they are long random strings, so a fast hash
is enough), identity numbers as an HMAC under a key kept in the data directory.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import JSON, Column, Index
from sqlmodel import Field, SQLModel

from kernel.clock import utcnow


class Role(StrEnum):
    """One role per account (三员分立: system, security/data and audit administrators are
    never the same account)."""

    developer = "developer"
    data_admin = "data_admin"
    auditor = "auditor"
    sysadmin = "sysadmin"


# A public client (a mobile app) has no secret: PKCE S256 stands in for it.
PUBLIC_SECRET_HASH = ""


class User(SQLModel, table=True):
    __tablename__ = "users"

    id: int | None = Field(default=None, primary_key=True)
    username: str = Field(max_length=64, unique=True)
    password_hash: str
    role: str = Field(max_length=16)
    email: str = Field(default="", max_length=254)
    organization: str = Field(default="", max_length=200)
    # HMAC of the person's identity number: matches rows by subject_key, reveals nothing.
    # Unique: one account per identity. Set only from a verified source (auth/identity.py).
    identity_hmac: str | None = Field(default=None, max_length=64, unique=True, index=True)
    # How the identity was proven: `operator:<name>` or `oidc:<issuer>`.
    identity_proof: str | None = Field(default=None, max_length=300)
    identity_verified_at: datetime | None = None
    is_active: bool = True
    created_at: datetime = Field(default_factory=utcnow)
    # Set whenever is_active or role changes: the workers mirror every changed account
    # (auth/revocations.py), so a token issued before the change stops on the next request.
    state_changed_at: datetime | None = Field(default=None, index=True)

    @property
    def identity_linked(self) -> bool:
        return self.identity_hmac is not None


class App(SQLModel, table=True):
    """A developer's app: an OAuth 2.0 client."""

    __tablename__ = "apps"

    client_id: str = Field(primary_key=True, max_length=64)
    name: str = Field(max_length=100)
    owner_id: int = Field(foreign_key="users.id", index=True)
    client_secret_hash: str = Field(max_length=64)
    redirect_uris: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    jwks: dict | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    jwks_uri: str | None = Field(default=None, max_length=500)
    is_active: bool = True
    created_at: datetime = Field(default_factory=utcnow)
    secret_rotated_at: datetime = Field(default_factory=utcnow)
    # Bumped by every secret rotation; tokens carry it as `sep` and die when it moves on.
    secret_epoch: int = 0
    state_changed_at: datetime | None = Field(default=None, index=True)

    # What the API shows of a client, derived from the row (read by auth.schemas.AppSummary).
    @property
    def is_public(self) -> bool:
        return self.client_secret_hash == PUBLIC_SECRET_HASH

    @property
    def client_type(self) -> str:
        return "public" if self.is_public else "confidential"

    @property
    def token_endpoint_auth_methods(self) -> list[str]:
        if self.is_public:
            return ["none"]
        methods = ["client_secret_basic", "client_secret_post"]
        if self.jwks or self.jwks_uri:
            methods.append("private_key_jwt")
        return methods


class Consent(SQLModel, table=True):
    """A person's approval (个人授权) for one app to read their own rows of one dataset."""

    __tablename__ = "consents"

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="users.id", index=True)
    client_id: str = Field(foreign_key="apps.client_id", max_length=64)
    dataset_id: str = Field(max_length=64)
    purpose: str = Field(max_length=500)
    scope: str = Field(max_length=200)
    created_at: datetime = Field(default_factory=utcnow)
    expires_at: datetime
    withdrawn_at: datetime | None = None


class AuthorizationCode(SQLModel, table=True):
    __tablename__ = "oauth_codes"

    code_hash: str = Field(primary_key=True, max_length=64)
    client_id: str = Field(max_length=64)
    user_id: int = Field(foreign_key="users.id")
    consent_id: int = Field(foreign_key="consents.id")
    redirect_uri: str = Field(max_length=500)
    scope: str = Field(max_length=200)
    code_challenge: str = Field(max_length=128)
    code_challenge_method: str = Field(max_length=8)
    expires_at: datetime
    used_at: datetime | None = None
    # The token family the (single) redemption started; a second redemption revokes it.
    family_id: str | None = Field(default=None, max_length=32)


class RefreshToken(SQLModel, table=True):
    """Refresh tokens rotate on every use; reusing a spent one revokes its whole family
    (RFC 9700 §4.14)."""

    __tablename__ = "oauth_refresh_tokens"
    __table_args__ = (Index("ix_refresh_family", "family_id"),)

    token_hash: str = Field(primary_key=True, max_length=64)
    family_id: str = Field(max_length=32)
    client_id: str = Field(max_length=64)
    user_id: int = Field(foreign_key="users.id")
    consent_id: int | None = Field(default=None, foreign_key="consents.id")
    scope: str = Field(max_length=200)
    created_at: datetime = Field(default_factory=utcnow)
    expires_at: datetime
    used_at: datetime | None = None
    revoked_at: datetime | None = None


class UsedAssertion(SQLModel, table=True):
    """`jti`s of private_key_jwt client assertions already seen (replay protection)."""

    __tablename__ = "oauth_used_assertions"

    client_id: str = Field(primary_key=True, max_length=64)
    jti: str = Field(primary_key=True, max_length=200)
    expires_at: datetime


class Revocation(SQLModel, table=True):
    """Revoked access tokens (`jti:…`), consents (`consent:…`) and the like, until the
    tokens they concern expire. Workers mirror this in memory or read it through Redis."""

    __tablename__ = "revocations"

    key: str = Field(primary_key=True, max_length=200)
    expires_at: datetime = Field(index=True)
    created_at: datetime = Field(default_factory=utcnow)


class LoginFailure(SQLModel, table=True):
    """Failed sign-ins per (account name, source address): a slow-down for that pair only,
    so a stranger elsewhere cannot lock the owner out."""

    __tablename__ = "login_failures"

    username: str = Field(primary_key=True, max_length=64)
    source: str = Field(primary_key=True, max_length=64)
    failures: int = 0
    last_failure_at: datetime = Field(default_factory=utcnow, index=True)
    next_allowed_at: datetime = Field(default_factory=utcnow)


class IdentityLogin(SQLModel, table=True):
    """A started OpenID Connect sign-in at the trusted identity provider (实名核验), until its
    callback consumes it (once) or it expires."""

    __tablename__ = "identity_logins"

    state_hash: str = Field(primary_key=True, max_length=64)
    nonce: str = Field(max_length=64)
    code_verifier: str = Field(max_length=128)
    user_id: int = Field(foreign_key="users.id")
    return_to: str | None = Field(default=None, max_length=2000)
    created_at: datetime = Field(default_factory=utcnow)
    expires_at: datetime = Field(index=True)
    used_at: datetime | None = None


class IdentityTokenSeen(SQLModel, table=True):
    """ID tokens already accepted, by issuer and `jti:`/`nonce:` key: a replay is refused."""

    __tablename__ = "identity_tokens_seen"

    issuer: str = Field(primary_key=True, max_length=64)  # SHA-256 of the issuer URL
    token_key: str = Field(primary_key=True, max_length=220)
    expires_at: datetime = Field(index=True)


class AppSigningSecret(SQLModel, table=True):
    """An app's signing secret for signed calls (接口签名, contract §12; decision 0018): 32
    random bytes, shown once, kept sealed with AES-256-GCM under a key derived from the
    installation's master key. One per app; a new one replaces the old at once."""

    __tablename__ = "app_signing_secrets"

    client_id: str = Field(foreign_key="apps.client_id", primary_key=True, max_length=64)
    kid: str = Field(max_length=32)
    created_at: datetime = Field(default_factory=utcnow)
    nonce: bytes
    sealed: bytes
