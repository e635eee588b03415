"""The app factory: one engine, the domain routers, error rendering and middleware."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from functools import partial

import anyio.to_thread
from fastapi import FastAPI, Request
from sqlalchemy.engine import Engine

from audit import views as audit_views
from audit.events import keyed_digest
from audit.writer import AuditWriter
from audit.writer import append as append_event
from auth import admin_views, identity_views, oauth_views
from auth import views as account_views
from auth.principal import principal_of
from auth.scopes import ScopeTarget
from auth.signing_secrets import SigningSecrets
from catalog import views as catalog_views
from catalog.cursors import CursorBox
from catalog.hosted import HostedCatalog
from ckan import views as ckan_views
from gateway import (
    analysis_api,
    data_api,
    docs,
    health,
    metrics,
    openapi_document,
    problems,
    redoc,
)
from gateway.audit_trail import AuditMiddleware, NullSink, Sink
from gateway.client_ip import ClientAddress
from gateway.database import create_engine
from gateway.hardening import InputGuardMiddleware, SecurityHeadersMiddleware
from gateway.keys import installation_keys
from gateway.middleware import (
    AuthenticationMiddleware,
    RequestContextMiddleware,
    WriteIntentMiddleware,
)
from gateway.ratelimit import RateLimitMiddleware, RateLimits
from gateway.redis_pipe import RedisError, ScriptRunner
from gateway.route_marks import RouteMarks
from gateway.security import Security, client_ip
from gateway.settings import Settings
from gateway.signed_calls import SignedCalls
from kernel.responses import JSONResponse
from operation import views as operation_views
from participation import views as participation_views
from participation.overview import OverviewCache
from policies import views as grant_views
from policies.access import Enforcer, sees_closed
from policies.quotas import VerifyBrake
from portal import (
    account_pages,
    audit_pages,
    audit_review,
    console_access,
    console_apps,
    console_fees,
    console_participation,
    csrf,
    forms,
    me_pages,
    templating,
)
from portal import assets as portal_assets
from portal import audit_reconciliation as portal_reconciliation
from portal import cockpit as portal_cockpit
from portal import demand_pages as portal_demands
from portal import operation_pages as portal_operation
from portal import pages as portal_pages
from portal.admin_routes import admin_routers
from portal.admin_upload import PATH as UPLOAD_PATH
from portal.consent_pages import TemplateConsentPages
from portal.session import WebSessions, account_key, current_account
from services import views as service_views
from services.breaker import Breaker, BreakerConfig, MemoryBreaker, RedisBreaker
from services.catalog import load_service
from services.scripts import ScriptFactory
from services.signing import MemoryNonces, NonceStore, RedisNonces
from services.upstream import UpstreamLimits, Upstreams


def limit_sync_threads(settings: Settings, engine: Engine) -> None:
    """Set how many synchronous endpoints this event loop runs at once (settings.sync_threads;
    unset: 1 on SQLite, anyio's default elsewhere). Called in the loop, at startup."""
    threads = settings.sync_threads or (1 if engine.dialect.name == "sqlite" else None)
    if threads is not None:
        anyio.to_thread.current_default_thread_limiter().total_tokens = threads


log = logging.getLogger("opengate")

DESCRIPTION = """
公共数据开放与授权运营网关 — the public-data open-service and authorized-operation gateway.

Unconditional datasets (无条件开放) are open to everyone; conditional ones (有条件开放) answer
only through a grant; closed ones (不予开放) have no data API. Errors are RFC 9457
`application/problem+json` with a stable `code`.
"""


def _sees_closed(request: Request) -> bool:
    return sees_closed(principal_of(request))  # the rule is policies'; this is its dependency


def verify_brake(settings: Settings) -> VerifyBrake:
    return VerifyBrake(
        per_day=settings.verify_default_per_day,
        per_subject=settings.verify_per_subject_per_day,
        sweep_misses=settings.verify_sweep_misses,
        sweep_subjects=settings.verify_sweep_subjects,
    )


# The gateway's pipelined Redis client runs the services' scripts (a fifth of redis-py's CPU
# a call, decision 0005); what it raises when Redis does not answer.
PIPE_ERRORS = (RedisError, OSError, TimeoutError)


def redis_scripts(url: str) -> ScriptFactory:
    return lambda text: ScriptRunner(url, text)


def nonce_store(settings: Settings) -> NonceStore:
    """Where signed calls' nonces are remembered: every host (Redis) or this process."""
    if settings.redis_url:
        prefix = f"{settings.rate_limit_prefix}:nonce:"
        return RedisNonces(redis_scripts(settings.redis_url), prefix=prefix, errors=PIPE_ERRORS)
    return MemoryNonces()


def service_breaker(settings: Settings) -> Breaker:
    """Interface services' circuit breaker: shared by every worker and host through Redis
    when the installation has one, else this process's own."""
    config = BreakerConfig(
        failure_threshold=settings.service_breaker_failures,
        cool_down=settings.service_breaker_seconds,
    )
    if settings.redis_url:
        return RedisBreaker(
            redis_scripts(settings.redis_url),
            config,
            prefix=f"{settings.rate_limit_prefix}:breaker:",
            errors=PIPE_ERRORS,
        )
    return MemoryBreaker(config)


def create_app(settings: Settings | None = None, *, engine: Engine | None = None) -> FastAPI:
    settings = settings or Settings()
    engine = engine or create_engine(
        settings.sqlalchemy_url,
        pool_size=settings.db_pool_size,
        pool_timeout=settings.db_pool_timeout,
        connect_timeout=settings.db_connect_timeout,
        idle_transaction_seconds=settings.db_idle_transaction_seconds,
        busy_timeout=settings.db_busy_timeout,
    )
    hosted_catalog = HostedCatalog(
        engine, ttl=settings.catalog_cache_seconds, stale=settings.db_stale_seconds
    )
    hosted_catalog.register_kind("service", load_service)  # interface services (issue 18)
    # Every host of the installation reads the same keys from the database (contract §9).
    keys = installation_keys(settings, engine, create=True)
    security = Security.build(settings, engine, keys)
    # Signed calls (contract §12): apps' signing secrets sealed under the master key, the
    # nonces of the last 10 minutes on every host (Redis) or in this process.
    signing_secrets = SigningSecrets(engine, keys.ring.master.key)
    signed_calls = SignedCalls(signing_secrets, nonce_store(settings), settings.max_body_bytes)
    signer = keys.audit_signer
    writer = AuditWriter(
        engine,
        signer,
        checkpoint_seconds=settings.audit_checkpoint_seconds,
        observe=metrics.observe_audit,
    )
    sink: Sink = writer
    if settings.audit_sink == "null":
        log.warning("OPENGATE_AUDIT_SINK=null: nothing is audited (benchmarks only)")
        sink = NullSink()

    def scope_target(dataset_id: str) -> ScopeTarget | None:
        """The published dataset a scope names (closed ones are nobody's scope)."""
        hosted = hosted_catalog.get(dataset_id)
        if hosted is None or hosted.open_type == "closed":
            return None
        personal = any(f.subject_key for f in hosted.fields)
        fields = tuple((f.name, f.title or f.name) for f in hosted.fields)
        return ScopeTarget(hosted.title, hosted.open_type, personal, fields)

    security.oauth.scope_lookup = scope_target

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        limit_sync_threads(settings, engine)
        writer.start()
        yield
        await upstreams.close()
        metrics.worker_stopped()
        enforcer.close()  # the usage counts gathered in this worker
        writer.close()  # flush, then sign a shutdown checkpoint
        engine.dispose()

    app = FastAPI(
        title="opengate",
        version="0.1.0",
        description=DESCRIPTION,
        docs_url=None,
        redoc_url=None,
        default_response_class=JSONResponse,
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.engine = engine
    app.state.hosted_catalog = hosted_catalog
    app.state.security = security
    app.state.audit_writer = writer
    app.state.audit_signer = signer
    app.state.public_url = settings.issuer.rstrip("/")
    app.state.sees_closed = _sees_closed
    app.state.account_services = account_views.AccountServices(
        issuer=security.issuer,
        revocations=security.revocations,
        allow_registration=settings.allow_registration,
        jwks_uri_allowlist=settings.jwks_uri_prefixes,
        client_ip=client_ip,
        signing_secrets=signing_secrets,
    )
    # 纠错 messages keep a quoted level-3/4 value as the audit log keeps a filter value.
    app.state.quote_digest = partial(keyed_digest, keys.audit_digest)
    app.state.overview = OverviewCache(engine, ttl=settings.overview_cache_seconds)
    https = settings.issuer.startswith("https://")
    app.state.web_sessions = WebSessions(
        engine, secure=https, lifetime=timedelta(hours=settings.session_hours)
    )

    provider = security.identity_provider
    problems.install(app)
    # The data routes come first: routes are matched in order and these are the hot ones.
    # The one enforcement door of every data channel (policies/access.py).
    enforcer = app.state.enforcer = Enforcer(
        engine,
        hosted_catalog,
        pseudonym_master=keys.pseudonym,
        digest_key=keys.audit_digest,
        cursor_box=CursorBox(keys.cursor),
        brake=lambda: verify_brake(app.state.settings),
        export_chunk_rows=settings.export_chunk_rows,
        append_events=partial(append_event, engine),
    )
    app.include_router(data_api.build_router(enforcer, settings))
    app.include_router(analysis_api.build_router(enforcer))
    app.include_router(ckan_views.build_router(enforcer))  # CKAN Action API (contract §11)
    upstreams = app.state.upstreams = Upstreams(
        service_breaker(settings),
        UpstreamLimits(per_service=settings.service_concurrency),
    )
    app.include_router(service_views.build_router(enforcer, upstreams))
    app.include_router(service_views.router)
    app.include_router(catalog_views.router)
    app.include_router(grant_views.router)
    # auth's consent flow drawn on the portal's templates (auth imports neither).
    consent_pages = TemplateConsentPages()
    app.state.oauth_services = oauth_views.OAuthServices(
        server=security.oauth,
        keys=security.keys,
        engine=engine,
        client_ip=client_ip,
        form_token=csrf.csrf_token,
        form_refusal=csrf.refusal_of,
        pages=consent_pages,
        start_identity=provider.begin if provider is not None else None,
    )
    app.include_router(oauth_views.router)
    app.state.identity_services = identity_views.IdentityServices(
        provider=security.identity_provider,
        revocations=security.revocations,
        identity_key=security.identity_key,
        pages=consent_pages,
    )
    app.include_router(identity_views.router)
    app.include_router(admin_views.router)
    app.include_router(account_views.router)
    app.include_router(audit_views.router)
    app.state.readiness = health.ReadinessProbe(engine, redis_url=settings.redis_url)
    app.include_router(health.router)
    app.include_router(metrics.router)
    app.state.count_import = lambda dataset, rows: metrics.IMPORTED_ROWS.labels(dataset).inc(rows)
    app.include_router(participation_views.router)
    app.include_router(participation_views.admin_router)
    app.include_router(operation_views.router)
    app.include_router(operation_views.admin_router)
    docs.install(app)
    redoc.install(app)
    # The portal's pages (HTML; the security-headers middleware gives them the §10 headers).
    app.include_router(portal_pages.router)
    app.include_router(portal_cockpit.router)
    app.include_router(portal_operation.router)
    app.include_router(portal_reconciliation.router)
    app.include_router(portal_demands.router)
    # Sign-in, the developer center and 我的授权, on the web session (portal/session.py).
    app.include_router(account_pages.router)
    app.include_router(console_apps.router)
    app.include_router(console_access.router)
    app.include_router(console_fees.router)
    app.include_router(me_pages.router)
    app.include_router(console_participation.router)
    # The administrator's and the system administrator's consoles (portal/admin_*.py).
    for admin_router in admin_routers:
        app.include_router(admin_router)
    # The auditor console (/audit), auditor accounts only.
    app.include_router(audit_pages.router)
    app.include_router(audit_review.router)
    forms.install(app)
    templating.set_account_lookup(current_account)
    portal_assets.mount(app)
    openapi_document.install(app)

    def is_conditional(dataset_id: str) -> bool:
        hosted = hosted_catalog.get(dataset_id)
        return hosted is not None and hosted.open_type == "conditional"

    # The page preview counts in the same windows and stores its event in the same log.
    limits = app.state.rate_limits = RateLimits.from_settings(settings)
    app.state.audit_sink = sink
    # Which routes are data routes and which count in a strict window, from their marks:
    # the audit and the rate limiter read this one table.
    marks = app.state.route_marks = RouteMarks(app.router.routes)
    # Added last runs first: security headers, request context, audit, authentication, rate
    # limits, input limits, write intent, routes.
    app.add_middleware(WriteIntentMiddleware)
    csrf.install(app, cursor_key=keys.cursor, public_origin=settings.issuer, secure=https)
    app.add_middleware(
        InputGuardMiddleware,
        max_body_bytes=settings.max_body_bytes,
        router=app.router,
        upload_paths=frozenset({UPLOAD_PATH}),
        max_upload_bytes=settings.upload_max_bytes,
    )
    app.add_middleware(
        RateLimitMiddleware,
        limits=limits,
        client_address=ClientAddress(settings.trusted_proxies),
        is_conditional=is_conditional,
        marks=marks,
        web_account=account_key,
    )
    app.add_middleware(
        AuthenticationMiddleware, authenticator=security.authenticator, signed=signed_calls
    )
    app.add_middleware(
        AuditMiddleware,
        sink=sink,
        client_address=ClientAddress(settings.trusted_proxies),
        marks=marks,
    )
    app.add_middleware(
        RequestContextMiddleware,
        metrics=metrics.RequestMetrics(lambda: getattr(app.state, "route_marks", None))
        if settings.metrics_enabled
        else None,
        json_lines=settings.log_format == "json",
    )
    app.add_middleware(SecurityHeadersMiddleware, https=https)
    return app
