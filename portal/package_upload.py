"""A dataset package uploaded as a .zip, unpacked into a folder the importer can read.

Nothing in the archive is trusted: a member whose name is absolute, climbs out (`..`),
uses a backslash or a drive letter, or is a symbolic link refuses the whole archive, as do
more than `max_files` members or more than `max_bytes` unpacked (counted while writing, so
a member that lies about its size is stopped too: zip bombs). Every file is created
exclusively inside `dest`; the caller owns `dest` (a temporary folder it removes)."""

from __future__ import annotations

import shutil
import stat
import zipfile
from pathlib import Path, PurePosixPath
from typing import BinaryIO

CHUNK = 1 << 16


class UploadRefused(ValueError):  # noqa: N818 (reads as what happened)
    """The archive is refused as a whole (a Chinese one-line message), nothing imported."""


def _member_path(info: zipfile.ZipInfo) -> PurePosixPath:
    name = info.filename
    if "\\" in name or "\x00" in name or (len(name) > 1 and name[1] == ":"):
        raise UploadRefused(f"压缩包中的文件名不合法：{name[:100]!r}")
    path = PurePosixPath(name)
    if path.is_absolute() or ".." in path.parts:
        raise UploadRefused(f"压缩包中的文件不能指向数据包目录之外：{name[:100]!r}")
    if stat.S_ISLNK(info.external_attr >> 16):
        raise UploadRefused(f"压缩包中不能包含符号链接：{name[:100]!r}")
    return path


def unpack(upload: BinaryIO, dest: Path, *, max_files: int, max_bytes: int) -> Path:
    """Unpack the archive into `dest`; the package folder (the one holding
    datapackage.json: `dest` itself or its single top-level folder) is returned."""
    try:
        archive = zipfile.ZipFile(upload)
    except (zipfile.BadZipFile, OSError, ValueError):
        raise UploadRefused("上传的文件不是有效的 zip 压缩包") from None
    with archive:
        members = archive.infolist()
        if len(members) > max_files:
            raise UploadRefused(f"压缩包中的文件超过 {max_files} 个的上限")
        paths = [(info, _member_path(info)) for info in members]
        if sum(info.file_size for info in members) > max_bytes:
            raise UploadRefused(f"压缩包解压后超过 {max_bytes} 字节的上限")
        root = dest.resolve()
        written = 0
        for info, path in paths:
            target = (root / path).resolve()
            if not target.is_relative_to(root):
                raise UploadRefused(
                    f"压缩包中的文件不能指向数据包目录之外：{info.filename[:100]!r}"
                )
            if info.is_dir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                with archive.open(info) as source, target.open("xb") as out:
                    while chunk := source.read(CHUNK):
                        written += len(chunk)
                        if written > max_bytes:
                            raise UploadRefused(f"压缩包解压后超过 {max_bytes} 字节的上限")
                        out.write(chunk)
            except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, EOFError):
                raise UploadRefused("zip 压缩包已损坏或使用了不支持的压缩方式") from None
            except FileExistsError:
                raise UploadRefused(f"压缩包中有重复的文件：{info.filename[:100]!r}") from None
    return _package_folder(root)


def _package_folder(root: Path) -> Path:
    if (root / "datapackage.json").is_file():
        return root
    children = [child for child in root.iterdir() if child.name != "__MACOSX"]
    if len(children) == 1 and (children[0] / "datapackage.json").is_file():
        return children[0]
    raise UploadRefused("压缩包中没有 datapackage.json（应位于压缩包根目录或唯一的顶层文件夹中）")


def discard(folder: Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)
