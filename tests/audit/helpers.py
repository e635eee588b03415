"""Seeding, tampering and the command line for the audit tests."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from audit.canonical import EVENT_KEYS
from audit.guards import create_guard, drop_guard
from audit.writer import append
from gateway.settings import Settings
from tests.auth.helpers import PASSWORD, user
from tests.conftest import TestClient


def event(**fields: Any) -> dict[str, Any]:
    """An event as the gateway hands it to the writer (no seq, ts or hashes)."""
    base = {k: None for k in EVENT_KEYS if k not in ("seq", "ts")}
    return base | {"action": "data.records", "outcome": "allowed"} | fields


def seed(engine: Engine, ts: str, count: int = 1, **fields: Any) -> list[int]:
    """`count` events stamped `ts` (the writer keeps ts in chain order: seed oldest first)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("audit.writer.now_ts", lambda: ts)
        return append(engine, [event(**fields) for _ in range(count)])


def tamper(engine: Engine, seq: int, **columns: Any) -> None:
    """Change a stored event the way someone with the database password could."""
    assignments = ", ".join(f"{c} = :{c}" for c in columns)
    with engine.begin() as conn:
        dialect = conn.dialect.name
        conn.exec_driver_sql(drop_guard(dialect, "UPDATE"))
        conn.execute(
            sa.text(f"UPDATE audit_events SET {assignments} WHERE seq = :seq"),
            {**columns, "seq": seq},
        )
        conn.exec_driver_sql(create_guard(dialect, "UPDATE"))


def auditor(client: TestClient, engine: Engine, name: str = "auditor1") -> dict[str, str]:
    user(engine, name, "auditor")
    token = client.post("/auth/login", json={"username": name, "password": PASSWORD})
    return {"Authorization": f"Bearer {token.json()['access_token']}"}


def opengate(*args: str, settings: Settings, cwd: Path) -> subprocess.CompletedProcess[str]:
    """The `opengate` command as an operator runs it, on the database and data directory
    of `settings` (the test's own, usually)."""
    env = {
        **os.environ,
        "OPENGATE_DATABASE_URL": settings.database_url,
        "OPENGATE_DATA_DIR": str(settings.data_dir),
        "COLUMNS": "60",
    }
    return subprocess.run(
        [sys.executable, "-m", "gateway.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        cwd=cwd,
    )
