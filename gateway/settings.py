"""Settings from `OPENGATE_*` environment variables (and an optional `.env`)."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="OPENGATE_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    database_url: str = "sqlite:///./var/opengate.db"
    redis_url: str | None = None
    data_dir: Path = Path("./var")
    issuer: str = "http://127.0.0.1:8000"
    trusted_proxies: str = ""
    rate_anon: str = "60/minute"
    rate_app: str = "1200/minute"
    # Credential stuffing: sign-ins and token requests per client address.
    rate_login: str = "10/minute"
    rate_token: str = "60/minute"  # noqa: S105 (a rate, not a secret)
    # Per route group and caller (address, app or user), on top of the caller's own limit.
    # data: records/export/aggregate/verify/policy; auth: /auth/ and /oauth/; admin: grants,
    # applications, apps, the account (/api/v1/me) and the audit log.
    rate_data: str = "1200/minute"
    rate_auth: str = "120/minute"
    rate_admin: str = "300/minute"
    # false: no rate limit at all (no counting, no headers); for benchmarks, or behind
    # another limiter. Grant quotas still apply.
    rate_limits_enabled: bool = True
    # How long a worker may serve a dataset's previous version after `--replace`.
    catalog_cache_seconds: float = Field(default=2.0, ge=0)
    db_pool_size: int = Field(default=10, ge=1)
    # Threads a worker runs its synchronous endpoints in at once. Unset: 1 on SQLite, whose
    # driver gives up the GIL for every row it steps through — with other threads busy,
    # each row then waits its turn for the GIL, and 16 concurrent 1000-row requests were
    # served at 19 a second instead of 48 (docs/decisions/0010); anyio's 40 elsewhere.
    sync_threads: int | None = Field(default=None, ge=1)
    access_token_ttl: int = Field(default=600, ge=60, le=3600)
    allow_registration: bool = True
    # Prefixes a developer's `jwks_uri` must start with (private_key_jwt key discovery).
    jwks_uri_allowlist: str = ""

    # Identity proofing (实名核验) through the installation's OpenID Connect provider
    # (统一身份认证). Unset issuer: only an operator's `opengate users verify-identity`.
    identity_issuer: str | None = None
    identity_client_id: str = ""
    identity_client_secret: str = ""
    # The ID-token claim holding the identity number, and the claim that must be `true`
    # for it to count as verified (empty: the provider releases verified numbers only).
    identity_claim: str = "id_number"
    identity_verified_claim: str = "id_number_verified"
    identity_scope: str = "openid"

    # The audit log: "database" (the hash-chained table), or "null" — stores nothing, for
    # the audit-overhead benchmark only; the gateway logs a warning when it runs that way.
    audit_sink: Literal["database", "null"] = "database"
    audit_checkpoint_seconds: float = Field(default=60.0, gt=0, le=60)
    # Cybersecurity Law Art. 23: network logs kept at least six months.
    audit_retention_days: int = Field(default=184, ge=184)

    @property
    def jwks_uri_prefixes(self) -> list[str]:
        return [p.strip() for p in self.jwks_uri_allowlist.split(",") if p.strip()]

    @cached_property
    def sqlalchemy_url(self) -> str:
        """The database URL with the driver the gateway uses (psycopg 3 on PostgreSQL)."""
        url = self.database_url
        for prefix in ("postgresql://", "postgres://", "postgresql+psycopg2://"):
            if url.startswith(prefix):
                return "postgresql+psycopg://" + url[len(prefix) :]
        return url
