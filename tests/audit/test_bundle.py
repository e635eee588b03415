"""Export bundles over HTTP and the offline verifier, which needs no database."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from sqlalchemy.engine import Engine
from typer.testing import CliRunner

from audit.bundle import verify_bundle
from audit.checkpoints import checkpoint_now
from audit.signing import Signer, load_public_key
from gateway.audit_cli import audit_app
from gateway.settings import Settings
from tests.audit.helpers import auditor, opengate, seed
from tests.conftest import TestClient
from tests.keys import keys_of

DAY1, DAY2, DAY3 = (f"2026-11-{d:02d}T08:00:00.000000Z" for d in (1, 10, 20))


def _export(client: TestClient, headers: dict, **params: str) -> list[bytes]:
    answer = client.get("/api/v1/audit/export", headers=headers, params=params)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("application/jsonl")
    return answer.content.splitlines(keepends=True)


def _key(client: TestClient, folder: Path) -> Path:
    path = folder / "audit-public.pem"
    path.write_text(client.get("/api/v1/audit/public-key").text)
    return path


def _seed_days(engine: Engine, settings: Settings) -> None:
    """Seqs 1–5 on DAY1, 6–15 on DAY2 (a checkpoint at 12), 16–20 on DAY3."""
    signer = keys_of(settings, engine).audit_signer
    seed(engine, DAY1, 5, actor="client:app-1", client_id="app-1")
    seed(
        engine,
        DAY2,
        7,
        action="data.export",
        resource="datasets/社保缴纳",
        fields=[{"name": "姓名", "transform": "mask:name"}],
        purpose="信贷审批",
        detail={"format": "csv", "filters": {"city": "杭州"}},
    )
    checkpoint_now(engine, signer, kind="manual")
    seed(engine, DAY2, 3, outcome="denied", status=403, detail={"error": "grant_required"})
    seed(engine, DAY3, 5)


def test_round_trip_and_the_offline_verifier(
    client: TestClient, engine: Engine, settings: Settings, tmp_path: Path
) -> None:
    _seed_days(engine, settings)
    headers = auditor(client, engine)
    lines = _export(client, headers, since="2026-11-05", until="2026-11-15")
    events = [orjson.loads(line) for line in lines[:-2]]
    assert [e["seq"] for e in events] == list(range(6, 16))
    assert events[0]["fields"] == [{"name": "姓名", "transform": "mask:name"}]
    assert events[0]["detail"] == {"filters": {"city": "杭州"}, "format": "csv"}
    assert orjson.loads(lines[-2])["checkpoint"]["tree_size"] == 12
    final = orjson.loads(lines[-1])
    manifest = final["manifest"]
    assert (manifest["first_seq"], manifest["last_seq"], manifest["count"]) == (6, 15, 10)
    assert manifest["first_prev_hash"] == events[0]["prev_hash"]
    assert manifest["last_hash"] == events[-1]["hash"]

    key = load_public_key(client.get("/api/v1/audit/public-key").text.encode())
    report = verify_bundle(lines, key)
    assert report.ok, report
    assert (report.events, report.checkpoints, report.verified_through) == (10, 1, 15)
    whole = _export(client, headers)
    assert verify_bundle(whole, key).ok
    assert orjson.loads(whole[0])["seq"] == 1

    # the command line, with no database at all
    bundle = tmp_path / "range.jsonl"
    bundle.write_bytes(b"".join(lines))
    nowhere = tmp_path / "absent"
    offline = Settings(database_url=f"sqlite:///{nowhere}/gateway.db", data_dir=nowhere / "var")
    key = str(_key(client, tmp_path))
    result = opengate(
        "audit", "verify-bundle", str(bundle), "--public-key", key, settings=offline, cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("ok: 10 events verified through seq 15")
    assert not nowhere.exists()

    # exports are audited: when they start, and with their count when they end
    reads = client.get("/api/v1/audit/events", headers=headers, params={"action": "audit"})
    exports = [e for e in reads.json()["data"] if e["action"].startswith("audit.export")]
    completed = [e for e in exports if e["action"] == "audit.export.completed"]
    # the whole log at the second export: 20 seeded, the login, the first export's two
    assert len(exports) == 4 and {e["row_count"] for e in completed} == {10, 20 + 1 + 2}


@pytest.mark.parametrize(
    ("damage", "first_bad"),
    [
        ("edit-byte", 7),
        ("garble-byte", 3),
        ("edit-hash", 11),
        ("drop-line", 9),
        ("drop-first", 1),
        ("drop-last-event", 20),
        ("swap-lines", 4),
        ("edit-checkpoint", 12),
        ("edit-manifest", None),
    ],
)
def test_a_damaged_bundle_names_its_first_bad_seq(
    client: TestClient,
    engine: Engine,
    settings: Settings,
    tmp_path: Path,
    damage: str,
    first_bad: int | None,
) -> None:
    _seed_days(engine, settings)
    headers = auditor(client, engine)
    lines = _export(client, headers, until="2026-11-20")  # seqs 1–20, checkpoint 12
    assert len(lines) == 22
    if damage == "edit-byte":
        lines[6] = lines[6].replace(b'"outcome":"allowed"', b'"outcome":"allowee"')
    elif damage == "garble-byte":  # no longer JSON
        lines[2] = lines[2].replace(b'"ip":null', b'"ip":nulL')
    elif damage == "edit-hash":
        lines[10] = lines[10][:-4] + (b"0" if lines[10][-4:-3] != b"0" else b"1") + lines[10][-3:]
    elif damage == "drop-line":
        del lines[8]
    elif damage == "drop-first":
        del lines[0]
    elif damage == "drop-last-event":
        del lines[19]
    elif damage == "swap-lines":
        lines[3], lines[4] = lines[4], lines[3]
    elif damage == "edit-checkpoint":
        lines[20] = lines[20].replace(b'"kind":"manual"', b'"kind":"manuaL"')
    else:
        lines[21] = lines[21].replace(b'"count":20', b'"count":21')
    key = load_public_key(client.get("/api/v1/audit/public-key").text.encode())
    report = verify_bundle(lines, key)
    assert not report.ok
    assert report.first_bad_seq == first_bad, report

    bundle = tmp_path / "damaged.jsonl"
    bundle.write_bytes(b"".join(lines))
    command = ["verify-bundle", str(bundle), "--public-key", str(_key(client, tmp_path))]
    result = CliRunner().invoke(audit_app, command)
    assert result.exit_code == 1
    assert result.stderr.startswith(f"FAILED at seq {first_bad}:"), result.stderr


def test_another_key_and_a_missing_manifest(
    client: TestClient, engine: Engine, settings: Settings, tmp_path: Path
) -> None:
    _seed_days(engine, settings)
    headers = auditor(client, engine)
    lines = _export(client, headers, until="2026-11-20")
    stranger = Signer.generate().public_key
    assert "not by this key" in (verify_bundle(lines, stranger).reason or "")
    key = load_public_key(client.get("/api/v1/audit/public-key").text.encode())
    truncated = verify_bundle(lines[:-1], key)
    assert not truncated.ok and truncated.reason == "the last line is not a bundle manifest"
    assert not verify_bundle([], key).ok

    bad = client.get("/api/v1/audit/export", headers=headers, params={"since": "yesterday"})
    assert bad.status_code == 400
    assert bad.json()["code"] == "invalid_parameter"


def test_export_from_the_command_line(
    client: TestClient, engine: Engine, settings: Settings, tmp_path: Path
) -> None:
    _seed_days(engine, settings)
    out = tmp_path / "november.jsonl"
    day = "2026-11-10"
    command = ("audit", "export", "--since", day, "--until", day, "--out", str(out))
    result = opengate(*command, settings=settings, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "exported 10 events (seq 6–15)" in result.stdout
    key = load_public_key(client.get("/api/v1/audit/public-key").text.encode())
    assert verify_bundle(out.read_bytes().splitlines(keepends=True), key).ok
    headers = auditor(client, engine)
    logged = client.get("/api/v1/audit/events", headers=headers, params={"action": "audit.export"})
    (event,) = logged.json()["data"]
    assert event["actor"].startswith("cli:") and event["row_count"] == 10


@pytest.mark.parametrize("command", ["export", "archive"])
def test_an_unwritable_out_is_one_line_and_writes_nothing(
    engine: Engine, settings: Settings, tmp_path: Path, command: str
) -> None:
    _seed_days(engine, settings)
    existing = tmp_path / "taken.jsonl"
    existing.write_text("keep me\n")
    span = ("--since", "2026-11-10") if command == "export" else ("--before", "2026-01-01")
    for out, says in (
        (tmp_path / "missing" / "x.jsonl", "no such folder"),
        (existing, "exists already"),
    ):
        result = opengate(
            "audit", command, *span, "--out", str(out), settings=settings, cwd=tmp_path
        )
        assert result.returncode == 1
        assert result.stderr.strip().count("\n") == 0 and says in result.stderr, result.stderr
        assert "Traceback" not in result.stderr
    assert existing.read_text() == "keep me\n"
    assert not (tmp_path / "missing").exists()
