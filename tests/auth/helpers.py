"""Accounts and apps for the auth tests, made through the service functions."""

from __future__ import annotations

from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session

from auth.apps import create_app
from auth.models import User
from auth.users import create_user, get_user

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


def verify_identity(engine: Engine, data_dir: Path, username: str, id_number: str) -> None:
    """An operator's verification, as `opengate users verify-identity` records it."""
    from auth.identity import identity_of, link_identity
    from auth.revocations import Revocations
    from gateway.keys import installation_keys
    from gateway.settings import Settings

    settings = Settings(
        database_url=engine.url.render_as_string(hide_password=False), data_dir=data_dir
    )
    key = installation_keys(settings, engine, create=False).identity
    with Session(engine) as session:
        link_identity(
            session,
            user=get_user(session, username=username),  # type: ignore[arg-type]
            identity=identity_of(key, id_number),
            proof="operator:test",
            revocations=Revocations(engine),
        )


def audit_events(engine: Engine, action: str) -> list[dict]:
    """The stored events of one action, oldest first."""
    import json

    import sqlalchemy as sa

    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT detail, outcome, resource, actor FROM audit_events "
                "WHERE action = :a ORDER BY seq"
            ),
            {"a": action},
        ).all()
    return [
        {
            "detail": json.loads(d) if isinstance(d, str) else d,
            "outcome": o,
            "resource": r,
            "actor": a,
        }
        for d, o, r, a in rows
    ]


class _HiddenInputs(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.fields: dict[str, str] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "input" and found.get("type") == "hidden" and found.get("name"):
            self.fields[found["name"]] = found.get("value") or ""  # type: ignore[index]


def hidden_fields(html: str) -> dict[str, str]:
    """A page's hidden form fields, as a browser would post them back."""
    parser = _HiddenInputs()
    parser.feed(html)
    return parser.fields


def consent_form(http: Any, url: str) -> dict[str, str]:
    """Open the consent page with `http` (an httpx or test client, which keeps the page's
    og_csrf cookie) and return its hidden fields: the request and the csrf_token."""
    page = http.get(url)
    assert page.status_code == 200, page.text
    fields = hidden_fields(page.text)
    assert fields.get("csrf_token"), "the consent form carries no csrf_token"
    return fields
