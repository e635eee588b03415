"""The `opengate` command line (contract §1)."""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn
from sqlalchemy.exc import ArgumentError, OperationalError, SQLAlchemyError

from auth.secrets import identity_hmac
from catalog.importer import ImportResult, import_package
from catalog.package import PackageError
from gateway.audit_cli import audit_app, record_cli_event
from gateway.installation import (
    InstallationError,
    announce,
    load_settings,
    one_line,
    open_installation,
)
from gateway.installation import engine as installation_engine
from gateway.keys import InstallationKeys, installation_keys, open_ring
from gateway.logging_config import log_config
from gateway.operation_cli import operation_app
from gateway.settings import Settings
from keystore.errors import KeyRingError

app = typer.Typer(
    help="opengate — 公共数据开放与授权运营网关",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
datasets_app = typer.Typer(help="Dataset packages.", no_args_is_help=True)
users_app = typer.Typer(help="People and their roles.", no_args_is_help=True)
apps_app = typer.Typer(help="Developer apps (OAuth clients).", no_args_is_help=True)
keys_app = typer.Typer(help="Token signing keys.", no_args_is_help=True)
app.add_typer(datasets_app, name="datasets")
app.add_typer(users_app, name="users")
app.add_typer(apps_app, name="apps")
app.add_typer(keys_app, name="keys")
app.add_typer(audit_app, name="audit")
app.add_typer(operation_app, name="operation")
services_app = typer.Typer(help="Interface services (接口服务).", no_args_is_help=True)
app.add_typer(services_app, name="services")

err = Console(stderr=True, highlight=False, soft_wrap=True)
out = Console(highlight=False, soft_wrap=True)


def fail(reason: str) -> None:
    """One line on stderr, never wrapped, whatever the terminal width."""
    print(f"opengate: {reason}", file=sys.stderr)


class UserError(Exception):
    """A mistake the user can fix: printed as one line, exit status 1."""


@contextmanager
def user_errors(settings: Settings | None = None) -> Iterator[None]:
    try:
        yield
    except (UserError, PackageError, KeyRingError) as exc:
        fail(str(exc))
        raise typer.Exit(1) from None
    except ArgumentError:
        fail("OPENGATE_DATABASE_URL is not a database URL (e.g. sqlite:///./var/opengate.db)")
        raise typer.Exit(1) from None
    except OperationalError as exc:
        where = settings.installation() if settings else "database"
        fail(f"cannot use the {where}: {one_line(exc)}")
        raise typer.Exit(1) from None


def _settings() -> Settings:
    return load_settings()


@app.command()
def migrate() -> None:
    """Create or upgrade the schema (Alembic upgrade head)."""
    from gateway.migrate import upgrade

    settings = _settings()
    engine = open_installation(settings, create=True)
    with user_errors(settings):
        upgrade(engine)
        open_ring(settings, engine, create=True)  # the key ring, once per installation
    out.print("schema is up to date")


def _keys(settings: Settings) -> InstallationKeys:
    """The ring's keys for a command that may only read them (never creates a key)."""
    return installation_keys(settings, installation_engine(settings), create=False)


def _require_schema(settings: Settings) -> None:
    """The installation exists, answers and is migrated (else one line, exit 1)."""
    open_installation(settings).dispose()


def _check_identity_provider(settings: Settings) -> None:
    """A misconfigured OPENGATE_IDENTITY_* is one line here, not a traceback per worker."""
    from gateway.security import identity_provider

    try:
        identity_provider(settings, installation_engine(settings))
    except ValueError as exc:
        fail(str(exc))
        raise typer.Exit(1) from None


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port to listen on")] = 8000,
    workers: Annotated[int, typer.Option(min=1, max=64, help="worker processes")] = 1,
) -> None:
    """Run the gateway."""
    import uvicorn

    settings = _settings()
    _require_schema(settings)
    _check_identity_provider(settings)
    with user_errors(settings):  # made or refused here once, before the workers start
        open_ring(settings, installation_engine(settings), create=True)
    # The workers read their settings again: hand them the issuer of this address.
    issuer = settings.issuer_for(host, port)
    if "issuer" not in settings.model_fields_set:
        os.environ["OPENGATE_ISSUER"] = issuer
        err.print(f"issuer {issuer} (from --host/--port; set OPENGATE_ISSUER to choose another)")
    announce()  # after every refusal (each stays one line), before the server's own log
    if workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        # /metrics adds up every worker's figures, written here (gateway/metrics.py).
        figures = settings.data_dir / "metrics"
        shutil.rmtree(figures, ignore_errors=True)
        figures.mkdir(parents=True)
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(figures)
    uvicorn.run(
        "gateway.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_config=log_config(settings.log_format),
        proxy_headers=False,  # client IPs come from OPENGATE_TRUSTED_PROXIES only
        access_log=False,  # ours (gateway.middleware) logs parameter names, never values
        server_header=False,
    )


def _import(path: Path, *, replace: bool, skip_unchanged: bool, settings: Settings) -> ImportResult:
    engine = installation_engine(settings)
    progress_bar: Progress | None = None
    task = None
    data_size = sum(p.stat().st_size for p in path.glob("*.csv")) if path.is_dir() else 0
    if err.is_terminal and data_size > 8 << 20:
        progress_bar = Progress(
            "[progress.description]{task.description}",
            BarColumn(),
            DownloadColumn(),
            TimeRemainingColumn(),
            console=err,
            transient=True,
        )
        progress_bar.start()
        task = progress_bar.add_task(f"importing {path.name}", total=data_size)

    def progress(done: int, total: int) -> None:
        if progress_bar is not None and task is not None:
            progress_bar.update(task, completed=done, total=total)

    try:
        key = _keys(settings).identity
        result = import_package(
            engine,
            path,
            replace=replace,
            skip_unchanged=skip_unchanged,
            progress=progress,
            subject_hmac=partial(identity_hmac, key),
        )
        record_cli_event(
            engine,
            "dataset.import",
            resource=f"datasets/{result.dataset_id}",
            row_count=result.row_count,
            detail={
                "version": result.version,
                "replace": replace,
                **({"warnings": list(result.warnings)} if result.warnings else {}),
            },
        )
        return result
    finally:
        if progress_bar is not None:
            progress_bar.stop()
        engine.dispose()


@datasets_app.command("import")
def datasets_import(
    path: Annotated[Path, typer.Argument(help="package folder (or its datapackage.json)")],
    replace: Annotated[bool, typer.Option("--replace", help="publish a new version")] = False,
) -> None:
    """Import a dataset package (all or nothing)."""
    settings = _settings()
    _require_schema(settings)
    with user_errors(settings):
        result = _import(path, replace=replace, skip_unchanged=False, settings=settings)
    for warning in result.warnings:
        err.print(f"注意：{warning}", markup=False)
    out.print(
        f"imported {result.dataset_id} version {result.version}: {result.row_count:,} rows "
        f"in {result.seconds:.2f} s ({result.rows_per_second:,.0f} rows/s)"
    )


@services_app.command("import")
def services_import(
    path: Annotated[Path, typer.Argument(help="service folder (or its service.json)")],
    replace: Annotated[bool, typer.Option("--replace", help="publish a new version")] = False,
) -> None:
    """Publish an interface service from its service.json (all or nothing)."""
    from services.registry import import_service

    settings = _settings()
    _require_schema(settings)
    engine = installation_engine(settings)
    with user_errors(settings):
        result = import_service(engine, path, replace=replace)
    if result.unchanged:
        out.print(f"{result.service_id} version {result.version} unchanged")
        return
    record_cli_event(
        engine,
        "service.import",
        resource=f"services/{result.service_id}",
        detail={"version": result.version, "replace": replace},
    )
    out.print(
        f"imported service {result.service_id} version {result.version}: "
        f"{result.parameters} parameters, {result.paths} response paths"
    )


@app.command()
def demo(
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port to listen on")] = 8000,
    serve_after: Annotated[
        bool, typer.Option("--serve/--no-serve", help="serve after loading")
    ] = True,
    upstream_port: Annotated[
        int, typer.Option(help="loopback port of the demo's department APIs")
    ] = 8701,
) -> None:
    """Migrate, load the Qingdao demo catalog, accounts, apps and interface services
    (idempotent), then serve (with the two department APIs on loopback)."""
    from gateway.demo_accounts import ACCOUNTS, DEMO_PASSWORD, demo_app, ensure_demo_accounts
    from gateway.demo_catalog import write_demo_packages
    from gateway.demo_operation import WELFARE_APP, ensure_demo_operation
    from gateway.demo_services import ensure_demo_services
    from gateway.demo_upstreams import DemoUpstreams
    from gateway.demo_usage import ensure_demo_usage
    from gateway.migrate import upgrade

    settings = _settings()
    engine = open_installation(settings, create=True)
    with user_errors(settings):
        upgrade(engine)
        open_ring(settings, engine, create=True)
        announce()  # after a refusal could have come (it stays one line)
        target = settings.data_dir / "demo"
        for package in write_demo_packages(target):
            result = _import(package, replace=True, skip_unchanged=True, settings=settings)
            state = "unchanged" if result.unchanged else f"{result.row_count:,} rows imported"
            out.print(f"  {result.dataset_id:<22} v{result.version}  {state}")
        credentials = ensure_demo_accounts(
            installation_engine(settings), settings.data_dir, _keys(settings).identity
        )
        welfare = demo_app(
            installation_engine(settings),
            settings.data_dir / "demo-welfare-app.json",
            name=WELFARE_APP,
            purpose="困难群众救助资格核验（演示）",
        )
        ensure_demo_operation(
            installation_engine(settings), credentials["client_id"], welfare["client_id"]
        )
        upstream_url = f"http://127.0.0.1:{upstream_port}"
        for service in ensure_demo_services(
            installation_engine(settings),
            target / "services",
            upstream_url,
            credentials["client_id"],
        ):
            state = "unchanged" if service.unchanged else f"{service.paths} response paths"
            out.print(f"  {service.service_id:<22} v{service.version}  {state} (service)")
        calls = ensure_demo_usage(settings, credentials, welfare)
        if calls:
            out.print(f"  metered:   {calls} calls by the two demo apps this month")
    base = f"http://{host}:{port}"
    accounts = ", ".join(f"{name} ({role})" for name, role, _ in ACCOUNTS)
    out.print(
        f"\nopengate demo is ready at {base}\n"
        f"  API docs:  {base}/docs\n"
        f"  catalog:   {base}/api/v1/datasets?q=空气\n"
        f"  records:   {base}/api/v1/datasets/air-quality-hourly/records?limit=5\n"
        f"  operation: {base}/zones, {base}/products (信贷风险评估, metered per 1000 rows)\n"
        f"  services:  {base}/api/v1/services (department APIs on {upstream_url})\n"
        f"  accounts:  {accounts}, password {DEMO_PASSWORD!r}\n"
        f"  sign in:   curl -s {base}/auth/login -H 'content-type: application/json' "
        f'-d \'{{"username":"bank-dev","password":"{DEMO_PASSWORD}"}}\'\n'
        f"  demo app:  client_id {credentials['client_id']} "
        f"client_secret {credentials['client_secret']} (POST {base}/oauth/token)\n"
    )
    if serve_after:
        upstreams = DemoUpstreams(port=upstream_port).start()
        try:
            serve(host=host, port=port, workers=1)
        finally:
            upstreams.stop()


@users_app.command("create")
def users_create(
    username: Annotated[str, typer.Argument(help="login name")],
    role: Annotated[str, typer.Option(help="developer | data_admin | auditor | sysadmin")],
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="read the password from standard input")
    ] = False,
    email: Annotated[str, typer.Option(help="e-mail address")] = "",
) -> None:
    """Create a user. Without --password-stdin a random password is printed once."""
    from sqlmodel import Session

    from auth.secrets import new_token
    from auth.users import UserError as AccountError
    from auth.users import create_user

    settings = _settings()
    _require_schema(settings)
    generated = not password_stdin
    password = new_token(12) if generated else sys.stdin.readline().rstrip("\n")
    with user_errors(settings), Session(installation_engine(settings)) as session:
        try:
            user = create_user(
                session, username=username, password=password, role=role, email=email
            )
        except AccountError as exc:
            raise UserError(str(exc)) from None
        record_cli_event(
            session.get_bind(),  # type: ignore[arg-type]
            "user.create",
            resource=f"users/{user.id}",
            detail={"username": user.username, "role": user.role},
        )
    out.print(f"created {user.role} {user.username} (id {user.id})")
    if generated:
        out.print(f"password: {password}")


@users_app.command("token")
def users_token(
    username: Annotated[str, typer.Argument(help="login name")],
    ttl: Annotated[int, typer.Option(min=60, max=86400, help="lifetime in seconds")] = 600,
    issuer: Annotated[
        str | None,
        typer.Option(
            help="issuer of the gateway that will read the token, e.g. http://127.0.0.1:18100 "
            "for `serve --port 18100` (default: OPENGATE_ISSUER)"
        ),
    ] = None,
) -> None:
    """Print a bearer token for the user (host-side automation)."""
    from sqlmodel import Session

    from auth.tokens import TokenIssuer
    from auth.users import get_user
    from auth.views import issue_user_token

    settings = _settings()
    _require_schema(settings)
    with user_errors(settings), Session(installation_engine(settings)) as session:
        if issuer is not None and not issuer.startswith(("http://", "https://")):
            raise UserError(f"--issuer must be an http(s) URL, not {issuer!r}")
        signer = TokenIssuer(_keys(settings).tokens, (issuer or settings.issuer).rstrip("/"))
        user = get_user(session, username=username)
        if user is None or not user.is_active:
            raise UserError(f"no active user {username!r}")
        token, _ = issue_user_token(signer, user, ttl)
        record_cli_event(
            session.get_bind(),  # type: ignore[arg-type]
            "token.issue",
            resource=f"users/{user.id}",
            detail={"ttl": ttl},
        )
    print(token)


@contextmanager
def _account_change(settings: Settings) -> Iterator[tuple[Any, Any]]:
    """A session and the revocation mirror (with Redis when configured, so a change
    reaches every host at once)."""
    from sqlmodel import Session

    from auth.revocations import Revocations

    engine = installation_engine(settings)
    with Session(engine) as session:
        yield session, Revocations(engine, redis_url=settings.redis_url)


def _user(session: Any, username: str) -> Any:
    from auth.users import get_user

    user = get_user(session, username=username)
    if user is None:
        raise UserError(f"no user {username!r}")
    return user


@users_app.command("disable")
def users_disable(username: Annotated[str, typer.Argument(help="login name")]) -> None:
    """Disable an account: its tokens stop on the next request on every host."""
    from auth.users import disable_user

    settings = _settings()
    _require_schema(settings)
    with user_errors(settings), _account_change(settings) as (db, revocations):
        user = disable_user(db, user=_user(db, username), revocations=revocations)
        record_cli_event(db.get_bind(), "user.disable", resource=f"users/{user.id}")
    out.print(f"disabled {user.username}")


@users_app.command("enable")
def users_enable(username: Annotated[str, typer.Argument(help="login name")]) -> None:
    """Enable a disabled account again (tokens issued before stay ended)."""
    from auth.users import enable_user

    settings = _settings()
    _require_schema(settings)
    with user_errors(settings), _account_change(settings) as (db, revocations):
        user = enable_user(db, user=_user(db, username), revocations=revocations)
        record_cli_event(db.get_bind(), "user.enable", resource=f"users/{user.id}")
    out.print(f"enabled {user.username}")


@users_app.command("set-role")
def users_set_role(
    username: Annotated[str, typer.Argument(help="login name")],
    role: Annotated[str, typer.Argument(help="developer | data_admin | auditor | sysadmin")],
) -> None:
    """Change an account's role: tokens issued with the old role stop at once."""
    from auth.users import UserError as AccountError
    from auth.users import set_role

    settings = _settings()
    _require_schema(settings)
    with user_errors(settings), _account_change(settings) as (db, revocations):
        user = _user(db, username)
        before = user.role
        try:
            user = set_role(db, user=user, role=role, revocations=revocations)
        except AccountError as exc:
            raise UserError(str(exc)) from None
        record_cli_event(
            db.get_bind(),
            "user.set_role",
            resource=f"users/{user.id}",
            detail={"from": before, "to": user.role},
        )
    out.print(f"{user.username} is now {user.role}")


@users_app.command("verify-identity")
def users_verify_identity(
    username: Annotated[str, typer.Argument(help="login name of the person")],
    id_number_stdin: Annotated[
        bool,
        typer.Option("--id-number-stdin", help="read the identity number from standard input"),
    ] = False,
    replace: Annotated[
        bool, typer.Option("--replace", help="replace another identity already on the account")
    ] = False,
    evidence: Annotated[
        str, typer.Option(help="what was checked, e.g. 居民身份证原件 (audited)")
    ] = "",
) -> None:
    """Record an operator's verification of the person's identity number (实名核验)."""
    import getpass

    from auth.identity import IdentityRefused, identity_of, link_identity
    from kernel.problems import Problem

    if not id_number_stdin:
        raise_user_error("the identity number is read from standard input: --id-number-stdin")
    settings = _settings()
    _require_schema(settings)
    number = sys.stdin.readline().strip()
    proof = f"operator:{getpass.getuser()}"
    with user_errors(settings), _account_change(settings) as (db, revocations):
        user = _user(db, username)
        engine = db.get_bind()
        refused: dict[str, Any] = {"proof": proof, "evidence": evidence[:200]}
        try:
            if not user.is_active or user.role != "developer":
                refused["refused"] = "account"
                raise UserError(f"{username} is not an active developer (person) account")
            identity = identity_of(_keys(settings).identity, number)
            refused["identity"] = identity
            outcome = link_identity(
                db,
                user=user,
                identity=identity,
                proof=proof,
                revocations=revocations,
                replace=replace,
            )
        except IdentityRefused as exc:
            refused.update(exc.audit_detail)
            _refused_event(engine, user.id, refused)
            raise UserError(exc.detail) from None
        except Problem as problem:  # the number fails its check
            refused["refused"] = "invalid_id_number"
            _refused_event(engine, user.id, refused)
            raise UserError(problem.detail) from None
        except UserError:
            _refused_event(engine, user.id, refused)
            raise
        record_cli_event(
            engine,
            "user.identity_verify",
            resource=f"users/{user.id}",
            detail={**outcome.audit_detail(), "evidence": evidence[:200]},
        )
    state = "verified" if outcome.changed else "already verified"
    ended = f"; {outcome.consents_ended} consent(s) ended" if outcome.relinked else ""
    out.print(f"{username}: identity {state} ({proof}){ended}")


def _refused_event(engine: Any, user_id: int, detail: dict[str, Any]) -> None:
    record_cli_event(
        engine, "user.identity_verify", resource=f"users/{user_id}", outcome="denied", detail=detail
    )


def raise_user_error(reason: str) -> None:
    fail(reason)
    raise typer.Exit(1)


def _change_app(client_id: str, enabled: bool) -> None:
    """Disable or enable an app (audited, every host's state mirror told)."""
    from auth.apps import disable_app, enable_app
    from auth.models import App

    settings = _settings()
    _require_schema(settings)
    verb = "enable" if enabled else "disable"
    with user_errors(settings), _account_change(settings) as (db, revocations):
        app = db.get(App, client_id)
        if app is None:
            raise UserError(f"no app {client_id!r}")
        (enable_app if enabled else disable_app)(db, app=app, revocations=revocations)
        record_cli_event(db.get_bind(), f"app.{verb}", resource=f"apps/{client_id}")
    out.print(f"{verb}d app {client_id}")


@apps_app.command("disable")
def apps_disable(client_id: Annotated[str, typer.Argument(help="the app's client_id")]) -> None:
    """Disable an app: its tokens stop on the next request on every host."""
    _change_app(client_id, enabled=False)


@apps_app.command("enable")
def apps_enable(client_id: Annotated[str, typer.Argument(help="the app's client_id")]) -> None:
    """Enable a disabled app again: its secret works, tokens issued before stay ended."""
    _change_app(client_id, enabled=True)


@apps_app.command("signing-secret")
def apps_signing_secret(
    client_id: Annotated[str, typer.Argument(help="the app's client_id")],
) -> None:
    """Make the app's signing secret for signed calls (shown once; the old one stops)."""
    from sqlmodel import Session

    from auth.signing_secrets import SigningSecrets
    from kernel.problems import Problem

    settings = _settings()
    _require_schema(settings)
    engine = installation_engine(settings)
    with user_errors(settings), Session(engine) as session:
        store = SigningSecrets(engine, _keys(settings).ring.master.key)
        try:
            kid, secret = store.create(session, client_id)
        except Problem as problem:
            raise UserError(problem.detail) from None
        record_cli_event(
            engine, "app.signing_secret", resource=f"apps/{client_id}", detail={"kid": kid}
        )
    out.print(f"client_id:      {client_id}\nsigning_secret: {secret}  (shown once, key {kid})")


@apps_app.command("create")
def apps_create(
    owner: Annotated[str, typer.Option(help="the developer who owns the app")],
    name: Annotated[str, typer.Option(help="the app's name")],
    as_json: Annotated[
        bool, typer.Option("--json", help="print only the credentials as JSON")
    ] = False,
    public: Annotated[
        bool,
        typer.Option(
            "--public", help="a public client (mobile app): no secret, PKCE S256, needs a redirect"
        ),
    ] = False,
    redirect_uri: Annotated[
        list[str] | None,
        typer.Option("--redirect-uri", help="an exact redirect URI (repeatable)"),
    ] = None,
) -> None:
    """Register an OAuth client for a developer."""
    import json

    from sqlmodel import Session

    from auth.apps import create_app
    from auth.users import get_user
    from kernel.problems import Problem

    settings = _settings()
    _require_schema(settings)
    with user_errors(settings), Session(installation_engine(settings)) as session:
        user = get_user(session, username=owner)
        if user is None:
            raise UserError(f"no user {owner!r}")
        try:
            registered, secret = create_app(
                session, owner=user, name=name, redirect_uris=redirect_uri or [], public=public
            )
        except Problem as problem:
            raise UserError(problem.detail) from None
        record_cli_event(
            session.get_bind(),  # type: ignore[arg-type]
            "app.create",
            resource=f"apps/{registered.client_id}",
            detail={
                "owner": owner,
                "client_id": registered.client_id,
                "client_type": "public" if public else "confidential",
            },
        )
    credentials = {"client_id": registered.client_id, "client_secret": secret}
    if as_json:
        print(json.dumps(credentials))
    elif secret is None:
        out.print(f"client_id:     {registered.client_id}  (public client: no secret, use PKCE)")
    else:
        out.print(f"client_id:     {registered.client_id}\nclient_secret: {secret}  (shown once)")


@keys_app.command("rotate")
def keys_rotate(
    audit: Annotated[
        bool, typer.Option("--audit", help="rotate the audit signing key instead")
    ] = False,
) -> None:
    """Add a new signing key; the old one stays in the JWKS until its tokens expire (with
    --audit: the old audit key still verifies the checkpoints it signed)."""
    from sqlmodel import Session

    from keystore.ring import AUDIT_SIGNING

    settings = _settings()
    _require_schema(settings)
    with user_errors(settings):
        keys = _keys(settings)
        if audit:
            with Session(installation_engine(settings)) as session:
                kid = keys.ring.rotate(session, AUDIT_SIGNING).kid
        else:
            kid = keys.tokens.rotate()
        record_cli_event(
            installation_engine(settings),
            "keys.rotate",
            resource="keys",
            detail={"kid": kid, "purpose": AUDIT_SIGNING if audit else "token-signing"},
        )
    out.print(f"new {'audit ' if audit else ''}signing key {kid}")


def main() -> None:
    """Every failure is one line and a non-zero exit, never a traceback (contract §1)."""
    sys.exit(_run())


def _run() -> int:
    try:
        code = app(standalone_mode=False, prog_name="opengate")
    except typer.Abort:
        fail("aborted")
        return 130
    except typer.TyperException as exc:  # usage: typer's vendored click errors
        return _usage_error(exc)
    except InstallationError as exc:
        fail(str(exc))
        return 1
    except SQLAlchemyError as exc:
        fail(f"database error: {one_line(exc)}")
        return 1
    except OSError as exc:
        where = f" {exc.filename}" if exc.filename else ""
        fail(f"cannot use{where}: {exc.strerror or exc}")
        return 1
    except Exception as exc:  # a bug: still one line, the traceback only on request
        if os.environ.get("OPENGATE_TRACEBACK"):
            raise
        first = (str(exc).strip().splitlines() or [""])[0][:200]
        fail(f"internal error ({type(exc).__name__}: {first}); OPENGATE_TRACEBACK=1 shows where")
        return 2
    code = code if isinstance(code, int) else 0
    if code == 0:
        announce()
    return code


def _usage_error(exc: Exception) -> int:
    """A mistake on the command line: one line naming the command, instead of the usage
    text and a framed message (the help itself, asked for by giving no command, stays)."""
    exit_code = int(getattr(exc, "exit_code", 2))
    if type(exc).__name__ == "NoArgsIsHelpError":  # the help was printed already
        return exit_code
    context = getattr(exc, "ctx", None)
    command = context.command_path if context is not None else "opengate"
    message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
    name = command.removeprefix("opengate").strip()
    fail(f"{name + ': ' if name else ''}{' '.join(message.split())} (see `{command} --help`)")
    return exit_code


if __name__ == "__main__":
    main()
