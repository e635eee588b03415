"""Accounts and apps for the auth tests, made through the service functions."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.engine import Engine
from sqlmodel import Session

from auth.apps import create_app
from auth.models import User
from auth.users import create_user

PASSWORD = "correct horse battery"
REDIRECT = "http://127.0.0.1:9/callback"


@dataclass
class Registered:
    user: User
    client_id: str
    client_secret: str


def developer_with_app(
    engine: Engine,
    username: str = "dev1",
    *,
    redirect_uris: list[str] | None = None,
    jwks: dict | None = None,
) -> Registered:
    with Session(engine) as session:
        user = create_user(session, username=username, password=PASSWORD, role="developer")
        app, secret = create_app(
            session,
            owner=user,
            name=f"{username} 的应用",
            redirect_uris=redirect_uris if redirect_uris is not None else [REDIRECT],
            jwks=jwks,
        )
        return Registered(user, app.client_id, secret)


def user(engine: Engine, username: str, role: str) -> User:
    with Session(engine) as session:
        return create_user(session, username=username, password=PASSWORD, role=role)
