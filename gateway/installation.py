"""Which installation a command of the CLI works on (contract §1 and §9).

The installation is what `OPENGATE_DATABASE_URL` and `OPENGATE_DATA_DIR` name (environment,
then `.env`), never the current folder by accident: a command that reads or changes an
installation refuses, in one line, a database that is not there (a missing SQLite file is
not created), unreachable, or not migrated; only `migrate`, `serve` and `demo` may create
one. When the installation is not the default `./var`, the command says on stderr which
one it used — once it has succeeded, so that a refusal stays a single line.
"""

from __future__ import annotations

import os
import sys

from pydantic import ValidationError
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, SQLAlchemyError

from gateway.database import create_engine
from gateway.settings import Settings

BACKENDS = ("sqlite", "postgresql")
_pending: list[str] = []


class InstallationError(Exception):
    """The installation cannot be used: one line for the user, exit status 1."""


def load_settings() -> Settings:
    """Settings, with a bad `OPENGATE_*` value as one line naming the variable."""
    try:
        return Settings()
    except ValidationError as exc:
        first = exc.errors()[0]
        name = "OPENGATE_" + "_".join(str(part) for part in first["loc"]).upper()
        raise InstallationError(f"{name}: {first['msg']}") from None


def _source(settings: Settings) -> str:
    given = sorted(
        f"OPENGATE_{field.upper()}"
        for field in {"database_url", "data_dir"} & settings.model_fields_set
    )
    where = "environment" if all(name in os.environ for name in given) else ".env"
    return f"{', '.join(given)} from the {where}"


def describe(settings: Settings) -> str:
    try:
        return settings.installation()
    except ArgumentError:
        raise InstallationError(
            "OPENGATE_DATABASE_URL is not a database URL "
            "(e.g. sqlite:///./var/opengate.db or postgresql://user@host/db)"
        ) from None


def one_line(exc: SQLAlchemyError) -> str:
    """The first line of a driver's message (psycopg's run over several)."""
    message = str(exc.orig if isinstance(exc, DBAPIError) and exc.orig else exc)
    lines = [line.strip() for line in message.strip().splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__


def engine(settings: Settings) -> Engine:
    """The command's engine; an unreachable PostgreSQL server is given up on after
    `OPENGATE_DB_CONNECT_TIMEOUT` seconds rather than the driver's default."""
    return create_engine(settings.sqlalchemy_url, connect_timeout=settings.db_connect_timeout)


def open_installation(settings: Settings, *, create: bool = False) -> Engine:
    """The engine of the installation, checked: the URL parses and names a database the
    gateway speaks, the database exists (unless `create`), is reachable and — unless
    `create` — carries the current schema."""
    where = describe(settings)
    backend = make_url(settings.sqlalchemy_url).get_backend_name()
    if backend not in BACKENDS:
        raise InstallationError(
            f"OPENGATE_DATABASE_URL: unsupported database {backend!r} (sqlite or postgresql)"
        )
    path = settings.sqlite_path
    if backend == "sqlite" and path is None:
        raise InstallationError("OPENGATE_DATABASE_URL: an in-memory database holds no data")
    if path is not None and not create and not path.is_file():
        hint = (
            "run in the installation's folder or set OPENGATE_DATABASE_URL"
            if settings.installation_is_default
            else "check OPENGATE_DATABASE_URL"
        )
        raise InstallationError(
            f"no installation at {path}: the database file does not exist; {hint} "
            "(`opengate migrate` would start a new, empty one there)"
        )
    result = engine(settings)
    from gateway.migrate import is_current

    try:
        current = is_current(result)  # connects: an unreachable server is one line here
    except SQLAlchemyError as exc:
        result.dispose()
        raise InstallationError(f"cannot use the {where}: {one_line(exc)}") from None
    if not create and not current:
        result.dispose()
        raise InstallationError(
            f"the schema of the {where} is missing or old; run `opengate migrate` first"
        )
    if not settings.installation_is_default:
        _pending[:] = [f"opengate: installation: {where} ({_source(settings)})"]
    return result


def announce() -> None:
    """Say which installation was used (stderr, once); nothing for the default one."""
    for line in _pending:
        print(line, file=sys.stderr)
    _pending.clear()
