"""The one key-file writer: never visible with looser permissions than 0600, never
half-written, and a second writer never clobbers the first."""

from __future__ import annotations

import multiprocessing
import os
import stat
from pathlib import Path
from typing import Any

import pytest

from kernel import keyfile


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def open_umask():
    """umask 0: a file created without an explicit mode would be world-writable."""
    before = os.umask(0)
    yield
    os.umask(before)


@pytest.fixture
def watched(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[dict[str, int]]:
    """The mode of every file in the directory at each write and sync of the writer."""
    seen: list[dict[str, int]] = []

    def look() -> None:
        seen.append({p.name: _mode(p) for p in tmp_path.iterdir() if p.is_file()})

    for name in ("fchmod", "write", "fsync", "link", "replace"):
        real = getattr(os, name)

        def spy(*args: Any, _real: Any = real) -> Any:
            look()
            result = _real(*args)
            look()
            return result

        monkeypatch.setattr(keyfile.os, name, spy)
    return seen


@pytest.mark.usefixtures("open_umask")
def test_a_new_key_file_is_private_from_its_first_byte(tmp_path: Path, watched: list):
    path = tmp_path / "master.key"
    assert keyfile.create(path, b"secret\n") is True
    assert path.read_bytes() == b"secret\n" and _mode(path) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["master.key"]  # no temporary file left
    files = [mode for snapshot in watched for mode in snapshot.values()]
    assert files and all(mode == 0o600 for mode in files), watched


@pytest.mark.usefixtures("open_umask")
def test_replace_is_private_and_whole(tmp_path: Path, watched: list):
    path = tmp_path / "demo-app.json"
    path.write_bytes(b"old")
    path.chmod(0o644)  # a leftover with loose permissions is replaced, not reused
    watched.clear()
    keyfile.replace(path, b"new")
    assert path.read_bytes() == b"new" and _mode(path) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["demo-app.json"]
    temporaries = [m for s in watched for n, m in s.items() if n != "demo-app.json"]
    assert temporaries and all(mode == 0o600 for mode in temporaries)


def test_a_second_writer_does_not_clobber_the_first(tmp_path: Path):
    path = tmp_path / "master.key"
    assert keyfile.create(path, b"first") is True
    assert keyfile.create(path, b"second") is False
    assert path.read_bytes() == b"first"
    assert [p.name for p in tmp_path.iterdir()] == ["master.key"]


def test_without_hard_links_it_still_never_clobbers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    def no_links(*args: Any) -> None:
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(keyfile.os, "link", no_links)
    path = tmp_path / "master.key"
    assert keyfile.create(path, b"first") is True
    assert keyfile.create(path, b"second") is False
    assert path.read_bytes() == b"first" and _mode(path) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["master.key"]


def _race(path: str, data: bytes, start: Any, results: Any) -> None:
    start.wait()
    results.put((data, keyfile.create(Path(path), data)))


def test_concurrent_writers_leave_exactly_one_whole_file(tmp_path: Path):
    path = tmp_path / "keys" / "master.key"
    context = multiprocessing.get_context("spawn")
    writers = 6
    start, results = context.Barrier(writers), context.Queue()
    processes = [
        context.Process(target=_race, args=(str(path), f"key-{i}".encode() * 512, start, results))
        for i in range(writers)
    ]
    for p in processes:
        p.start()
    outcomes = [results.get(timeout=60) for _ in processes]
    for p in processes:
        p.join(timeout=60)
    winners = [data for data, made in outcomes if made]
    assert len(winners) == 1
    assert path.read_bytes() == winners[0] and _mode(path) == 0o600
    assert [p.name for p in path.parent.iterdir()] == ["master.key"]


def test_a_failed_write_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    def full(*args: Any) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(keyfile.os, "fsync", full)
    with pytest.raises(OSError):
        keyfile.create(tmp_path / "master.key", b"secret")
    assert list(tmp_path.iterdir()) == []
