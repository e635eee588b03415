"""`opengate audit …`: verify, checkpoint, publish the key — and the events the other
commands write (an import or a new account made on the host is audited like one made
through the API)."""

from __future__ import annotations

import getpass
import json
import sys
from typing import Any

import typer
from sqlalchemy.engine import Engine

from audit.checkpoints import checkpoint_now
from audit.signing import Signer, public_pem
from audit.verify import verify
from audit.writer import append
from gateway.database import create_engine
from gateway.settings import Settings

audit_app = typer.Typer(help="The tamper-evident audit log.", no_args_is_help=True)


def record_cli_event(engine: Engine, action: str, *, resource: str | None, **extra: Any) -> None:
    """One event for a host-side command, stored before the command reports success."""
    detail = extra.pop("detail", None)
    append(
        engine,
        [
            {
                "request_id": None,
                "actor": f"cli:{getpass.getuser()}",
                "client_id": None,
                "ip": None,
                "action": action,
                "resource": resource,
                "fields": None,
                "row_count": extra.pop("row_count", None),
                "purpose": None,
                "grant_id": None,
                "grant_version": None,
                "outcome": "allowed",
                "status": None,
                "detail": detail,
            }
        ],
    )


def _engine() -> tuple[Settings, Engine]:
    settings = Settings()
    return settings, create_engine(settings.sqlalchemy_url)


@audit_app.command("verify")
def audit_verify(
    as_json: bool = typer.Option(False, "--json", help="print the report as JSON"),
) -> None:
    """Re-compute the chain, check every checkpoint; exit 1 when anything is wrong."""
    settings, engine = _engine()
    signer = Signer.load_or_create(settings.data_dir)
    report = verify(engine, signer.public_key)
    record_cli_event(
        engine, "audit.verify", resource="audit", detail={"ok": report.ok, "events": report.events}
    )
    if as_json:
        print(json.dumps(report.as_dict()))
    elif report.ok:
        print(
            f"ok: {report.events:,} events verified through seq {report.verified_through}, "
            f"{report.checkpoints} checkpoints (signed through {report.signed_through})"
        )
    else:
        print(f"FAILED at seq {report.first_bad_seq}: {report.reason}", file=sys.stderr)
    if not report.ok:
        raise typer.Exit(1)


@audit_app.command("checkpoint")
def audit_checkpoint() -> None:
    """Sign a checkpoint of the chain head now."""
    settings, engine = _engine()
    signer = Signer.load_or_create(settings.data_dir)
    record_cli_event(engine, "audit.checkpoint", resource="audit")
    checkpoint = checkpoint_now(engine, signer, kind="manual")
    assert checkpoint is not None  # min_age 0: always signs or returns the current one
    print(
        f"checkpoint: {checkpoint.tree_size} events, head {checkpoint.head_hash}, "
        f"root {checkpoint.merkle_root}"
    )


@audit_app.command("public-key")
def audit_public_key() -> None:
    """Print the Ed25519 public key (PEM) that signs checkpoints and exports."""
    settings = Settings()
    print(public_pem(Signer.load_or_create(settings.data_dir).public_key), end="")
