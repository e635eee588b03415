"""Retention: `opengate audit archive` moves old events into signed bundles and leaves the
rest of the chain verifiable (and provable) from its archive checkpoint."""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from audit.bundle import BundleFile, verify_bundle
from audit.checkpoints import all_checkpoints, checkpoint_now
from audit.proofs import check_proof
from audit.signing import Signer
from gateway.settings import Settings
from tests.audit.helpers import auditor, opengate, seed, tamper
from tests.conftest import TestClient
from tests.keys import keys_of


def _count(engine: Engine) -> int:
    with engine.connect() as conn:
        return conn.exec_driver_sql("SELECT count(*) FROM audit_events").scalar_one()


def _seed_history(engine: Engine, signer: Signer) -> None:
    """Seqs 1–10 in January 2025 (a checkpoint at 10), 11–25 in March, 26–35 in June."""
    seed(engine, "2025-01-10T09:00:00.000000Z", 10, client_id="app-1")
    checkpoint_now(engine, signer, kind="manual")
    seed(engine, "2025-03-01T09:00:00.000000Z", 15, detail={"format": "csv"})
    seed(engine, "2025-06-01T09:00:00.000000Z", 10, outcome="denied", status=403)


def _archive(settings: Settings, before: str, out: Path) -> subprocess.CompletedProcess[str]:
    return opengate(
        "audit", "archive", "--before", before, "--out", str(out), settings=settings, cwd=out.parent
    )


def test_archive_twice_then_verify_prove_and_still_detect_tampering(
    client: TestClient, engine: Engine, settings: Settings, tmp_path: Path
) -> None:
    signer = keys_of(settings, engine).audit_signer
    _seed_history(engine, signer)

    def archive(before: str, out: Path) -> str:
        result = _archive(settings, before, out)
        assert result.returncode == 0, result.stderr
        return result.stdout

    first, second = tmp_path / "2025-01.jsonl", tmp_path / "2025-q1.jsonl"
    assert "archived 10 events (seq 1–10)" in archive("2025-02-01", first)
    assert "archived 15 events (seq 11–25)" in archive("2025-04-01", second)
    assert "nothing to archive" in archive("2025-04-01", tmp_path / "again.jsonl")
    assert not (tmp_path / "again.jsonl").exists()

    # the bundles verify offline and join up: the second starts where the first ends
    for bundle in (first, second):
        assert verify_bundle(BundleFile(bundle), signer.public_key).ok
    manifests = [orjson.loads(b.read_bytes().splitlines()[-1])["manifest"] for b in (first, second)]
    assert manifests[1]["first_prev_hash"] == manifests[0]["last_hash"]
    assert manifests[1]["before"] == "2025-04-01T00:00:00.000000Z"
    archives = [c for c in all_checkpoints(engine) if c.kind == "archive"]
    assert [c.tree_size for c in archives] == [10, 25]
    assert archives[1].head_hash == manifests[1]["last_hash"]

    # what is left verifies from the archive point, and the archives are audited
    headers = auditor(client, engine)
    verified = client.get("/api/v1/audit/verify", headers=headers).json()
    assert verified["ok"] is True, verified
    assert client.get("/api/v1/audit/events/25", headers=headers).status_code == 404
    logged = client.get("/api/v1/audit/events", headers=headers, params={"action": "audit.archive"})
    assert sorted(e["row_count"] for e in logged.json()["data"]) == [0, 10, 15]

    # proofs of the events still held, against a checkpoint signed after the archive
    checkpoint_now(engine, signer, kind="manual")
    for seq in (26, 30, 35, 36):
        proof = client.get(f"/api/v1/audit/events/{seq}/proof", headers=headers)
        assert proof.status_code == 200, proof.text
        assert check_proof(proof.json(), signer.public_key) is None

    # the DELETE guard is back
    with pytest.raises(sa.exc.DBAPIError), engine.begin() as conn:
        conn.exec_driver_sql("DELETE FROM audit_events WHERE seq = 26")

    # tampering after the archive point is still caught, at the right seq
    tamper(engine, 30, status=200)
    verified = client.get("/api/v1/audit/verify", headers=headers).json()
    assert verified["ok"] is False and verified["first_bad_seq"] == 30


def test_a_cut_inside_the_retention_period_or_a_broken_chain_is_refused(
    engine: Engine, settings: Settings, tmp_path: Path
) -> None:
    signer = keys_of(settings, engine).audit_signer
    _seed_history(engine, signer)
    before_events, before_checkpoints = _count(engine), len(all_checkpoints(engine))

    def refused(before: str, *needles: str) -> None:
        out = tmp_path / "refused.jsonl"
        result = _archive(settings, before, out)
        assert result.returncode == 1
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("opengate: "), result.stderr
        assert all(n in lines[0] for n in needles), lines[0]
        assert not out.exists()
        assert _count(engine) == before_events
        assert len(all_checkpoints(engine)) == before_checkpoints

    recent = (datetime.now(UTC) - timedelta(days=100)).strftime("%Y-%m-%d")
    refused(recent, "inside the retention period (184 days)")
    tamper(engine, 5, client_id="app-2")
    refused("2025-02-01", "fails verification at seq 5", "nothing archived")
