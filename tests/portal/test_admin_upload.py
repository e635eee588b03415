"""The package upload of the administrator console over HTTP: a good .zip is imported by
the same importer as the CLI (visible on /admin/datasets and /api/v1/datasets, audited as
`dataset.import` by user:<name> via web); a bad package, a hostile archive (path
traversal, symlink, zip bomb, oversize body), a missing csrf_token, another role or no
account are refused and nothing is imported or written outside the temporary folder."""

from __future__ import annotations

import io
import json
import stat
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from gateway.settings import Settings
from tests.packages import STATION_FIELDS, write_package
from tests.portal.admin_setup import signed_in
from tests.portal.web import TOKEN

URL = "/admin/datasets/upload"
NAME = "air-readings"


@pytest.fixture
def admin(client: TestClient, engine: Engine) -> TestClient:
    return signed_in(client, engine, "data_admin")


@pytest.fixture(autouse=True)
def temp_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The temporary folders of the uploads, so a test sees what is left behind."""
    root = tmp_path / "tmp"
    root.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(root))
    yield root


def zipped(folder: Path, *, prefix: str = "") -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(folder.rglob("*")):
            archive.write(path, prefix + path.relative_to(folder).as_posix())
    return buffer.getvalue()


def raw_zip(members: list[tuple[zipfile.ZipInfo | str, bytes]]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for info, data in members:
            archive.writestr(info, data)
    return buffer.getvalue()


def package_zip(tmp_path: Path, **extra: object) -> bytes:
    folder = write_package(tmp_path / f"pkg{len(list(tmp_path.iterdir()))}", **extra)
    return zipped(folder)


def upload(
    browser: TestClient, body: bytes, *, replace: bool = False, token: str | None = None
) -> object:
    if token is None:
        token = TOKEN.search(browser.get(URL).text).group(1)
    data = {"csrf_token": token, **({"replace": "1"} if replace else {})}
    return browser.post(
        URL,
        data=data,
        files={"package": ("package.zip", body, "application/zip")},
        follow_redirects=False,
    )


def datasets(engine: Engine) -> list[tuple[str, int, int]]:
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT id, current_version, level FROM datasets"))
        return sorted(tuple(r) for r in rows)


def test_good_zip_is_imported_audited_and_listed(
    admin: TestClient, engine: Engine, tmp_path: Path, temp_root: Path
) -> None:
    page = admin.get(URL)
    assert page.status_code == 200
    assert 'enctype="multipart/form-data"' in page.text and "upload.js" in page.text
    # The package inside a top-level folder, as an archiver makes it.
    folder = write_package(tmp_path / "pkgs")
    answer = upload(admin, zipped(folder, prefix=f"{NAME}/"))
    assert answer.status_code == 303, answer.text
    assert answer.headers["location"] == f"/admin/datasets/{NAME}?imported=1"
    assert "已导入版本 v1" in admin.get(answer.headers["location"]).text
    assert NAME in admin.get("/admin/datasets").text
    listed = {d["id"]: d for d in admin.get("/api/v1/datasets").json()["data"]}
    assert listed[NAME]["version"] == 1
    records = admin.get(f"/api/v1/datasets/{NAME}/records?limit=5").json()
    assert len(records["data"]) == 5
    with engine.connect() as conn:
        event = conn.execute(
            sa.text(
                "SELECT actor, resource, row_count, detail FROM audit_events "
                "WHERE action = 'dataset.import'"
            )
        ).one()
    detail = event.detail if isinstance(event.detail, dict) else json.loads(event.detail)
    assert event.actor == "user:dataadmin1" and event.resource == f"datasets/{NAME}"
    assert event.row_count == 250 and detail["via"] == "web" and detail["version"] == 1
    assert list(temp_root.iterdir()) == []  # the unpacked folder is gone


def test_reupload_with_replace_reclassifies(
    admin: TestClient, engine: Engine, tmp_path: Path
) -> None:
    assert upload(admin, package_zip(tmp_path)).status_code == 303
    assert datasets(engine) == [(NAME, 1, 2)]
    # Without "new version" the existing dataset is the importer's error, nothing changes.
    again = upload(admin, package_zip(tmp_path))
    refusal = f"数据包有误，未导入任何数据：数据集 {NAME} 已存在；如要发布它的新版本"
    assert again.status_code == 400 and refusal in again.text
    assert datasets(engine) == [(NAME, 1, 2)]
    fields = [dict(f, level=1) if f["name"] == "aqi" else f for f in STATION_FIELDS]
    answer = upload(admin, package_zip(tmp_path, fields=fields), replace=True)
    assert answer.status_code == 303, answer.text.split('id="upload-error"')[1][:300]
    assert answer.headers["location"].endswith("?imported=2")
    assert datasets(engine) == [(NAME, 2, 1)]
    page = admin.get(f"/admin/datasets/{NAME}").text
    assert "当前版本</dt><dd>v2" in page


def test_bad_package_shows_the_importers_one_line_error(
    admin: TestClient, engine: Engine, tmp_path: Path
) -> None:
    fields = [dict(f, level=7) if f["name"] == "aqi" else f for f in STATION_FIELDS]
    answer = upload(admin, package_zip(tmp_path, fields=fields))
    assert answer.status_code == 400
    error = answer.text.split('id="upload-error"')[1].split("</p>")[0]
    assert "数据包有误，未导入任何数据：" in error and "level" in error
    assert "\n" not in error.split(">", 1)[1]
    assert datasets(engine) == []
    no_descriptor = raw_zip([("data.csv", b"a,b\n1,2\n")])
    answer = upload(admin, no_descriptor)
    assert answer.status_code == 400 and "没有 datapackage.json" in answer.text
    answer = upload(admin, b"not a zip at all")
    assert answer.status_code == 400 and "不是有效的 zip 压缩包" in answer.text
    assert datasets(engine) == []


def hostile(tmp_path: Path, name: str) -> bytes:
    folder = write_package(tmp_path / "good")
    members: list[tuple[zipfile.ZipInfo | str, bytes]] = [
        (p.name, p.read_bytes()) for p in folder.iterdir()
    ]
    return raw_zip([*members, (name, b"owned")])


@pytest.mark.parametrize(
    ("member", "message"),
    [
        ("../escaped.txt", "不能指向数据包目录之外"),
        ("a/../../escaped.txt", "不能指向数据包目录之外"),
        ("/tmp/escaped.txt", "不能指向数据包目录之外"),
        ("..\\escaped.txt", "文件名不合法"),
        ("C:/escaped.txt", "文件名不合法"),
    ],
)
def test_path_traversal_is_refused(
    admin: TestClient, engine: Engine, tmp_path: Path, temp_root: Path, member: str, message: str
) -> None:
    answer = upload(admin, hostile(tmp_path, member))
    assert answer.status_code == 400 and message in answer.text
    assert datasets(engine) == []
    assert not (tmp_path / "escaped.txt").exists() and not Path("/tmp/escaped.txt").exists()
    assert list(temp_root.iterdir()) == []


def test_symlink_member_is_refused(admin: TestClient, engine: Engine, tmp_path: Path) -> None:
    link = zipfile.ZipInfo("data.csv")
    link.external_attr = (stat.S_IFLNK | 0o777) << 16
    folder = write_package(tmp_path / "good")
    body = raw_zip(
        [("datapackage.json", (folder / "datapackage.json").read_bytes()), (link, b"/etc/passwd")]
    )
    answer = upload(admin, body)
    assert answer.status_code == 400 and "符号链接" in answer.text
    assert datasets(engine) == []


@pytest.fixture
def small(engine: Engine, settings: Settings) -> Iterator[TestClient]:
    """A gateway whose upload limits are small enough to reach in a test."""
    from gateway.app import create_app

    tight = settings.model_copy(
        update={
            "upload_max_bytes": 64 * 1024,
            "upload_max_files": 5,
            "upload_max_unpacked_bytes": 256 * 1024,
        }
    )
    with TestClient(create_app(tight, engine=engine)) as client:
        yield signed_in(client, engine, "data_admin")


def test_zip_bomb_too_many_files_and_oversize_body_are_refused(
    small: TestClient, engine: Engine, tmp_path: Path, temp_root: Path
) -> None:
    # 1 MiB of zeros compresses to about 1 KiB: declared sizes over the cap.
    bomb = raw_zip([("datapackage.json", b"{}"), ("zeros.csv", bytes(1 << 20))])
    assert len(bomb) < 64 * 1024
    answer = upload(small, bomb)
    assert answer.status_code == 400 and "解压后超过 262144 字节的上限" in answer.text
    many = raw_zip([(f"f{i}.csv", b"x") for i in range(6)])
    answer = upload(small, many)
    assert answer.status_code == 400 and "超过 5 个的上限" in answer.text
    answer = upload(small, bytes(70 * 1024))
    assert answer.status_code == 413 and "65536" in answer.text, answer.text[-600:]
    assert datasets(engine) == [] and list(temp_root.iterdir()) == []


def test_member_lying_about_its_size_is_stopped_while_unpacking(tmp_path: Path) -> None:
    from portal.package_upload import UploadRefused, unpack

    body = bytearray(raw_zip([("datapackage.json", b"{}"), ("big.csv", bytes(300_000))]))
    # Rewrite the declared (uncompressed) size of big.csv in its central directory entry.
    central = body.rfind(b"PK\x01\x02")
    body[central + 24 : central + 28] = (10).to_bytes(4, "little")
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(UploadRefused):
        unpack(io.BytesIO(bytes(body)), out, max_files=10, max_bytes=100_000)


def test_missing_csrf_and_other_roles_import_nothing(
    client: TestClient, admin: TestClient, engine: Engine, tmp_path: Path
) -> None:
    body = package_zip(tmp_path)
    answer = admin.post(URL, files={"package": ("p.zip", body, "application/zip")})
    assert answer.status_code == 403 and "csrf_token" in answer.text
    answer = upload(admin, body, token="forged-token-value")
    assert answer.status_code == 403
    answer = admin.post(
        URL,
        data={"csrf_token": "x"},
        headers={"origin": "https://evil.example"},
        files={"package": ("p.zip", body, "application/zip")},
    )
    assert answer.status_code == 403 and "其他网站" in answer.text
    developer = signed_in(client, engine, "developer")
    assert developer.get(URL).status_code == 403
    token = TOKEN.search(developer.get("/console").text).group(1)
    assert upload(developer, body, token=token).status_code == 403
    anonymous = TestClient(client.app)
    assert anonymous.get(URL, follow_redirects=False).status_code == 303
    # Without even a CSRF cookie: sent to sign in before the body is parsed.
    answer = anonymous.post(
        URL, files={"package": ("p.zip", body, "application/zip")}, follow_redirects=False
    )
    assert answer.status_code == 303 and answer.headers["location"].startswith("/login")
    token = TOKEN.search(anonymous.get("/login").text).group(1)
    answer = upload(anonymous, body, token=token)
    assert answer.status_code == 303 and answer.headers["location"].startswith("/login")
    assert datasets(engine) == []
