"""The gateway against datasette, the tool a publisher would otherwise pick, on the same
1M-row table, 100 rows a page, JSON.

    python -m bench.vs_datasette [--rows 1000000] [--seconds 10] [--rounds 3]

datasette is no dependency of the project: this script makes its own virtualenv (by
default /tmp/opengate-peers-venv, or --venv) and pip-installs the pinned DATASETTE there
once. The table is the one every records benchmark uses (bench.common.synthetic_package),
imported by the gateway's importer into a SQLite database; datasette gets an exact copy of
it in a file of its own (same columns and rows, record_id the INTEGER PRIMARY KEY), so the
gateway's audit writes never touch datasette's file.

Servers, one process each on loopback: `opengate serve` (1 worker, SQLite, rate limits
counted and the audit log on, as bench.gateway_process runs it) called with an
application's bearer token; `datasette serve` (one uvicorn process, mutable mode, its
default settings but for facet suggestions, see SETTINGS). wrk loads, in alternating rounds:

- gateway   /api/v1/datasets/bench-records/records?limit=100
- datasette /peer/records.json?_size=100&_nocount=1   (no count)
- datasette /peer/records.json?_size=100               (with its count(*))

Bar (issue 14): gateway ≥ 4 × datasette `_nocount`.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import subprocess
import sys
import tempfile
from contextlib import ExitStack
from pathlib import Path

import httpx

from bench.common import free_port, server, synthetic_package
from bench.gateway_process import Gateway
from bench.wrk import WrkResult, median, require_wrk, run_wrk
from catalog.importer import import_package
from gateway.database import create_engine
from gateway.migrate import upgrade
from gateway.settings import Settings

DATASETTE = "datasette==0.65.5"
# Facet suggestions off: with them on, every JSON table page also runs a query per column
# (up to 50 ms each), and at 32 connections almost no request ends within wrk's 2 s
# timeout. A publisher serving an API turns them off; so does this benchmark.
SETTINGS = ("--setting", "suggest_facets", "off")
DEFAULT_VENV = Path(tempfile.gettempdir()) / "opengate-peers-venv"


def datasette_venv(venv: Path) -> Path:
    """The datasette executable in `venv`, installed there first if it is not yet."""
    executable = venv / "bin" / "datasette"
    marker = venv / "opengate-peer.txt"
    if not executable.exists() or not marker.exists() or marker.read_text() != DATASETTE:
        print(f"installing {DATASETTE} into {venv}", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
        subprocess.run(
            [str(venv / "bin" / "pip"), "install", "--quiet", DATASETTE],
            check=True,
        )
        marker.write_text(DATASETTE)
    return executable


def prepare(folder: Path, rows: int) -> tuple[str, Path]:
    """The gateway's database with the imported package, and datasette's copy of its table."""
    url = f"sqlite:///{folder}/gateway.db"
    engine = create_engine(Settings(database_url=url).sqlalchemy_url)
    upgrade(engine)
    result = import_package(engine, synthetic_package(rows))
    engine.dispose()
    table = f"data_{result.dataset_id.replace('-', '_')}_v{result.version}"
    peer = folder / "peer.db"
    with sqlite3.connect(folder / "gateway.db") as conn:
        columns = conn.execute(f'PRAGMA table_info("{table}")').fetchall()
        definition = ", ".join(
            f'"{name}" {kind or "TEXT"}' + (" PRIMARY KEY" if name == "record_id" else "")
            for _, name, kind, *_ in columns
        )
        conn.execute("ATTACH DATABASE ? AS peer", (str(peer),))
        conn.execute(f"CREATE TABLE peer.records ({definition})")
        conn.execute(f'INSERT INTO peer.records SELECT * FROM "{table}" ORDER BY record_id')
        conn.commit()
    return url, peer


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--venv", type=Path, default=DEFAULT_VENV)
    args = parser.parse_args()
    require_wrk()
    datasette = datasette_venv(args.venv)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        url, peer = prepare(folder, args.rows)
        gw = Gateway(folder, url)
        gw.create_keys()
        gw.cli("users", "create", "bench", "--role", "developer")
        app = json.loads(gw.cli("apps", "create", "--owner", "bench", "--name", "基准", "--json"))
        ds_port = free_port()
        peer_serve = [str(datasette), "serve", str(peer), "--host", "127.0.0.1", *SETTINGS]
        with ExitStack() as stack:
            stack.enter_context(gw.serving(workers=1))
            gateway = gw.url
            ds = stack.enter_context(
                server([*peer_serve, "--port", str(ds_port)], ds_port, {}, "/-/versions.json")
            )
            token = httpx.post(
                f"{gateway}/oauth/token",
                auth=(app["client_id"], app["client_secret"]),
                data={"grant_type": "client_credentials"},
            ).json()["access_token"]
            auth = {"Authorization": f"Bearer {token}"}
            targets = {
                "gateway": (f"{gateway}/api/v1/datasets/bench-records/records?limit=100", auth),
                "datasette _nocount": (f"{ds}/peer/records.json?_size=100&_nocount=1", {}),
                "datasette with count": (f"{ds}/peer/records.json?_size=100", {}),
            }
            check_pages(targets)
            for target, headers in targets.values():  # warm up pools and caches
                run_wrk(target, seconds=2, connections=args.connections, headers=headers)
            runs: dict[str, list[WrkResult]] = {label: [] for label in targets}
            for _ in range(args.rounds):
                for label, (target, headers) in targets.items():
                    runs[label].append(
                        run_wrk(
                            target,
                            seconds=args.seconds,
                            connections=args.connections,
                            threads=args.threads,
                            headers=headers,
                        )
                    )
    report(args, {label: median(results) for label, results in runs.items()}, runs)


def check_pages(targets: dict[str, tuple[str, dict[str, str]]]) -> None:
    """Each server answers with the same first 100 rows before anything is timed."""
    first: dict[str, list[int]] = {}
    for label, (target, headers) in targets.items():
        response = httpx.get(target, headers=headers, timeout=30)
        response.raise_for_status()
        body = response.json()
        if label == "gateway":
            first[label] = [row["record_id"] for row in body["data"]]
        else:
            position = body["columns"].index("record_id")
            first[label] = [row[position] for row in body["rows"]]
    if len({tuple(ids) for ids in first.values()}) != 1 or len(first["gateway"]) != 100:
        raise SystemExit(f"the servers do not answer the same page: {first}")


def report(
    args: argparse.Namespace, medians: dict[str, WrkResult], runs: dict[str, list[WrkResult]]
) -> None:
    print(
        f"{args.rows:,} rows, 100 a page, json; 1 process each; wrk -t{args.threads} "
        f"-c{args.connections}, {args.rounds} alternating rounds of {args.seconds}s, medians"
    )
    for label, result in medians.items():
        rounds = ", ".join(f"{r.requests_per_second:.0f}" for r in runs[label])
        print(
            f"{label:<21}{result.requests_per_second:8.0f} req/s  p99 {result.p99_ms:7.1f} ms"
            f"   rounds: {rounds}" + (f"  non-2xx: {result.non_2xx}" if result.non_2xx else "")
        )
    gateway = medians["gateway"].requests_per_second
    nocount = medians["datasette _nocount"].requests_per_second
    counted = medians["datasette with count"].requests_per_second
    ratio = gateway / nocount
    print(
        f"gateway / datasette _nocount {ratio:.2f} (bar ≥ 4.00) {'ok' if ratio >= 4 else 'BELOW'}"
        f"; gateway / datasette with count {gateway / counted:.2f}"
    )


if __name__ == "__main__":
    main()
