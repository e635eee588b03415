"""The master key and the ring's refusals, as an operator meets them: `opengate` run as a
subprocess. Every refusal is one line naming what to set, and changes nothing."""

from __future__ import annotations

import base64
import os
import stat
import threading
from pathlib import Path

import pytest
import sqlalchemy as sa

from audit.writer import append
from gateway.database import create_engine
from gateway.migrate import upgrade
from keystore.master import load_master_key
from tests.audit.helpers import event
from tests.gateway.test_cli import assert_one_line_error, run
from tests.packages import write_package

KEY_A = base64.b64encode(os.urandom(32)).decode()
KEY_B = base64.urlsafe_b64encode(os.urandom(32)).decode().rstrip("=")


def ring_rows(tmp_path: Path) -> list[tuple]:
    engine = sa.create_engine(f"sqlite:///{tmp_path}/cli.db")
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT * FROM key_ring ORDER BY id")).all()
    engine.dispose()
    return [tuple(r) for r in rows]


def test_the_embedded_master_key_is_made_once_with_one_line(tmp_path: Path):
    first = run(["migrate"], tmp_path)
    assert first.returncode == 0, first.stderr
    path = tmp_path / "var" / "master.key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    created = [line for line in first.stderr.splitlines() if "master key" in line]
    assert len(created) == 1 and str(path) in created[0] and "OPENGATE_MASTER_KEY" in created[0]
    key = path.read_text()
    assert len(base64.urlsafe_b64decode(key.strip())) == 32
    again = run(["migrate"], tmp_path)
    assert again.returncode == 0 and "master key" not in again.stderr
    assert path.read_text() == key
    # the only file in the data dir: every key is in the database
    assert sorted(p.name for p in (tmp_path / "var").iterdir()) == ["master.key"]
    assert {r[1] for r in ring_rows(tmp_path)} == {
        "ring",
        "token-signing",
        "audit-signing",
        "pseudonym",
        "identity-hmac",
        "audit-digest",
        "cursor",
    }


def test_workers_starting_together_keep_one_embedded_key(tmp_path: Path):
    barrier = threading.Barrier(8)
    keys: list[bytes] = []

    def start() -> None:
        barrier.wait()
        keys.append(load_master_key(value=None, file=None, data_dir=tmp_path, create=True).key)

    threads = [threading.Thread(target=start) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(keys) == 8 and len(set(keys)) == 1
    assert os.listdir(tmp_path) == ["master.key"]  # no temporary file left behind


def test_a_wrong_master_key_refuses_to_start_and_rewrites_nothing(tmp_path: Path):
    assert run(["migrate"], tmp_path, OPENGATE_MASTER_KEY=KEY_A).returncode == 0
    before = ring_rows(tmp_path)
    for command in (
        ["serve"],
        ["migrate"],
        ["users", "token", "nobody"],
        ["audit", "verify"],
        ["audit", "public-key"],
        ["keys", "rotate"],
    ):
        refused = run(command, tmp_path, OPENGATE_MASTER_KEY=KEY_B)
        assert_one_line_error(refused, "OPENGATE_MASTER_KEY", "master key")
    # and the embedded default is no way around it: it is another key too
    assert_one_line_error(run(["serve"], tmp_path), "OPENGATE_MASTER_KEY")
    assert ring_rows(tmp_path) == before
    assert run(["audit", "verify"], tmp_path, OPENGATE_MASTER_KEY=KEY_A).returncode == 0


def test_a_master_key_file_open_to_others_is_refused(tmp_path: Path):
    path = tmp_path / "master-key.txt"
    path.write_text(KEY_A + "\n")
    for mode in (0o644, 0o640, 0o604):
        path.chmod(mode)
        refused = run(["migrate"], tmp_path, OPENGATE_MASTER_KEY_FILE=str(path))
        assert_one_line_error(refused, str(path), "chmod 600")
    path.chmod(0o400)
    assert run(["migrate"], tmp_path, OPENGATE_MASTER_KEY_FILE=str(path)).returncode == 0
    # the same key given inline opens the same ring
    assert run(["audit", "verify"], tmp_path, OPENGATE_MASTER_KEY=KEY_A).returncode == 0
    embedded = tmp_path / "var" / "master.key"
    assert not embedded.exists()


def test_an_embedded_key_made_readable_to_others_is_refused(tmp_path: Path):
    assert run(["migrate"], tmp_path).returncode == 0
    embedded = tmp_path / "var" / "master.key"
    embedded.chmod(0o644)
    assert_one_line_error(run(["serve"], tmp_path), "chmod 600")


@pytest.mark.parametrize("content", ["", "c2hvcnQ=\n", KEY_A[:-8] + "\n", KEY_A + KEY_A])
def test_an_embedded_key_of_the_wrong_length_refuses_to_start(tmp_path: Path, content: str):
    """A key file that exists, owner-only, but does not hold 32 bytes: `serve` and `migrate`
    refuse with one line, and the file is neither replaced nor rewritten."""
    assert run(["migrate"], tmp_path).returncode == 0
    embedded = tmp_path / "var" / "master.key"
    embedded.write_text(content)
    embedded.chmod(0o600)
    for command in (["serve"], ["migrate"]):
        assert_one_line_error(run(command, tmp_path), str(embedded), "32 random bytes")
    assert embedded.read_text() == content
    assert stat.S_IMODE(embedded.stat().st_mode) == 0o600


def test_a_master_key_file_of_the_wrong_length_is_refused(tmp_path: Path):
    path = tmp_path / "master-key.txt"
    path.write_text(base64.b64encode(os.urandom(31)).decode() + "\n")
    path.chmod(0o600)
    refused = run(["migrate"], tmp_path, OPENGATE_MASTER_KEY_FILE=str(path))
    assert_one_line_error(refused, "OPENGATE_MASTER_KEY_FILE", str(path), "32 random bytes")
    assert not (tmp_path / "var" / "master.key").exists()


@pytest.mark.parametrize(
    ("env", "needle"),
    [
        ({"OPENGATE_MASTER_KEY": "not base64 at all!"}, "OPENGATE_MASTER_KEY"),
        ({"OPENGATE_MASTER_KEY": base64.b64encode(b"x" * 16).decode()}, "32 random bytes"),
        ({"OPENGATE_MASTER_KEY": KEY_A, "OPENGATE_MASTER_KEY_FILE": "/etc/x"}, "not both"),
        ({"OPENGATE_MASTER_KEY_FILE": "/nonexistent/key"}, "no master key file"),
    ],
)
def test_bad_master_keys_are_one_line_and_write_nothing(
    tmp_path: Path, env: dict[str, str], needle: str
):
    refused = run(["migrate"], tmp_path, **env)
    assert_one_line_error(refused, needle)
    assert KEY_A not in refused.stderr  # a key is never echoed
    assert not (tmp_path / "var" / "master.key").exists()
    engine = sa.create_engine(f"sqlite:///{tmp_path}/cli.db")
    with engine.connect() as conn:  # the schema may be there; the ring is not
        assert conn.execute(sa.text("SELECT count(*) FROM key_ring")).scalar() == 0
    engine.dispose()


def test_only_migrate_serve_and_demo_create_keys(tmp_path: Path):
    """A database migrated without a ring (as by an older `opengate migrate`, or the
    Alembic command line): the other commands refuse and create nothing."""
    engine = create_engine(f"sqlite:///{tmp_path}/cli.db")
    upgrade(engine)
    engine.dispose()
    package = write_package(tmp_path / "pkgs")
    for command in (
        ["users", "token", "nobody"],
        ["datasets", "import", str(package)],
        ["audit", "verify"],
        ["audit", "checkpoint"],
        ["audit", "public-key"],
        ["keys", "rotate"],
    ):
        assert_one_line_error(run(command, tmp_path), "opengate migrate")
        assert not (tmp_path / "var").exists()
        assert ring_rows(tmp_path) == []


def test_a_populated_database_without_ring_refuses_to_start(tmp_path: Path):
    """An installation's database whose key files are not on this host: new keys would
    break its tokens, pseudonyms and checkpoints, so the host does not start."""
    engine = create_engine(f"sqlite:///{tmp_path}/cli.db")
    upgrade(engine, "0005_derive")  # the release before the key ring
    append(engine, [event(action="dataset.import")])
    engine.dispose()
    for command in (["migrate"], ["serve"]):
        refused = run(command, tmp_path, OPENGATE_MASTER_KEY=KEY_A)
        assert_one_line_error(refused, "OPENGATE_DATA_DIR", "no key ring")
        assert ring_rows(tmp_path) == []


def test_the_cli_never_prints_the_master_key(tmp_path: Path):
    migrated = run(["migrate"], tmp_path, OPENGATE_MASTER_KEY=KEY_A)
    assert KEY_A not in migrated.stdout + migrated.stderr
