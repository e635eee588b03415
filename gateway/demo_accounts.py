"""Demo accounts and app (idempotent): one account per role, a developer with an app, and a
person (张三丰) whose identity an operator verified (audited, proof `operator:demo`), so
the account matches the first row of the social-insurance demo data."""

from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy.engine import Engine
from sqlmodel import Session

from auth.apps import create_app
from auth.identity import identity_of, link_identity
from auth.revocations import Revocations
from auth.users import create_user, get_user
from gateway.audit_cli import record_cli_event
from gateway.demo_catalog import DEMO_PERSON
from kernel import keyfile

DEMO_PASSWORD = "opengate-demo"  # noqa: S105 (demo only: printed for people to try)
ACCOUNTS = (
    ("admin", "data_admin", "市大数据局数据管理员"),
    ("auditor", "auditor", "市大数据局审计员"),
    ("sysadmin", "sysadmin", "市大数据局系统管理员"),
    ("bank-dev", "developer", "青岛某银行科技部"),
    ("zhangsanfeng", "developer", "个人用户"),
)


def ensure_demo_accounts(engine: Engine, data_dir: Path, identity_key: bytes) -> dict[str, str]:
    """Create what is missing; return the demo app's credentials (kept in the data dir,
    since the secret itself is stored only as a digest)."""
    with Session(engine) as session:
        for username, role, organization in ACCOUNTS:
            if get_user(session, username=username) is None:
                create_user(
                    session,
                    username=username,
                    password=DEMO_PASSWORD,
                    role=role,
                    organization=organization,
                )
        person = get_user(session, username="zhangsanfeng")
        if person is not None and person.identity_hmac is None:
            # As `opengate users verify-identity zhangsanfeng --id-number-stdin` records it.
            outcome = link_identity(
                session,
                user=person,
                identity=identity_of(identity_key, DEMO_PERSON.id_number),
                proof="operator:demo",
                revocations=Revocations(engine),
            )
            # End the session's read first: on SQLite it could not write after the event.
            session.commit()
            record_cli_event(
                engine,
                "user.identity_verify",
                resource=f"users/{outcome.user_id}",
                detail={**outcome.audit_detail(), "evidence": "演示数据（demo）"},
            )
    return demo_app(
        engine,
        data_dir / "demo-app.json",
        name="授信评估（演示）",
        purpose="个人贷款授信评估（演示）",
    )


def demo_app(engine: Engine, saved: Path, *, name: str, purpose: str) -> dict[str, str]:
    """bank-dev's demo app `name` with its grant on social insurance, created once; its
    credentials kept in `saved` (the secret itself is stored only as a digest)."""
    if saved.exists():
        return json.loads(saved.read_text())
    with Session(engine) as session:
        owner = get_user(session, username="bank-dev")
        app, secret = create_app(
            session,
            owner=owner,  # type: ignore[arg-type]
            name=name,
            redirect_uris=["http://127.0.0.1:8765/callback"],
        )
    credentials = {"client_id": app.client_id, "client_secret": secret}
    _demo_grant(engine, app.client_id, purpose)
    # It holds the app's client secret: written as a key file.
    keyfile.replace(saved, json.dumps(credentials).encode())
    return credentials


def _demo_grant(engine: Engine, client_id: str, purpose: str) -> None:
    """The demo app may read social insurance masked, aggregate it and verify identities."""
    from catalog.hosted import HostedCatalog
    from policies.grants import grant, validate_terms

    hosted = HostedCatalog(engine, ttl=0).get("social-insurance")
    if hosted is None:
        return
    with Session(engine) as session:
        admin = get_user(session, username="admin")
        terms = validate_terms(
            hosted,
            modes=["records", "aggregate", "verify"],
            fields=None,
            quotas={"verifies_per_day": 1000},
            k=5,
            duration_days=365,
        )
        grant(
            session,
            admin_id=admin.id,
            client_id=client_id,  # type: ignore[union-attr]
            dataset_id=hosted.id,
            purpose=purpose,
            terms=terms,
            note="demo",
        )
