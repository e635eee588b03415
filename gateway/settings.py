"""Settings from `OPENGATE_*` environment variables (and an optional `.env`)."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

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
    # How long a worker may serve a dataset's previous version after `--replace`.
    catalog_cache_seconds: float = Field(default=2.0, ge=0)
    db_pool_size: int = Field(default=10, ge=1)
    access_token_ttl: int = Field(default=600, ge=60, le=3600)
    allow_registration: bool = True
    # Prefixes a developer's `jwks_uri` must start with (private_key_jwt key discovery).
    jwks_uri_allowlist: str = ""

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
