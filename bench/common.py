"""Shared pieces of the benchmarks: synthetic packages, throw-away databases, servers."""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa

OUT = Path(__file__).parent / "out"
PG_ADMIN_URL = os.environ.get(
    "OPENGATE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)

FIELDS = [
    {"name": "record_id", "type": "integer", "level": 1},
    {"name": "person_name", "type": "string", "level": 1},
    {"name": "id_number", "type": "string", "level": 1},
    {"name": "district", "type": "string", "level": 1},
    {"name": "employer", "type": "string", "level": 1},
    {"name": "monthly_base", "type": "integer", "level": 1},
    {"name": "months_paid", "type": "integer", "level": 1},
    {"name": "last_paid_month", "type": "date", "level": 1},
]
DISTRICTS = ["市南区", "市北区", "黄岛区", "崂山区", "李沧区", "城阳区", "即墨区", "胶州市"]
SURNAMES = "王李张刘陈杨赵黄周吴徐孙胡朱高林何郭马罗"


def synthetic_package(rows: int, name: str = "bench-records") -> Path:
    """A package of `rows` social-insurance-shaped rows (all level 1: the bench measures
    the engine, not the masking). Written once and reused."""
    folder = OUT / f"{name}-{rows}"
    if (folder / "datapackage.json").exists():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / "data.csv").open("w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow([field["name"] for field in FIELDS])
        for i in range(1, rows + 1):
            writer.writerow(
                [
                    i,
                    SURNAMES[i % 20] + "某" + ("华" if i % 3 else ""),
                    f"3702{i % 90 + 10:02d}19{60 + i % 40:02d}0101{i % 10000:04d}",
                    DISTRICTS[i % 8],
                    f"青岛第{i % 500}制造有限公司",
                    4000 + (i * 37) % 26000,
                    i % 240,
                    f"2024-{i % 12 + 1:02d}-01",
                ]
            )
    descriptor = {
        "name": name,
        "title": "基准测试数据",
        "open_type": "unconditional",
        "resources": [
            {
                "name": "records",
                "path": "data.csv",
                "format": "csv",
                "schema": {"primaryKey": "record_id", "fields": FIELDS},
            }
        ],
    }
    (folder / "datapackage.json").write_text(json.dumps(descriptor, ensure_ascii=False))
    return folder


@contextlib.contextmanager
def postgres_database() -> Iterator[str]:
    """A fresh database on the local PostgreSQL server, dropped afterwards."""
    admin_url = PG_ADMIN_URL.replace("postgresql://", "postgresql+psycopg://", 1)
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    name = f"opengate_bench_{uuid.uuid4().hex[:8]}"
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield sa.engine.make_url(PG_ADMIN_URL).set(database=name).render_as_string(False)
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def server(args: list[str], port: int, env: dict[str, str], ready_path: str) -> Iterator[str]:
    """Run a server process until the block ends; yield its base URL once it answers."""
    # A file, not a pipe: a pipe nobody reads fills up and stalls the server.
    log = tempfile.TemporaryFile()  # noqa: SIM115 (closed in the finally below)
    # Benchmarks measure the gateway under load from one address: limits high enough
    # never to refuse, but still counted (their cost is part of what is measured).
    unlimited = {
        f"OPENGATE_RATE_{k}": "100000000/minute"
        for k in ("ANON", "APP", "LOGIN", "TOKEN", "DATA", "AUTH", "ADMIN")
    }
    process = subprocess.Popen(
        args, env={**os.environ, **unlimited, **env}, stdout=subprocess.DEVNULL, stderr=log
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180  # a loaded shared machine starts slowly
        while True:
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(base + ready_path, timeout=2).status_code == 200:
                    break
            if process.poll() is not None:
                log.seek(0)
                raise RuntimeError(log.read().decode(errors="replace")[-2000:])
            if time.monotonic() > deadline:
                raise RuntimeError(f"{args} did not answer on {base}{ready_path}")
            time.sleep(0.2)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


PYTHON = sys.executable


def load_options(parser: argparse.ArgumentParser) -> None:
    """The wrk load every gateway-vs-baseline benchmark takes."""
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--connections", type=int, default=16)


def each_backend(compare: Callable[[str, str, argparse.Namespace], None], args: Any) -> None:
    """`compare(label, database_url, args)` on a throw-away SQLite file and a throw-away
    PostgreSQL database, or only the one `args.only` names."""
    if args.only in (None, "sqlite"):
        with tempfile.TemporaryDirectory() as tmp:
            compare("SQLite", f"sqlite:///{tmp}/bench.db", args)
    if args.only in (None, "postgres"):
        with postgres_database() as url:
            compare("PostgreSQL", url, args)
