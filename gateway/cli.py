"""The `opengate` command line (contract §1)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, OperationalError, ProgrammingError

from auth.secrets import identity_hmac, load_or_create_key
from catalog.importer import ImportResult, import_package
from catalog.package import PackageError
from gateway.audit_cli import audit_app, record_cli_event
from gateway.database import create_engine
from gateway.logging_config import LOG_CONFIG
from gateway.settings import Settings

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
    except (UserError, PackageError) as exc:
        fail(str(exc))
        raise typer.Exit(1) from None
    except ArgumentError:
        fail("OPENGATE_DATABASE_URL is not a database URL (e.g. sqlite:///./var/opengate.db)")
        raise typer.Exit(1) from None
    except OperationalError as exc:
        where = (
            make_url(settings.sqlalchemy_url).render_as_string(hide_password=True)
            if settings
            else "the database"
        )
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else "connection failed"
        fail(f"cannot use the database {where}: {reason}")
        raise typer.Exit(1) from None


def _settings() -> Settings:
    return Settings()


@app.command()
def migrate() -> None:
    """Create or upgrade the schema (Alembic upgrade head)."""
    from gateway.migrate import upgrade

    settings = _settings()
    with user_errors(settings):
        upgrade(create_engine(settings.sqlalchemy_url))
    out.print("schema is up to date")


def _require_schema(settings: Settings) -> None:
    from gateway.migrate import is_current

    with user_errors(settings):
        if not is_current(create_engine(settings.sqlalchemy_url)):
            raise UserError("the schema is missing or old; run `opengate migrate` first")


def _check_identity_provider(settings: Settings) -> None:
    """A misconfigured OPENGATE_IDENTITY_* is one line here, not a traceback per worker."""
    from gateway.security import identity_provider

    try:
        identity_provider(settings, create_engine(settings.sqlalchemy_url))
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

    from auth.keys import KeyRing

    settings = _settings()
    _require_schema(settings)
    _check_identity_provider(settings)
    KeyRing(settings.data_dir / "keys")  # created here once, before the workers race for it
    uvicorn.run(
        "gateway.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_config=LOG_CONFIG,
        proxy_headers=False,  # client IPs come from OPENGATE_TRUSTED_PROXIES only
        access_log=False,  # ours (gateway.middleware) logs parameter names, never values
        server_header=False,
    )


def _import(path: Path, *, replace: bool, skip_unchanged: bool, settings: Settings) -> ImportResult:
    engine = create_engine(settings.sqlalchemy_url)
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
        key = load_or_create_key(settings.data_dir / "identity.key")
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
        err.print(f"warning: {warning}", markup=False)
    out.print(
        f"imported {result.dataset_id} version {result.version}: {result.row_count:,} rows "
        f"in {result.seconds:.2f} s ({result.rows_per_second:,.0f} rows/s)"
    )


@app.command()
def demo(
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port to listen on")] = 8000,
    serve_after: Annotated[
        bool, typer.Option("--serve/--no-serve", help="serve after loading")
    ] = True,
) -> None:
    """Migrate, load the Qingdao demo catalog, accounts and app (idempotent), then serve."""
    from gateway.demo_accounts import ACCOUNTS, DEMO_PASSWORD, ensure_demo_accounts
    from gateway.demo_catalog import write_demo_packages
    from gateway.migrate import upgrade

    settings = _settings()
    with user_errors(settings):
        upgrade(create_engine(settings.sqlalchemy_url))
        target = settings.data_dir / "demo"
        for package in write_demo_packages(target):
            result = _import(package, replace=True, skip_unchanged=True, settings=settings)
            state = "unchanged" if result.unchanged else f"{result.row_count:,} rows imported"
            out.print(f"  {result.dataset_id:<22} v{result.version}  {state}")
        credentials = ensure_demo_accounts(
            create_engine(settings.sqlalchemy_url), settings.data_dir
        )
    base = f"http://{host}:{port}"
    accounts = ", ".join(f"{name} ({role})" for name, role, _ in ACCOUNTS)
    out.print(
        f"\nopengate demo is ready at {base}\n"
        f"  API docs:  {base}/docs\n"
        f"  catalog:   {base}/api/v1/datasets?q=空气\n"
        f"  records:   {base}/api/v1/datasets/air-quality-hourly/records?limit=5\n"
        f"  sign in:   POST {base}/auth/login with one of {accounts}, "
        f"password {DEMO_PASSWORD!r}\n"
        f"  demo app:  client_id {credentials['client_id']} "
        f"client_secret {credentials['client_secret']} (POST {base}/oauth/token)\n"
    )
    if serve_after:
        serve(host=host, port=port, workers=1)


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
    with user_errors(settings), Session(create_engine(settings.sqlalchemy_url)) as session:
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
) -> None:
    """Print a bearer token for the user (host-side automation)."""
    from sqlmodel import Session

    from auth.keys import KeyRing
    from auth.tokens import TokenIssuer
    from auth.users import get_user
    from auth.views import issue_user_token

    settings = _settings()
    _require_schema(settings)
    with user_errors(settings), Session(create_engine(settings.sqlalchemy_url)) as session:
        user = get_user(session, username=username)
        if user is None or not user.is_active:
            raise UserError(f"no active user {username!r}")
        issuer = TokenIssuer(KeyRing(settings.data_dir / "keys"), settings.issuer)
        token, _ = issue_user_token(issuer, user, ttl)
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

    engine = create_engine(settings.sqlalchemy_url)
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
    from auth.secrets import load_or_create_key
    from catalog.problems import Problem

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
            identity = identity_of(load_or_create_key(settings.data_dir / "identity.key"), number)
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


@apps_app.command("disable")
def apps_disable(client_id: Annotated[str, typer.Argument(help="the app's client_id")]) -> None:
    """Disable an app: its tokens stop on the next request on every host."""
    from auth.apps import disable_app
    from auth.models import App

    settings = _settings()
    _require_schema(settings)
    with user_errors(settings), _account_change(settings) as (db, revocations):
        app = db.get(App, client_id)
        if app is None:
            raise UserError(f"no app {client_id!r}")
        disable_app(db, app=app, revocations=revocations)
        record_cli_event(db.get_bind(), "app.disable", resource=f"apps/{client_id}")
    out.print(f"disabled app {client_id}")


@apps_app.command("enable")
def apps_enable(client_id: Annotated[str, typer.Argument(help="the app's client_id")]) -> None:
    """Enable a disabled app again: its secret works, tokens issued before stay ended."""
    from auth.apps import enable_app
    from auth.models import App

    settings = _settings()
    _require_schema(settings)
    with user_errors(settings), _account_change(settings) as (db, revocations):
        app = db.get(App, client_id)
        if app is None:
            raise UserError(f"no app {client_id!r}")
        enable_app(db, app=app, revocations=revocations)
        record_cli_event(db.get_bind(), "app.enable", resource=f"apps/{client_id}")
    out.print(f"enabled app {client_id}")


@apps_app.command("create")
def apps_create(
    owner: Annotated[str, typer.Option(help="the developer who owns the app")],
    name: Annotated[str, typer.Option(help="the app's name")],
    as_json: Annotated[
        bool, typer.Option("--json", help="print only the credentials as JSON")
    ] = False,
) -> None:
    """Register an OAuth client for a developer."""
    import json

    from sqlmodel import Session

    from auth.apps import create_app
    from auth.users import get_user
    from catalog.problems import Problem

    settings = _settings()
    _require_schema(settings)
    with user_errors(settings), Session(create_engine(settings.sqlalchemy_url)) as session:
        user = get_user(session, username=owner)
        if user is None:
            raise UserError(f"no user {owner!r}")
        try:
            registered, secret = create_app(session, owner=user, name=name)
        except Problem as problem:
            raise UserError(problem.detail) from None
        record_cli_event(
            session.get_bind(),  # type: ignore[arg-type]
            "app.create",
            resource=f"apps/{registered.client_id}",
            detail={"owner": owner},
        )
    credentials = {"client_id": registered.client_id, "client_secret": secret}
    if as_json:
        print(json.dumps(credentials))
    else:
        out.print(f"client_id:     {registered.client_id}\nclient_secret: {secret}  (shown once)")


@keys_app.command("rotate")
def keys_rotate() -> None:
    """Add a new signing key; the old one stays in the JWKS until its tokens expire."""
    from auth.keys import KeyRing

    settings = _settings()
    kid = KeyRing(settings.data_dir / "keys").rotate()
    with user_errors(settings):
        record_cli_event(
            create_engine(settings.sqlalchemy_url),
            "keys.rotate",
            resource="keys",
            detail={"kid": kid},
        )
    out.print(f"new signing key {kid}")


def main() -> None:
    try:
        app()
    except ProgrammingError as exc:  # e.g. a table that is not there: schema not migrated
        fail(f"database error: {str(exc.orig).splitlines()[0]}")
        sys.exit(1)


if __name__ == "__main__":
    main()
