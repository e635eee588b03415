"""The `opengate` command line, run as a user runs it: a subprocess with OPENGATE_* set."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tests.packages import write_package

OPENGATE = [sys.executable, "-m", "gateway.cli"]


def run(args: list[str], tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {
        **os.environ,
        "OPENGATE_DATABASE_URL": f"sqlite:///{tmp_path}/cli.db",
        "OPENGATE_DATA_DIR": str(tmp_path / "var"),
        "COLUMNS": "60",  # a narrow terminal must not wrap the one-line errors
        **env,
    }
    return subprocess.run(
        OPENGATE + args,
        capture_output=True,
        text=True,
        env=environment,
        timeout=120,
        cwd=tmp_path,
    )


def assert_one_line_error(result: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert result.returncode == 1, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("opengate: ")
    assert "Traceback" not in result.stderr
    for needle in needles:
        assert needle in lines[0]


def test_migrate_then_import_then_replace(tmp_path: Path):
    package = write_package(tmp_path / "pkgs")
    assert run(["migrate"], tmp_path).returncode == 0
    first = run(["datasets", "import", str(package)], tmp_path)
    assert first.returncode == 0, first.stderr
    assert "imported air-readings version 1: 250 rows" in first.stdout
    assert_one_line_error(
        run(["datasets", "import", str(package)], tmp_path),
        "opengate: 数据集 air-readings 已存在；如要发布它的新版本，命令行请加 --replace",
    )
    second = run(["datasets", "import", str(package), "--replace"], tmp_path)
    assert "version 2" in second.stdout


def test_broken_package_exits_non_zero_with_one_line(tmp_path: Path):
    assert run(["migrate"], tmp_path).returncode == 0
    package = write_package(
        tmp_path / "pkgs",
        data_text="reading_id,station,district,aqi,pm25,calibrated,day,observed_at\n"
        "1,a,b,NaN-ish,1,true,2024-01-01,2024-01-01T00:00:00\n",
    )
    assert_one_line_error(
        run(["datasets", "import", str(package)], tmp_path),
        "opengate: data.csv 第 2 行，字段 aqi：值 'NaN-ish' 不是整数（integer）",
    )
    assert_one_line_error(
        run(["datasets", "import", str(tmp_path / "nothing")], tmp_path), "找不到 datapackage.json"
    )


def test_commands_refuse_an_unmigrated_or_unreachable_database(tmp_path: Path):
    package = write_package(tmp_path / "pkgs")
    assert_one_line_error(run(["datasets", "import", str(package)], tmp_path), "opengate migrate")
    assert_one_line_error(run(["serve"], tmp_path), "opengate migrate")
    unreachable = {"OPENGATE_DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none"}
    assert_one_line_error(run(["migrate"], tmp_path, **unreachable), "cannot use the database")


@pytest.mark.slow
def test_demo_loads_once_and_is_idempotent(tmp_path: Path):
    first = run(["demo", "--no-serve"], tmp_path)
    assert first.returncode == 0, first.stderr
    for name in (
        "enterprise-registry",
        "air-quality-hourly",
        "bus-stops",
        "social-insurance",
        "household-registry",
    ):
        assert name in first.stdout
    saved = tmp_path / "var" / "demo-app.json"  # holds the demo app's client secret
    assert stat.S_IMODE(saved.stat().st_mode) == 0o600
    credentials = saved.read_bytes()
    second = run(["demo", "--no-serve"], tmp_path)
    assert (
        second.returncode == 0 and second.stdout.count("unchanged") == 7
    )  # 5 datasets, 2 services
    assert saved.read_bytes() == credentials
    # Authorized operation (issue 17): zones, the operator's product, the demo app metered.
    import json
    import sqlite3

    db = sqlite3.connect(tmp_path / "cli.db")
    zones = {name for (name,) in db.execute("SELECT name FROM zones")}
    assert {"金融专区", "医疗健康专区", "交通出行专区"} <= zones
    assert db.execute("SELECT count(*) FROM products").fetchone() == (1,)  # once, not twice
    client_id = json.loads(credentials)["client_id"]
    bound = db.execute(
        "SELECT p.title, p.unit, a.status FROM grants g JOIN products p ON p.id = g.product_id "
        "JOIN agreements a ON a.id = g.agreement_id WHERE g.client_id = ?",
        (client_id,),
    ).fetchall()
    assert bound == [("信贷风险评估", "1000_rows", "active")]
    categories = {c for (c,) in db.execute("SELECT category FROM scenarios WHERE approved")}
    assert categories == {"industry", "public_welfare"}
    # The month's use so far: real calls, metered once (the second run calls nothing),
    # priced for the credit app, free for the relief app, and reconciled with the log.
    welfare_id = json.loads((tmp_path / "var" / "demo-welfare-app.json").read_bytes())["client_id"]
    ledger = dict(
        db.execute("SELECT client_id, sum(calls) || '/' || max(free) FROM usage_ledger GROUP BY 1")
    )
    assert ledger == {client_id: "40/0", welfare_id: "9/1"}
    assert "metered:   49 calls" in first.stdout and "metered:" not in second.stdout
    month = db.execute("SELECT max(day) FROM usage_ledger").fetchone()[0][:7]
    reconciled = run(["operation", "reconcile", "--month", month, "--json"], tmp_path)
    assert reconciled.returncode == 0 and json.loads(reconciled.stdout)["differences"] == []


def test_users_apps_and_keys_commands(tmp_path: Path):
    assert run(["migrate"], tmp_path).returncode == 0
    created = subprocess.run(
        [
            *OPENGATE,
            "users",
            "create",
            "alice",
            "--role",
            "developer",
            "--password-stdin",
            "--email",
            "alice@example.com",
        ],
        input="a-long-password\n",
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        env={
            **os.environ,
            "OPENGATE_DATABASE_URL": f"sqlite:///{tmp_path}/cli.db",
            "OPENGATE_DATA_DIR": str(tmp_path / "var"),
        },
    )
    assert created.returncode == 0, created.stderr
    assert "a-long-password" not in created.stdout
    generated = run(["users", "create", "bob", "--role", "auditor"], tmp_path)
    assert "password: " in generated.stdout
    assert_one_line_error(
        run(["users", "create", "alice", "--role", "developer"], tmp_path), "已存在"
    )
    assert_one_line_error(
        run(["users", "create", "carol", "--role", "wizard"], tmp_path), "未知角色"
    )
    as_json = run(["apps", "create", "--owner", "alice", "--name", "测试", "--json"], tmp_path)
    credentials = json.loads(as_json.stdout)
    assert set(credentials) == {"client_id", "client_secret"}
    assert_one_line_error(run(["apps", "create", "--owner", "bob", "--name", "x"], tmp_path))
    assert_one_line_error(run(["apps", "create", "--owner", "nobody", "--name", "x"], tmp_path))
    token = run(["users", "token", "alice", "--ttl", "120"], tmp_path).stdout.strip()
    assert token.count(".") == 2
    assert_one_line_error(run(["users", "token", "nobody"], tmp_path))
    rotated = run(["keys", "rotate"], tmp_path)
    assert rotated.returncode == 0 and "new signing key" in rotated.stdout
