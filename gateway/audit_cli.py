"""`opengate audit …`: verify, checkpoint, publish the key, export and archive bundles,
verify a bundle offline — and the events the other commands write (an import or a new
account made on the host is audited like one made through the API)."""

from __future__ import annotations

import getpass
import json
import os
import sys
from pathlib import Path
from typing import Any, NoReturn

import typer
from sqlalchemy.engine import Engine

from audit.archive import ArchiveRefusedError, archive
from audit.bundle import BundleFile, ChainGapError, bundle_lines, plan, verify_bundle, write_bundle
from audit.checkpoints import checkpoint_now
from audit.day_counts import count_all
from audit.proofs import check_proof
from audit.search import parse_moment
from audit.signing import Signer, load_public_key, public_pem
from audit.verify import Report, verify
from audit.writer import append
from gateway.installation import load_settings, open_installation
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
                "outcome": extra.pop("outcome", "allowed"),
                "status": None,
                "detail": detail,
            }
        ],
    )


def _engine() -> tuple[Settings, Engine]:
    """The installation's settings and engine, checked (gateway/installation.py)."""
    settings = load_settings()
    return settings, open_installation(settings)


def _signer(settings: Settings, engine: Engine) -> Signer:
    """The installation's audit key from the key ring; never creates one."""
    from gateway.keys import installation_keys
    from keystore.errors import KeyRingError

    try:
        return installation_keys(settings, engine, create=False).audit_signer
    except KeyRingError as exc:
        _fail(str(exc))


@audit_app.command("verify")
def audit_verify(
    as_json: bool = typer.Option(False, "--json", help="print the report as JSON"),
) -> None:
    """Re-compute the chain, check every checkpoint; exit 1 when anything is wrong."""
    settings, engine = _engine()
    signer = _signer(settings, engine)
    report = verify(engine, signer.verify_keys)
    record_cli_event(
        engine, "audit.verify", resource="audit", detail={"ok": report.ok, "events": report.events}
    )
    _print_report(report, as_json=as_json)


def _print_report(report: Report, *, as_json: bool) -> None:
    """The report on stdout (or the failure on stderr); exit 1 when anything is wrong."""
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
    signer = _signer(settings, engine)
    record_cli_event(engine, "audit.checkpoint", resource="audit")
    checkpoint = checkpoint_now(engine, signer, kind="manual")
    assert checkpoint is not None  # min_age 0: always signs or returns the current one
    print(
        f"checkpoint: {checkpoint.tree_size} events, head {checkpoint.head_hash}, "
        f"root {checkpoint.merkle_root}"
    )


@audit_app.command("count-days")
def audit_count_days() -> None:
    """Count every closed day not counted yet for the console's timeline (run it daily,
    e.g. from cron, when a day holds more events than a console request counts)."""
    _, engine = _engine()
    # Derived numbers, not evidence: nothing in the chain changes, so no audit event.
    days = count_all(engine)
    print(f"counted {days} days")


@audit_app.command("public-key")
def audit_public_key() -> None:
    """Print the Ed25519 public key (PEM) that signs checkpoints and exports."""
    settings, engine = _engine()
    print(public_pem(_signer(settings, engine).public_key), end="")


def _fail(reason: str) -> NoReturn:
    print(f"opengate: {reason}", file=sys.stderr)
    raise typer.Exit(1)


def _check_out(out: Path) -> None:
    """Refuse an --out that cannot be written before any work is done."""
    if out.exists():
        _fail(f"--out {out} exists already; choose a new file")
    if not out.parent.is_dir():
        _fail(f"--out {out}: no such folder {out.parent}")
    if not os.access(out.parent, os.W_OK):
        _fail(f"--out {out}: the folder {out.parent} is not writable")


def _moment(option: str, value: str | None, *, end: bool = False) -> str | None:
    if value is None:
        return None
    try:
        return parse_moment(value, end=end)
    except ValueError:
        _fail(f"{option}: not a date (2026-05-01) or an RFC 3339 time: {value[:40]}")


@audit_app.command("export")
def audit_export(
    out: Path = typer.Option(..., "--out", help="the bundle file to write (JSONL)"),
    since: str | None = typer.Option(None, help="first day or time (inclusive)"),
    until: str | None = typer.Option(None, help="last day or time (inclusive)"),
) -> None:
    """Write the events of a time range as a signed bundle (verify it with verify-bundle)."""
    start, end = _moment("--since", since), _moment("--until", until, end=True)
    _check_out(out)
    settings, engine = _engine()
    signer = _signer(settings, engine)
    try:
        span = plan(engine, since=start, until=end)
    except ChainGapError as exc:
        _fail(f"the audit chain is broken before the range ({exc}); run `opengate audit verify`")
    try:
        manifest = write_bundle(out, bundle_lines(engine, signer, span))
    except OSError as exc:
        _fail(f"cannot write {out}: {exc.strerror or exc}")
    record_cli_event(
        engine,
        "audit.export",
        resource="audit",
        row_count=manifest["count"],
        detail={"since": start, "until": end, "sha256": manifest["sha256"]},
    )
    print(
        f"exported {manifest['count']:,} events (seq {manifest['first_seq']}–"
        f"{manifest['last_seq']}) to {out}"
    )


@audit_app.command("verify-bundle")
def audit_verify_bundle(
    file: Path = typer.Argument(..., help="a bundle from export or archive"),
    public_key: Path = typer.Option(..., "--public-key", help="the PEM from `audit public-key`"),
    as_json: bool = typer.Option(False, "--json", help="print the report as JSON"),
) -> None:
    """Check a bundle offline, with the public key only (no database); exit 1 if bad."""
    try:
        key = load_public_key(public_key.read_bytes())
    except (OSError, ValueError) as exc:
        _fail(f"cannot read the public key {public_key}: {exc}")
    if not file.is_file():
        _fail(f"no bundle at {file}")
    _print_report(verify_bundle(BundleFile(file), key), as_json=as_json)


@audit_app.command("verify-proof")
def audit_verify_proof(
    file: Path = typer.Argument(..., help="a proof from the auditor console or the API"),
    public_key: Path = typer.Option(..., "--public-key", help="the PEM from `audit public-key`"),
) -> None:
    """Check one event's inclusion proof offline (no database): the event's own hash, its
    RFC 9162 audit path to the checkpoint's root, the checkpoint's signature; exit 1 if bad."""
    try:
        key = load_public_key(public_key.read_bytes())
    except (OSError, ValueError) as exc:
        _fail(f"cannot read the public key {public_key}: {exc}")
    try:
        document = json.loads(file.read_bytes())
    except OSError as exc:
        _fail(f"cannot read the proof {file}: {exc.strerror or exc}")
    except ValueError:
        _fail(f"{file} is not a JSON proof document")
    try:
        problem = check_proof(document, key) if isinstance(document, dict) else "not a proof"
    except (KeyError, TypeError, ValueError) as exc:
        problem = f"malformed proof ({type(exc).__name__})"
    if problem is not None:
        print(f"FAILED: {problem}", file=sys.stderr)
        raise typer.Exit(1)
    cp = document["checkpoint"]
    print(
        f"ok: event {document['event']['seq']} is in the tree of {document['tree_size']:,} "
        f"events signed {cp['ts']} by key {cp['key_id']} (root {cp['merkle_root'][:16]}…)"
    )


@audit_app.command("archive")
def audit_archive(
    before: str = typer.Option(..., "--before", help="archive the events before this day"),
    out: Path = typer.Option(..., "--out", help="the bundle file to write (must not exist)"),
) -> None:
    """Move events older than the retention period into a signed bundle, leaving an
    archive checkpoint that keeps the rest of the chain verifiable."""
    cut = _moment("--before", before)
    assert cut is not None
    _check_out(out)
    settings, engine = _engine()
    signer = _signer(settings, engine)
    try:
        done = archive(
            engine, signer, before=cut, out=out, retention_days=settings.audit_retention_days
        )
    except ArchiveRefusedError as exc:
        _fail(str(exc))
    except OSError as exc:
        _fail(f"cannot write {out}: {exc.strerror or exc}")
    detail: dict[str, Any] = {"before": cut}
    if done is not None:
        detail |= {
            "first_seq": done.first_seq,
            "last_seq": done.last_seq,
            "sha256": done.sha256,
            "checkpoint_root": done.checkpoint.merkle_root,
        }
    record_cli_event(
        engine,
        "audit.archive",
        resource="audit",
        row_count=done.count if done else 0,
        detail=detail,
    )
    if done is None:
        print(f"nothing to archive before {cut[:10]}")
        return
    print(
        f"archived {done.count:,} events (seq {done.first_seq}–{done.last_seq}) to {out}; "
        f"archive checkpoint at {done.checkpoint.tree_size}, root {done.checkpoint.merkle_root}"
    )
