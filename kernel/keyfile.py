"""The one way a key or secret file is written.

A key file is never visible with looser permissions than 0600 and never half-written: the
bytes go to a temporary file in the same directory, created with `O_EXCL` and mode 0600 at
open (then `fchmod` 0600, so the umask can neither widen nor narrow it), written whole and
fsynced; the temporary file is then hard-linked to the final name — atomic, and it fails
if the name exists, so a second writer never clobbers the first — and the directory is
fsynced so the new name survives a crash. `replace` is the same with `os.replace` for a file
that is meant to be overwritten.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

MODE = 0o600


def create(path: Path, data: bytes) -> bool:
    """Write `data` to `path` unless it exists: True if this call made the file, False if it
    was already there (it is left as it is: read it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temporary(path, data)
    try:
        try:
            os.link(tmp, path)
        except FileExistsError:
            return False
        except OSError:  # no hard links on this filesystem: O_EXCL on the name itself
            try:
                _write_exclusive(path, data)
            except FileExistsError:
                return False
    finally:
        tmp.unlink(missing_ok=True)
    _sync_directory(path.parent)
    return True


def replace(path: Path, data: bytes) -> None:
    """Write `data` to `path`, atomically replacing any file of that name."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temporary(path, data)
    try:
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _sync_directory(path.parent)


def _temporary(path: Path, data: bytes) -> Path:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(8)}")
    _write_exclusive(tmp, data)
    return tmp


def _write_exclusive(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, MODE)
    try:
        os.fchmod(fd, MODE)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        path.unlink(missing_ok=True)
        raise
    os.close(fd)


def _sync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
