"""Settings from `OPENGATE_*` environment variables (and an optional `.env`)."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="OPENGATE_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    database_url: str = "sqlite:///./var/opengate.db"
    redis_url: str | None = None
    data_dir: Path = Path("./var")
    # The key ring's master key (docs/contract-keyring.md): base64 of 32 bytes, or a file
    # holding it (mode 0600 or stricter). Neither: `master.key` in the data directory.
    master_key: SecretStr | None = None
    master_key_file: Path | None = None
    issuer: str = "http://127.0.0.1:8000"
    # What the DCAT catalog says of itself (docs/contract-dcat.md).
    catalog_title: str = "公共数据开放目录"
    catalog_description: str = "本平台开放的公共数据集与接口服务目录（无条件开放与有条件开放）。"
    catalog_publisher: str = "公共数据开放平台"
    catalog_contact_email: str = "opendata@example.gov.cn"
    trusted_proxies: str = ""
    rate_anon: str = "60/minute"
    rate_app: str = "1200/minute"
    # Credential stuffing: sign-ins and token requests per client address. `rate_login` is
    # the one sign-in limiter: every route that checks a password counts in it (the API
    # login and the consent page), shared through Redis when `redis_url` is set.
    rate_login: str = "10/minute"
    rate_token: str = "60/minute"  # noqa: S105 (a rate, not a secret)
    # Per route group and caller (address, app or user), on top of the caller's own limit.
    # data: records/export/aggregate/verify/policy; auth: /auth/ and /oauth/; admin: grants,
    # applications, apps, the account (/api/v1/me) and the audit log.
    rate_data: str = "1200/minute"
    rate_auth: str = "120/minute"
    rate_admin: str = "300/minute"
    # Web pages (portal, console, admin, audit, 我的授权; not their static files), per caller:
    # the signed-in account of the session, or the client address when anonymous.
    rate_web: str = "300/minute"
    # false: no rate limit at all (no counting, no headers); for benchmarks, or behind
    # another limiter. Grant quotas still apply.
    rate_limits_enabled: bool = True
    # The start of every rate-limit counter's key in Redis (limits' own key prefix), for
    # installations, or test runs, that share one Redis server.
    rate_limit_prefix: str = Field(default="LIMITS", pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    # How long a worker may serve a dataset's previous version after `--replace`.
    catalog_cache_seconds: float = Field(default=2.0, ge=0)
    # How old the cockpit's figures (`/`, `/cockpit`, `/api/v1/stats/overview`) may get
    # before a request starts their background refresh (participation/overview.py).
    overview_cache_seconds: float = Field(default=30.0, gt=0)
    # Interface services (issue 18): concurrent upstream calls per service and worker (a
    # hanging upstream holds at most these; the next call is 503 at once), and the circuit
    # breaker — open after this many consecutive failures, for this many seconds, shared
    # through Redis when `redis_url` is set.
    service_concurrency: int = Field(default=32, ge=1, le=4096)
    # /metrics: open to whoever reaches it unless this bearer token is set (Prometheus'
    # `authorization: {credentials: …}`).
    metrics_token: SecretStr | None = None
    metrics_enabled: bool = True  # false: nothing counted, /metrics empty (benchmarks)
    # `json`: every log line one JSON object (the access line: request id, method, route,
    # status, duration, client id — never a value); `plain`: text, as before.
    log_format: Literal["plain", "json"] = "plain"
    service_breaker_failures: int = Field(default=5, ge=1, le=1000)
    service_breaker_seconds: float = Field(default=30.0, gt=0, le=3600)
    db_pool_size: int = Field(default=10, ge=1)
    # Seconds a request waits for a pooled connection before it answers 503 `unavailable`
    # (a full pool is an overload to report at once, not a queue to sit in for 30 s).
    db_pool_timeout: float = Field(default=2.0, gt=0, le=30)
    # PostgreSQL: seconds to reach the server; a session left idle inside a transaction
    # longer than `db_idle_transaction_seconds` is ended by the server (0: never).
    db_connect_timeout: int = Field(default=3, ge=1, le=60)
    db_idle_transaction_seconds: int = Field(default=60, ge=0)
    # SQLite: seconds a statement waits for another connection's lock, then 503.
    db_busy_timeout: float = Field(default=10.0, gt=0, le=60)
    # During a database outage, how long a worker keeps serving the catalog and the
    # revocation list it last read before it answers 503 instead.
    db_stale_seconds: float = Field(default=60.0, ge=0)
    # Streamed exports: at once per caller (app, user or address) and worker; seconds a
    # client may read nothing before it is dropped; rows read per database round trip.
    exports_per_caller: int = Field(default=2, ge=1)
    export_send_timeout: float = Field(default=30.0, gt=0)
    export_chunk_rows: int = Field(default=2000, ge=1, le=100_000)
    # Threads a worker runs its synchronous endpoints in at once. Unset: 1 on SQLite, whose
    # driver gives up the GIL for every row it steps through — with other threads busy,
    # each row then waits its turn for the GIL, and 16 concurrent 1000-row requests were
    # served at 19 a second instead of 48 (docs/decisions/0010); anyio's 40 elsewhere.
    sync_threads: int | None = Field(default=None, ge=1)
    access_token_ttl: int = Field(default=600, ge=60, le=3600)
    allow_registration: bool = True
    # A web sign-in (og_session cookie, contract §10) lasts this long, whatever is done.
    session_hours: int = Field(default=8, ge=1, le=24 * 30)
    # The verify brake (issue 12): a grant with `verify` and no `verifies_per_day` of its own
    # gets this daily quota; at most `per_subject` calls a day may name one subject value
    # (identity number, phone, bank card, email); this many answers of false in a day
    # (a guessing sweep) suspend the grant until a data_admin reinstates it ...
    verify_default_per_day: int = Field(default=1000, ge=1)
    verify_per_subject_per_day: int = Field(default=5, ge=1)
    verify_sweep_misses: int = Field(default=50, ge=1)
    # ... and this many distinct subject values verified in a day (hits or not) suspend it
    # too: the audit log's `verify_sweep` flag (audit.stats.VERIFY_SWEEP), acted on at once.
    verify_sweep_subjects: int = Field(default=50, ge=1)
    # Where a developer's `jwks_uri` may point (private_key_jwt key discovery): comma-separated
    # `scheme://host[:port][/path-prefix]`, compared parsed (auth/outbound.py).
    jwks_uri_allowlist: str = ""
    # Outbound fetches (jwks_uri): non-global networks (CIDR, comma-separated) a host *name*
    # may resolve into (an entry naming an IP literal allows that address by itself);
    # deadlines in seconds, the total one over lookup, connect and the whole body; body cap.
    outbound_private_networks: str = ""
    outbound_connect_timeout: float = Field(default=2.0, gt=0, le=30)
    outbound_read_timeout: float = Field(default=2.0, gt=0, le=30)
    outbound_total_timeout: float = Field(default=5.0, gt=0, le=60)
    outbound_max_bytes: int = Field(default=64 * 1024, ge=1024, le=16 * 1024 * 1024)
    # Largest request body any route reads (Content-Length or chunked), in bytes.
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024)
    # The administrator's package upload (/admin/datasets/upload) only: its own body cap,
    # and what its .zip may unpack to (members, bytes: zip bombs stop there).
    upload_max_bytes: int = Field(default=64 * 1024 * 1024, ge=1024)
    upload_max_files: int = Field(default=100, ge=2, le=10_000)
    upload_max_unpacked_bytes: int = Field(default=512 * 1024 * 1024, ge=1024)

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

    @field_validator("jwks_uri_allowlist", "outbound_private_networks")
    @classmethod
    def _outbound_rules_parse(cls, value: str, info: ValidationInfo) -> str:
        """A bad entry stops the gateway at startup rather than matching nothing later."""
        from auth.outbound import OutboundPolicy

        items = [v.strip() for v in value.split(",") if v.strip()]
        if info.field_name == "jwks_uri_allowlist":
            OutboundPolicy(items)  # raises ValueError naming the entry
        else:
            OutboundPolicy([], items)  # an invalid CIDR raises ValueError
        return value

    @property
    def jwks_uri_prefixes(self) -> list[str]:
        return [p.strip() for p in self.jwks_uri_allowlist.split(",") if p.strip()]

    @property
    def outbound_networks(self) -> list[str]:
        return [n.strip() for n in self.outbound_private_networks.split(",") if n.strip()]

    @property
    def installation_is_default(self) -> bool:
        """Neither OPENGATE_DATABASE_URL nor OPENGATE_DATA_DIR given (environment or
        `.env`): the installation is `./var` of the current folder."""
        return not {"database_url", "data_dir"} & self.model_fields_set

    @property
    def sqlite_path(self) -> Path | None:
        """The SQLite database file, absolute (None: not SQLite, or in memory). Raises
        sqlalchemy's ArgumentError when the URL does not parse."""
        from sqlalchemy.engine import make_url

        url = make_url(self.sqlalchemy_url)
        if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
            return None
        return Path(url.database).absolute()

    def installation(self) -> str:
        """The installation in one phrase: its database (password hidden, a SQLite file as
        an absolute path) and its data dir."""
        from sqlalchemy.engine import make_url

        path = self.sqlite_path
        database = (
            f"sqlite:///{path}"
            if path
            else make_url(self.database_url).render_as_string(hide_password=True)
        )
        return f"database {database}, data dir {self.data_dir.absolute()}"

    def issuer_for(self, host: str, port: int) -> str:
        """The issuer of a gateway listening on host:port: OPENGATE_ISSUER when it is set
        (environment or `.env`), else that very address — so the discovery documents and
        the tokens name the port clients reach (a wildcard address is named 127.0.0.1:
        behind a proxy or on another interface, set OPENGATE_ISSUER)."""
        if "issuer" in self.model_fields_set:
            return self.issuer
        name = "127.0.0.1" if host in ("", "0.0.0.0", "::") else host  # noqa: S104
        if ":" in name:
            name = f"[{name}]"
        return f"http://{name}:{port}"

    @cached_property
    def sqlalchemy_url(self) -> str:
        """The database URL with the driver the gateway uses (psycopg 3 on PostgreSQL)."""
        url = self.database_url
        for prefix in ("postgresql://", "postgres://", "postgresql+psycopg2://"):
            if url.startswith(prefix):
                return "postgresql+psycopg://" + url[len(prefix) :]
        return url
