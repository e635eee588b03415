"""Export bundles: a seq range of the log as JSONL with a signed manifest, verifiable
offline with nothing but the published public key (`verify_bundle`, no database).

    {"seq":41,"ts":…,…,"prev_hash":…,"hash":…}       one line per event, in seq order:
                                                      every column as stored, `fields`
                                                      and `detail` as their stored JSON
    {"checkpoint":{"tree_size":…,"signature":…}}     the checkpoints of sizes in the range
    {"manifest":{…},"signature":"<base64 Ed25519>"}  last line

The signature covers the manifest's canonical JSON (RFC 8785: sorted keys, no spaces).
The manifest says `first_seq`, `last_seq`, `count`, `first_prev_hash` (the chain head
before the range), `last_hash`, `frontier` (the Merkle frontier of the `first_seq − 1`
events before the range, so the checkpoints' roots can be re-computed), `sha256` (over
every byte of the lines before it), `created`, `key_id`, and the range asked for.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy.engine import Engine

from audit.canonical import now_ts
from audit.checkpoints import Checkpoint, frontier_at, latest_archive, within
from audit.models import AuditEvent
from audit.signing import Signer, key_id, signature_valid
from audit.store import COLUMNS, stream_rows
from audit.verify import ChainWalk, Report

FORMAT = "opengate-audit-bundle/v1"
_JSON = frozenset({"fields", "detail"})
_PREV, _HASH = COLUMNS.index("prev_hash"), COLUMNS.index("hash")
_CHECKPOINT = b'{"checkpoint"'
_events = AuditEvent.__table__  # type: ignore[attr-defined]


class ChainGapError(RuntimeError):
    """The stored chain before the range is broken: no verifiable bundle can be made."""


@dataclass
class Progress:
    """Events a streamed export has sent (the audit middleware's completion event)."""

    rows: int = 0
    complete: bool = False


@dataclass(frozen=True)
class Span:
    """What a bundle will hold, fixed before the first byte is sent."""

    kind: str  # export | archive
    bounds: dict[str, str | None]  # the time range asked for, as stored timestamps
    first: int | None = None  # None: no event in the range
    last: int | None = None
    prev_hash: str | None = None  # the chain head before `first`
    frontier: list[str] = field(default_factory=list)


def manifest_bytes(manifest: dict[str, Any]) -> bytes:
    return orjson.dumps(manifest, option=orjson.OPT_SORT_KEYS)


def plan(
    engine: Engine,
    *,
    kind: str = "export",
    since: str | None = None,
    until: str | None = None,
    before: str | None = None,
) -> Span:
    """The seq range of the events with `since` ≤ ts ≤ `until` (or ts < `before`; for an
    archive, only events after the last archive point)."""
    c = _events.c
    where: list[Any] = []
    if since is not None:
        where.append(c.ts >= since)
    if until is not None:
        where.append(c.ts <= until)
    if before is not None:
        where.append(c.ts < before)
    bounds = {"since": since, "until": until} if kind == "export" else {"before": before}
    with engine.connect() as conn:
        if kind == "archive":
            previous = latest_archive(conn)
            where.append(c.seq > (previous.tree_size if previous else 0))
        first, last = conn.execute(
            sa.select(sa.func.min(c.seq), sa.func.max(c.seq)).where(*where)
        ).one()
        if first is None:
            return Span(kind, bounds)
        if kind == "archive":
            first = previous.tree_size + 1 if previous else 1
        try:
            frontier, prev_hash = frontier_at(conn, int(first) - 1)
        except RuntimeError as exc:
            raise ChainGapError(str(exc)) from None
    return Span(kind, bounds, int(first), int(last), prev_hash, frontier.to_hex())


def event_line(row: tuple[Any, ...]) -> bytes:
    """One stored event (COLUMNS order, JSON columns as text) as a bundle line."""
    values = {
        c: orjson.Fragment(v) if c in _JSON and v is not None else v
        for c, v in zip(COLUMNS, row, strict=True)
    }
    return orjson.dumps(values) + b"\n"


def bundle_lines(
    engine: Engine, signer: Signer, span: Span, progress: Progress | None = None
) -> Iterator[bytes]:
    """The bundle of `span`, line by line (streamed: constant memory)."""
    digest = hashlib.sha256()
    count = 0
    last_hash = None
    checkpoints: list[Checkpoint] = []
    if span.first is not None and span.last is not None:
        for row in stream_rows(engine, after=span.first - 1, through=span.last):
            line = event_line(tuple(row))
            digest.update(line)
            count += 1
            last_hash = row[_HASH]
            if progress is not None:
                progress.rows = count
            yield line
        with engine.connect() as conn:
            checkpoints = within(conn, span.first, span.last)
    for c in checkpoints:
        line = orjson.dumps({"checkpoint": c.as_dict()}) + b"\n"
        digest.update(line)
        yield line
    manifest = {
        "format": FORMAT,
        "kind": span.kind,
        **span.bounds,
        "first_seq": span.first,
        "last_seq": span.last,
        "count": count,
        "first_prev_hash": span.prev_hash,
        "last_hash": last_hash,
        "frontier": span.frontier,
        "checkpoints": len(checkpoints),
        "sha256": digest.hexdigest(),
        "created": now_ts(),
        "key_id": signer.key_id,
    }
    if progress is not None:
        progress.complete = True
    signature = signer.sign(manifest_bytes(manifest))
    yield orjson.dumps({"manifest": manifest, "signature": signature}) + b"\n"


def write_bundle(path: Path, lines: Iterable[bytes]) -> dict[str, Any]:
    """Write a bundle durably (a temporary file, fsync, rename); its manifest."""
    temporary = path.with_name(f".{path.name}.partial")
    last = b""
    with temporary.open("wb") as f:
        for line in lines:
            f.write(line)
            last = line
        f.flush()
        os.fsync(f.fileno())
    temporary.replace(path)
    return orjson.loads(last)["manifest"]


class BundleFile:
    """A bundle on disk as lines (bytes, newline kept), readable more than once."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __iter__(self) -> Iterator[bytes]:
        with self.path.open("rb") as f:
            yield from f


def _fail(report: Report, seq: int | None, reason: str) -> Report:
    if report.ok:
        report.ok = False
        report.first_bad_seq = seq
        report.reason = reason
    return report


def _read_manifest(final: bytes, public_key: Ed25519PublicKey, report: Report) -> dict | None:
    try:
        document = orjson.loads(final)
        manifest, signature = document["manifest"], document["signature"]
        if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
            raise TypeError("not a manifest")
    except (orjson.JSONDecodeError, KeyError, TypeError):
        _fail(report, None, "the last line is not a bundle manifest")
        return None
    if manifest.get("key_id") != key_id(public_key):
        _fail(report, None, f"manifest signed by key {manifest.get('key_id')}, not by this key")
        return None
    if not signature_valid(public_key, signature, manifest_bytes(manifest)):
        _fail(report, None, "manifest signature invalid")
        return None
    return manifest


def _checkpoint(line: bytes) -> Checkpoint:
    c = orjson.loads(line)["checkpoint"]
    return Checkpoint(
        int(c["tree_size"]),
        c["head_hash"],
        c["merkle_root"],
        c["ts"],
        c["kind"],
        c["key_id"],
        c["signature"],
        (),
    )


def _row(line: bytes) -> tuple[Any, ...]:
    event = orjson.loads(line)
    if not isinstance(event, dict) or type(event.get("seq")) is not int:
        raise ValueError("not an event")
    return tuple(
        orjson.dumps(event.get(c)).decode()
        if c in _JSON and event.get(c) is not None
        else event.get(c)
        for c in COLUMNS
    )


def verify_bundle(lines: Iterable[bytes], public_key: Ed25519PublicKey) -> Report:
    """Check a bundle with nothing but the public key: the manifest's signature and
    digest, the chain of every event from the manifest's `first_prev_hash`, and every
    checkpoint in it (signature, head and Merkle root). `first_bad_seq` names the first
    event that is changed, missing, inserted or out of place; it is None when the damage
    is outside the events (the manifest, a checkpoint line)."""
    if iter(lines) is lines:  # a one-shot iterator: this reads twice
        lines = list(lines)
    report = Report()
    digest = hashlib.sha256()
    checkpoints: list[Checkpoint] = []
    malformed: int | None = None
    final = None
    total = 0
    for total, line in enumerate(lines, 1):
        if final is not None:
            digest.update(final if final.endswith(b"\n") else final + b"\n")
            if final.startswith(_CHECKPOINT):
                try:
                    checkpoints.append(_checkpoint(final))
                except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
                    malformed = malformed or total - 1
        final = line
    manifest = _read_manifest(final or b"", public_key, report)
    if manifest is None:
        return report
    first, last = manifest["first_seq"], manifest["last_seq"]
    walk = None
    last_hash = manifest["first_prev_hash"]
    if first is not None:
        # Where the range starts, as the manifest signs it (a walk's starting point only).
        start = Checkpoint(
            tree_size=first - 1,
            head_hash=manifest["first_prev_hash"],
            merkle_root="",
            ts="",
            kind="start",
            key_id="",
            signature="",
            frontier=tuple(manifest["frontier"]),
        )
        try:
            walk = ChainWalk(public_key, checkpoints, start=start)
        except ValueError:
            return _fail(report, first, "the manifest's frontier does not match first_seq")
        report = walk.report
    for number, line in enumerate(lines, 1):
        if number == total or line.startswith(_CHECKPOINT):
            continue
        expected = report.verified_through + 1
        if walk is None or expected > last:
            return _fail(report, None, f"line {number} is not part of the signed range")
        try:
            row = _row(line)
        except (orjson.JSONDecodeError, ValueError):
            return _fail(report, expected, f"line {number} is not a readable event")
        if not walk.feed([row]):
            return report
        last_hash = row[_HASH]
    if walk is not None:
        walk.finish()
        if report.ok and report.verified_through != last:
            _fail(
                report,
                report.verified_through + 1,
                f"bundle ends at seq {report.verified_through}, the manifest says {last}",
            )
    if report.ok and walk is not None and last_hash != manifest["last_hash"]:
        _fail(report, last, "the last event's hash differs from the manifest")
    if report.ok and (
        report.events != manifest["count"] or len(checkpoints) != manifest["checkpoints"]
    ):
        _fail(report, None, "the bundle's events or checkpoints differ from the manifest's counts")
    if malformed is not None:
        _fail(report, None, f"line {malformed} is not a readable checkpoint")
    if report.ok and digest.hexdigest() != manifest["sha256"]:
        _fail(report, None, "the bundle differs from the digest its manifest signs")
    return report
